"""The worker over a byte stream: stdio (a child of the orchestrator) or TCP.

    python -m nfhm.rpc.serve --stdio
    python -m nfhm.rpc.serve --listen 127.0.0.1:7341 --token-file token.txt
    torchrun --nproc-per-node 8 -m nfhm.rpc.serve --listen 0.0.0.0:7341 --token-file token.txt --distributed

A message is one JSON line (wire.dumps) followed by the Arrow frames its
"tables" list names, in order. Requests: {"id", "method", "params", "tables"}.
Replies: {"id", "ok", "result" | "error", "tables"}. Over TCP the first line a
client sends must be {"auth": "<token>"}; nothing runs before it matches.
One call runs at a time; clients are served one after another. With --distributed (under
torchrun) rank 0 serves and the other ranks follow it (nfhm/rpc/torchrun.py).
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import socket
import sys
from typing import Any, BinaryIO

from ..core import world
from ..core.lifetime import die_with_parent
from ..methods.state import WorkerState
from . import torchrun, wire
from .registry import Dispatch, Registry, error_reply

DEFAULT_MAX_FRAME = 16 << 30
MAX_LINE = 64 << 20
AUTH_TIMEOUT_S = 10.0


class Disconnected(Exception):
    """The peer closed the stream."""


def read_message(inp: BinaryIO, max_frame: int) -> tuple[dict[str, Any], dict[str, Any]]:
    line = inp.readline(MAX_LINE + 1)
    if not line:
        raise Disconnected()
    if not line.endswith(b"\n"):
        if len(line) > MAX_LINE:
            raise wire.ProtocolError(f"control line longer than {MAX_LINE} bytes")
        raise Disconnected()
    header = wire.loads(line)
    if not isinstance(header, dict):
        raise wire.ProtocolError("a message must be a JSON object")
    names = header.get("tables", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise wire.ProtocolError('"tables" must be a list of names')
    try:
        tables = {name: wire.read_frame(inp, max_frame) for name in names}
    except EOFError:
        raise Disconnected() from None
    return header, tables


def write_message(out: BinaryIO, header: dict[str, Any], tables: dict[str, Any]) -> None:
    header = {**header, "tables": list(tables)}
    out.write(wire.dumps(header).encode() + b"\n")
    for table in tables.values():
        wire.write_frame(out, table)
    out.flush()


def serve_stream(state: WorkerState, inp: BinaryIO, out: BinaryIO, max_frame: int, run: Dispatch) -> None:
    """Answers requests until the peer closes the stream.

    A malformed message is answered with an error and ends the session: after
    a bad frame the stream position is unknown, so nothing later can be trusted.
    """
    while True:
        try:
            header, tables = read_message(inp, max_frame)
        except Disconnected:
            return
        except wire.ProtocolError as e:
            write_message(out, {"id": None, **error_reply(e)}, {})
            return
        reply, out_tables = run(state, str(header.get("method")), header.get("params") or {}, tables)
        try:
            write_message(out, {"id": header.get("id"), **reply}, out_tables)
        except Exception as e:  # noqa: BLE001 - an unencodable result is still answered
            if isinstance(e, (BrokenPipeError, ConnectionError)):
                return
            write_message(out, {"id": header.get("id"), **error_reply(e)}, {})


def serve_stdio(state: WorkerState, max_frame: int, run: Dispatch) -> None:
    # Keep fd 1 for the protocol and point fd 1 of everything else (print,
    # C libraries) at stderr, so no stray output corrupts a reply.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    die_with_parent()
    serve_stream(state, sys.stdin.buffer, out, max_frame, run)


def authenticate(conn: socket.socket, inp: BinaryIO, out: BinaryIO, token: bytes) -> bool:
    """The first message must carry the token; it may carry nothing else."""
    conn.settimeout(AUTH_TIMEOUT_S)
    try:
        header, _ = read_message(inp, max_frame=0)
    except (OSError, Disconnected, wire.ProtocolError):
        header = {}
    offered = header.get("auth")
    ok = isinstance(offered, str) and hmac.compare_digest(offered.encode(), token)
    conn.settimeout(None)
    reply = {"ok": True} if ok else error_reply(PermissionError("authentication failed: wrong or missing token"))
    try:
        write_message(out, {"id": header.get("id"), **reply}, {})
    except OSError:
        return False
    return ok


def serve_tcp(state: WorkerState, host: str, port: int, token: bytes, max_frame: int, run: Dispatch) -> None:
    with socket.create_server((host, port)) as server:
        bound = server.getsockname()
        print(json.dumps({"listening": f"{bound[0]}:{bound[1]}", "pid": os.getpid()}), flush=True)
        while True:
            conn, peer = server.accept()
            # Closing flushes what a vanished client never read, which fails too: the
            # `with` is inside the `try`, so no client can end the server.
            try:
                with conn, conn.makefile("rb") as inp, conn.makefile("wb") as out:
                    if authenticate(conn, inp, out, token):
                        serve_stream(state, inp, out, max_frame, run)
            except OSError as e:
                print(f"nfhm.rpc.serve: connection from {peer[0]} ended: {e}", file=sys.stderr, flush=True)


def read_token(token_file: str | None) -> bytes:
    if token_file:
        with open(token_file, "rb") as f:
            token = f.read().strip()
    else:
        token = os.environ.get("NFHM_TOKEN", "").strip().encode()
    if not token:
        raise SystemExit("nfhm.rpc.serve: a TCP worker needs a token: --token-file FILE or NFHM_TOKEN")
    return token


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nfhm.rpc.serve", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stdio", action="store_true", help="serve one orchestrator over stdin/stdout")
    mode.add_argument("--listen", metavar="HOST:PORT", help="serve over TCP (use 0.0.0.0 to accept other machines)")
    parser.add_argument("--token-file", help="file holding the shared token (default: env NFHM_TOKEN)")
    parser.add_argument("--max-frame-bytes", type=int, default=DEFAULT_MAX_FRAME)
    parser.add_argument(
        "--distributed", action="store_true", help="run under torchrun: rank 0 serves, the other ranks follow it"
    )
    args = parser.parse_args(argv)

    if args.distributed and os.environ.get("RANK", "0") != "0":
        # Only rank 0 speaks the protocol: under torchrun every rank shares its stdout, so the
        # others send theirs to stderr before anything can print.
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    registry = Registry.from_environment()
    state = WorkerState()
    run: Dispatch = registry.dispatch
    if args.distributed:
        leader = world.init().leader
        if not leader or args.listen:
            die_with_parent()  # the parent is torchrun's agent (serve_stdio does this for rank 0)
        if not leader:
            torchrun.follow(state, registry)
            return
        run = torchrun.lead(registry)
    try:
        if args.stdio:
            serve_stdio(state, args.max_frame_bytes, run)
            return
        host, _, port = args.listen.rpartition(":")
        serve_tcp(state, host or "127.0.0.1", int(port), read_token(args.token_file), args.max_frame_bytes, run)
    finally:
        if args.distributed:
            torchrun.release_followers()


if __name__ == "__main__":
    main()
