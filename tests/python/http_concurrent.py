#!/usr/bin/env python3
"""Many /v1/completions requests at once through Python's http.client, the
reference client of tandem's end-to-end serving test
(tests/unit/launch_http_test.cc).

  http_concurrent.py PORT --requests N --concurrency C --max-tokens T

Request i asks for a greedy completion of prompt i (a few words that differ
per request, so the texts differ too). Prints one JSON list of
{"status", "text", "finish_reason", "completion_tokens"} in request order.
"""
import argparse
import http.client
import json
import sys
import threading

WORDS = ["Once", "upon", "a", "time", "Lily", "saw", "a", "big", "red", "ball", "in", "the", "park", "and",
         "her", "mom", "said", "Tom", "was", "happy", "to", "play", "with", "his", "dog"]


def prompt(i):
    return " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(1 + i % 6))


def one(port, i, max_tokens, out):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = json.dumps({"prompt": prompt(i), "max_tokens": max_tokens, "temperature": 0})
    conn.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read().decode("utf-8")
    conn.close()
    if resp.status != 200:
        out[i] = {"status": resp.status, "text": data, "finish_reason": "", "completion_tokens": -1}
        return
    doc = json.loads(data)
    choice = doc["choices"][0]
    out[i] = {"status": 200, "text": choice["text"], "finish_reason": choice["finish_reason"],
              "completion_tokens": doc["usage"]["completion_tokens"]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=32)
    a = p.parse_args()
    out = [None] * a.requests
    todo = list(range(a.requests))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                i = todo.pop(0)
            one(a.port, i, a.max_tokens, out)

    threads = [threading.Thread(target=worker) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
