#!/usr/bin/env python3
"""Load generator for tandem's OpenAI-compatible endpoint (docs/serving.md).

  scripts/bench_serve.py --url URL --concurrency N --requests M --max-tokens T
                         --prompt-tokens P [--api-key K] [--seed S] [--metrics] [--no-header]
                         [--requests-csv FILE]

N worker threads (Python 3 stdlib only: http.client + threading, one keep-alive
connection each) send M streamed `POST /v1/completions` requests between them,
one after another per thread (stream: true, stream_options.include_usage,
temperature 0). The prompt is P token ids (used as given, no BOS added),
random per request from --seed, so every request has exactly P prompt tokens.
The server has no ignore_eos: a request that meets an end-of-generation token
ends early; the tokens generated are taken from its usage chunk and requests
that ended short are counted in the `short` column.

Per request: TTFT = request sent -> first chunk with text; TPOT = (last text
chunk - first text chunk) / (completion tokens - 1). Aggregate tokens/s = all
completion tokens / (first send -> last finish). p50/p99 are nearest-rank
percentiles over the requests (with few requests p99 is the maximum).

--concurrency may be a list ("1 4 16" or 1,4,16): each level runs in turn and
prints one row. --metrics adds the server's own means from GET /metrics
(deltas of tandem_time_to_first_token_seconds and
tandem_time_per_output_token_seconds over the level). --requests-csv appends
every request's figures to FILE (concurrency,ttft_ms,tpot_ms,tokens; a header
when the file is new): whether a p99 is a tail or the whole distribution. Any
HTTP error, error event or broken stream is printed and makes the exit status 1.
"""
import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import urllib.parse

HEADER = ("%11s %8s %8s %6s %10s %9s %9s %9s %9s" %
          ("concurrency", "requests", "tokens", "short", "agg tok/s",
           "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99"))
UNITS = "%11s %8s %8s %6s %10s %9s %9s %9s %9s" % ("", "", "", "", "", "ms", "ms", "ms", "ms")


class BenchError(Exception):
    pass


def percentile(values, p):
    """Nearest-rank percentile (p in (0, 100]) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))
    return s[int(k)]


def connect(url, timeout):
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http":
        raise BenchError("only http:// URLs are supported: %s" % url)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)


def scrape_metrics(url, timeout):
    """{series name (with labels): value} from GET /metrics."""
    conn = connect(url, timeout)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        if resp.status != 200:
            raise BenchError("GET /metrics: HTTP %d: %s" % (resp.status, body[:500]))
    finally:
        conn.close()
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def one_request(conn, headers, body):
    """Sends one streamed completion; returns (ttft_s, tpot_s or None, tokens)."""
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=body, headers=headers)
    resp = conn.getresponse()
    if resp.status != 200:
        text = resp.read().decode("utf-8", "replace")
        raise BenchError("POST /v1/completions: HTTP %d %s: %s" % (resp.status, resp.reason, text[:1000]))
    first = last = None
    usage = None
    done = False
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            # Drain the chunked body's terminator so the connection can be reused.
            resp.read()
            break
        now = time.perf_counter()
        chunk = json.loads(data)
        if "error" in chunk:
            raise BenchError("error event in stream: %s" % json.dumps(chunk["error"]))
        for choice in chunk.get("choices") or ():
            if choice.get("text"):
                if first is None:
                    first = now
                last = now
        if chunk.get("usage"):
            usage = chunk["usage"]
    if not done:
        raise BenchError("stream ended without data: [DONE]")
    if usage is None:
        raise BenchError("stream carried no usage chunk (stream_options.include_usage)")
    tokens = int(usage["completion_tokens"])
    if first is None:
        if tokens > 0:
            raise BenchError("%d tokens generated but no text chunk arrived" % tokens)
        return None, None, 0
    tpot = (last - first) / (tokens - 1) if tokens > 1 else None
    return first - t0, tpot, tokens


def run_level(args, concurrency, requests):
    """Runs one concurrency level; returns the row's figures."""
    rng = random.Random(args.seed * 1000003 + concurrency)
    bodies = []
    for _ in range(requests):
        # Ids past the byte and control tokens of a llama2 vocabulary.
        prompt = [rng.randrange(min(300, args.vocab // 2), args.vocab) for _ in range(args.prompt_tokens)]
        bodies.append(json.dumps({
            "prompt": prompt, "max_tokens": args.max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}).encode())
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = "Bearer " + args.api_key

    lock = threading.Lock()
    next_index = [0]
    results = []  # (ttft, tpot, tokens)
    errors = []
    start = [None]
    end = [0.0]

    def worker():
        conn = connect(args.url, args.timeout)
        try:
            while True:
                with lock:
                    if errors or next_index[0] >= requests:
                        return
                    i = next_index[0]
                    next_index[0] += 1
                    if start[0] is None:
                        start[0] = time.perf_counter()
                try:
                    r = one_request(conn, headers, bodies[i])
                except (BenchError, OSError, http.client.HTTPException, ValueError) as e:
                    with lock:
                        errors.append("request %d: %s: %s" % (i, type(e).__name__, e))
                    return
                with lock:
                    results.append(r)
                    end[0] = max(end[0], time.perf_counter())
        finally:
            conn.close()

    before = scrape_metrics(args.url, args.timeout) if args.metrics else None
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for e in errors:
            print("bench_serve: " + e, file=sys.stderr)
        raise BenchError("%d of %d requests failed at concurrency %d" % (len(errors), requests, concurrency))
    wall = end[0] - start[0]
    tokens = sum(r[2] for r in results)
    ttfts = [r[0] * 1e3 for r in results if r[0] is not None]
    tpots = [r[1] * 1e3 for r in results if r[1] is not None]
    short = sum(1 for r in results if r[2] < args.max_tokens)
    if args.requests_csv:
        write_header = not os.path.exists(args.requests_csv) or os.path.getsize(args.requests_csv) == 0
        with open(args.requests_csv, "a") as f:
            if write_header:
                f.write("concurrency,ttft_ms,tpot_ms,tokens\n")
            for ttft, tpot, n in results:
                f.write("%d,%s,%s,%d\n" % (concurrency, "" if ttft is None else "%.3f" % (ttft * 1e3),
                                            "" if tpot is None else "%.3f" % (tpot * 1e3), n))
    row = {
        "concurrency": concurrency, "requests": len(results), "tokens": tokens, "short": short,
        "wall_s": wall, "agg_tps": tokens / wall if wall > 0 else 0.0,
        "ttft_p50": percentile(ttfts, 50) if ttfts else float("nan"),
        "ttft_p99": percentile(ttfts, 99) if ttfts else float("nan"),
        "tpot_p50": percentile(tpots, 50) if tpots else float("nan"),
        "tpot_p99": percentile(tpots, 99) if tpots else float("nan"),
    }
    if args.metrics:
        after = scrape_metrics(args.url, args.timeout)

        def mean(series):
            n = after.get(series + "_count", 0) - before.get(series + "_count", 0)
            s = after.get(series + "_sum", 0) - before.get(series + "_sum", 0)
            return s / n * 1e3 if n > 0 else float("nan")

        row["server_ttft_mean"] = mean("tandem_time_to_first_token_seconds")
        row["server_tpot_mean"] = mean("tandem_time_per_output_token_seconds")
        row["server_tokens"] = (after.get("tandem_generation_tokens_total", 0) -
                                before.get("tandem_generation_tokens_total", 0))

        def delta(series):
            return after.get(series, 0) - before.get(series, 0)

        # Where a level's time goes on the server: the mean step and its rows.
        steps = delta("tandem_engine_steps_total")
        row["server_step_mean"] = mean("tandem_engine_step_seconds")
        row["server_decode_rows"] = delta("tandem_engine_decode_tokens_total") / steps if steps else float("nan")
        row["server_prefill_rows"] = delta("tandem_engine_prefill_tokens_total") / steps if steps else float("nan")
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="the endpoint, e.g. http://127.0.0.1:8080")
    ap.add_argument("--concurrency", required=True,
                    help="client threads; a list (\"1 4 16\" or 1,4,16) runs each level in turn")
    ap.add_argument("--requests", type=int, required=True,
                    help="requests per level (at least the concurrency is sensible)")
    ap.add_argument("--max-tokens", type=int, required=True)
    ap.add_argument("--prompt-tokens", type=int, required=True)
    ap.add_argument("--api-key", default="")
    ap.add_argument("--seed", type=int, default=1, help="the prompts' token ids")
    ap.add_argument("--vocab", type=int, default=32000, help="the model's vocabulary: prompt ids are drawn below it")
    ap.add_argument("--timeout", type=float, default=600, help="socket timeout per read, seconds")
    ap.add_argument("--metrics", action="store_true", help="also print the server's means from /metrics")
    ap.add_argument("--no-header", action="store_true")
    ap.add_argument("--requests-csv", default="", help="append each request's TTFT, TPOT and tokens to this file")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.replace(",", " ").split()]
    if not levels or min(levels) < 1 or args.requests < 1 or args.max_tokens < 1 or args.prompt_tokens < 1:
        ap.error("concurrency, requests, max-tokens and prompt-tokens must be >= 1")
    if args.vocab < 2:
        ap.error("vocab must be >= 2")

    if not args.no_header:
        print(HEADER + ("   server TTFT/TPOT mean ms, step mean ms (decode+prefill rows)" if args.metrics else ""))
        print(UNITS)
    status = 0
    for c in levels:
        try:
            r = run_level(args, c, args.requests)
        except BenchError as e:
            print("bench_serve: %s" % e, file=sys.stderr)
            status = 1
            break
        line = "%11d %8d %8d %6d %10.1f %9.1f %9.1f %9.2f %9.2f" % (
            r["concurrency"], r["requests"], r["tokens"], r["short"], r["agg_tps"],
            r["ttft_p50"], r["ttft_p99"], r["tpot_p50"], r["tpot_p99"])
        if args.metrics:
            line += "   %.1f / %.2f, step %.2f (%.1f+%.1f)" % (
                r["server_ttft_mean"], r["server_tpot_mean"], r["server_step_mean"],
                r["server_decode_rows"], r["server_prefill_rows"])
        print(line, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
