#!/usr/bin/env python3
"""Drive a tandem job from Python over its control endpoint (tandem.v1).

Launches `tandem launch CONFIG --set job=serve --set control.port=PORT
--set run_dir=DIR --run-id ID` (PORT a free port, ID its own), waits for the job
to be healthy (token from DIR/ID/token), streams one generation to stdout,
prints the job's status, calls Shutdown and waits for the launcher to exit 0.
Every step has a timeout; any failure stops the launcher and exits 1 with a
message on stderr (2 for a wrong command line).

Needs python3-grpcio and python3-protobuf (Debian's, in /usr/bin/python3) and
the stubs the build generates from proto/tandem.proto (build/python/):

    /usr/bin/python3 examples/orchestrate.py --tandem build/tandem configs/local.yaml
"""

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class Failure(Exception):
    """A step failed; the message says which and why."""


def import_stubs(stubs_dir):
    sys.path.insert(0, stubs_dir)
    try:
        import grpc  # noqa: F401
        import tandem_pb2
        import tandem_pb2_grpc
    except ImportError as e:
        raise Failure(
            f"cannot import the control API ({e}): the stubs are generated into build/python by the build "
            f"(looked in {stubs_dir}; set --stubs or TANDEM_PYTHON_STUBS), and grpc comes from python3-grpcio "
            f"(run with /usr/bin/python3)") from e
    return grpc, tandem_pb2, tandem_pb2_grpc


def free_port(host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def stop(proc, grace_s=10):
    """Ends the launcher: SIGTERM (it stops its workers), then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_s)


def wait_healthy(grpc, pb, stub_cls, proc, endpoint, token_path, channel_factory, timeout_s):
    """Polls Health until OK; returns (channel, stub, metadata)."""
    deadline = time.monotonic() + timeout_s
    last = "no token file yet"
    channel = None
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise Failure(f"the launcher exited with code {code} before the job was healthy ({last})")
        if os.path.exists(token_path):
            with open(token_path, encoding="utf-8") as f:
                token = f.read().rstrip("\r\n")
            if not token:  # being written: poll again
                last = f"token file {token_path} is empty"
                time.sleep(0.2)
                continue
            if channel is None:
                channel = channel_factory(endpoint)
            stub = stub_cls(channel)
            metadata = (("authorization", "Bearer " + token),)
            try:
                stub.Health(pb.HealthRequest(), metadata=metadata,
                            timeout=max(0.05, min(2.0, deadline - time.monotonic())))
                return channel, stub, metadata
            except grpc.RpcError as e:
                if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise Failure(f"Health: gRPC {e.code().name}: {e.details()}") from e
                last = f"Health: gRPC {e.code().name}: {e.details()}"
        time.sleep(0.2)
    raise Failure(f"the job was not healthy within {timeout_s:g} s ({last})")


def generate(grpc, pb, stub, metadata, args):
    request = pb.GenerateRequest(text=args.prompt, max_tokens=args.max_tokens, temperature=args.temperature)
    if args.seed is not None:
        request.seed = args.seed
    finished = None
    request_id = None
    try:
        for message in stub.Generate(request, metadata=metadata, timeout=args.timeout):
            event = message.WhichOneof("event")
            if event == "started":
                request_id = message.started.request_id
            elif event == "piece":
                sys.stdout.buffer.write(message.piece.text)
                sys.stdout.flush()
            elif event == "finished":
                finished = message.finished
    except grpc.RpcError as e:
        raise Failure(f"Generate: gRPC {e.code().name}: {e.details()}") from e
    sys.stdout.write("\n")
    if finished is None:
        raise Failure("Generate: the stream ended without a finished message")
    reason = pb.FinishReason.Name(finished.reason).removeprefix("FINISH_REASON_").lower()
    print(f"orchestrate: request {request_id}: {finished.prompt_tokens} prompt tokens, "
          f"{finished.generated_tokens} generated, finish {reason}", file=sys.stderr)


def print_status(grpc, pb, stub, metadata, timeout_s):
    try:
        s = stub.Status(pb.StatusRequest(), metadata=metadata, timeout=timeout_s)
    except grpc.RpcError as e:
        raise Failure(f"Status: gRPC {e.code().name}: {e.details()}") from e
    print(f"state     {s.state}")
    print(f"model     {s.model} ({s.model_shape})")
    print(f"parallel  tp={s.tp} pp={s.pp}")
    print(f"uptime    {s.uptime_seconds:.1f} s")
    print(f"served    {s.requests_served} requests, {s.tokens_served} tokens")
    for r in s.ranks:
        print(f"rank {r.rank:<4} {r.host}, {r.memory_bytes / 2**20:.1f} MiB in use")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config", help="run config (YAML) for tandem launch")
    p.add_argument("--tandem", required=True, help="the tandem binary")
    p.add_argument("--stubs", default=os.environ.get("TANDEM_PYTHON_STUBS",
                                                     os.path.join(HERE, "..", "build", "python")),
                   help="directory of tandem_pb2*.py (default: $TANDEM_PYTHON_STUBS or build/python)")
    p.add_argument("--run-dir", default="runs", help="run_dir for the launcher (default: runs)")
    p.add_argument("--host", default="127.0.0.1", help="where rank 0's control endpoint is reached")
    p.add_argument("--port", type=int, help="control.port for the job (default: a free port on this host)")
    p.add_argument("--tls-ca", help="CA certificate (PEM) when the job serves TLS")
    p.add_argument("--prompt", default="Once upon a time")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int)
    p.add_argument("--startup-timeout", type=float, default=120, help="seconds for the job to become healthy")
    p.add_argument("--timeout", type=float, default=120, help="seconds for each call, and for the launcher to exit")
    args = p.parse_args()

    proc = None
    try:
        grpc, pb, pb_grpc = import_stubs(os.path.abspath(args.stubs))
        if not os.access(args.tandem, os.X_OK):
            raise Failure(f"--tandem {args.tandem} is not an executable file")
        port = args.port if args.port else free_port("127.0.0.1")
        run_id = f"orchestrate-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{random.getrandbits(24):06x}"
        token_path = os.path.join(args.run_dir, run_id, "token")
        endpoint = f"{args.host}:{port}"
        if args.tls_ca:
            with open(args.tls_ca, "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            channel_factory = lambda ep: grpc.secure_channel(ep, creds)  # noqa: E731
        else:
            channel_factory = grpc.insecure_channel
        argv = [args.tandem, "launch", args.config, "--set", "job=serve", "--set", f"control.port={port}",
                "--set", f"run_dir={args.run_dir}", "--run-id", run_id]
        print(f"orchestrate: {' '.join(argv)}", file=sys.stderr)
        # The launcher's logs go to stderr, so stdout holds the text and the status.
        proc = subprocess.Popen(argv, stdout=sys.stderr)

        channel, stub, metadata = wait_healthy(grpc, pb, pb_grpc.ControlStub, proc, endpoint, token_path,
                                               channel_factory, args.startup_timeout)
        with channel:
            print(f"orchestrate: job {run_id} healthy at {endpoint}", file=sys.stderr)
            generate(grpc, pb, stub, metadata, args)
            print_status(grpc, pb, stub, metadata, args.timeout)
            try:
                stub.Shutdown(pb.ShutdownRequest(), metadata=metadata, timeout=args.timeout)
            except grpc.RpcError as e:
                raise Failure(f"Shutdown: gRPC {e.code().name}: {e.details()}") from e
        try:
            code = proc.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired as e:
            raise Failure(f"the launcher did not exit within {args.timeout:g} s of Shutdown") from e
        if code != 0:
            raise Failure(f"the launcher exited with code {code} after Shutdown")
        print(f"orchestrate: job {run_id} shut down, launcher exited 0", file=sys.stderr)
        return 0
    except (Failure, OSError) as e:
        print(f"orchestrate: error: {e}", file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            stop(proc)


if __name__ == "__main__":
    sys.exit(main())
