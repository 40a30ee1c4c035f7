#!/usr/bin/env python3
"""One or more HTTP requests through Python's http.client, the reference
client for tandem's HTTP server tests (tests/unit/http_server_test.cc).

Prints one JSON object per request on stdout:
  {"status": 200, "headers": {...lower-case...}, "body": "...", "events": [...]}
where "events" holds the `data:` payloads of a text/event-stream body.

  http_probe.py PORT METHOD PATH [--body TEXT] [--header 'Name: value']...
                [--repeat N]            send it N times on one keep-alive connection
                [--disconnect-after K]  read K stream events, then drop the connection
"""
import argparse
import http.client
import json
import socket
import sys


def read_events(resp, limit):
    events = []
    while limit is None or len(events) < limit:
        line = resp.readline()
        if not line:
            break
        line = line.decode("utf-8").rstrip("\n")
        if line.startswith("data: "):
            events.append(line[len("data: "):])
    return events


def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("method")
    p.add_argument("path")
    p.add_argument("--body")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--disconnect-after", type=int)
    a = p.parse_args()
    headers = {}
    for h in a.header:
        name, _, value = h.partition(":")
        headers[name.strip()] = value.strip()
    if a.body is not None:
        headers.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=30)
    for _ in range(a.repeat):
        conn.request(a.method, a.path, body=a.body.encode() if a.body is not None else None, headers=headers)
        resp = conn.getresponse()
        out = {"status": resp.status, "headers": {k.lower(): v for k, v in resp.getheaders()}}
        if out["headers"].get("content-type", "").startswith("text/event-stream"):
            out["events"] = read_events(resp, a.disconnect_after)
            if a.disconnect_after is not None:
                # An abrupt close (RST), as a client that crashes or is killed.
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.sock.close()
                print(json.dumps(out), flush=True)
                return 0
            out["body"] = ""
        else:
            out["body"] = resp.read().decode("utf-8")
        print(json.dumps(out), flush=True)
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
