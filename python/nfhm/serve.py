"""The worker over a byte stream: stdio (a child of the orchestrator) or TCP.

    python -m nfhm.serve --stdio
    python -m nfhm.serve --listen 127.0.0.1:7341 --token-file token.txt
    torchrun --nproc-per-node 8 -m nfhm.serve --listen 0.0.0.0:7341 --token-file token.txt --distributed

A message is one JSON line (protocol.dumps) followed by the Arrow frames its
"tables" list names, in order. Requests: {"id", "method", "params", "tables"}.
Replies: {"id", "ok", "result" | "error", "tables"}. Over TCP the first line a
client sends must be {"auth": "<token>"}; nothing runs before it matches.
One call runs at a time; clients are served one after another. With --distributed (under
torchrun) rank 0 serves and the other ranks follow it (distributed.py).
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import socket
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

from . import protocol
from .worker import COLLECTIVE, Worker, dispatch, error_reply, load_extensions, die_with_parent

DEFAULT_MAX_FRAME = 16 << 30
MAX_LINE = 64 << 20
AUTH_TIMEOUT_S = 10.0
Dispatch = Callable[[Worker, str, dict[str, Any], dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]


class Disconnected(Exception):
    """The peer closed the stream."""


def read_message(inp: BinaryIO, max_frame: int) -> tuple[dict[str, Any], dict[str, Any]]:
    line = inp.readline(MAX_LINE + 1)
    if not line:
        raise Disconnected()
    if not line.endswith(b"\n"):
        if len(line) > MAX_LINE:
            raise protocol.ProtocolError(f"control line longer than {MAX_LINE} bytes")
        raise Disconnected()
    header = protocol.loads(line)
    if not isinstance(header, dict):
        raise protocol.ProtocolError("a message must be a JSON object")
    names = header.get("tables", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise protocol.ProtocolError('"tables" must be a list of names')
    try:
        tables = {name: protocol.read_frame(inp, max_frame) for name in names}
    except EOFError:
        raise Disconnected() from None
    return header, tables


def write_message(out: BinaryIO, header: dict[str, Any], tables: dict[str, Any]) -> None:
    header = {**header, "tables": list(tables)}
    out.write(protocol.dumps(header).encode() + b"\n")
    for table in tables.values():
        protocol.write_frame(out, table)
    out.flush()


def serve_stream(worker: Worker, inp: BinaryIO, out: BinaryIO, max_frame: int, run: Dispatch = dispatch) -> None:
    """Answers requests until the peer closes the stream.

    A malformed message is answered with an error and ends the session: after
    a bad frame the stream position is unknown, so nothing later can be trusted.
    """
    while True:
        try:
            header, tables = read_message(inp, max_frame)
        except Disconnected:
            return
        except protocol.ProtocolError as e:
            write_message(out, {"id": None, **error_reply(e)}, {})
            return
        reply, out_tables = run(worker, str(header.get("method")), header.get("params") or {}, tables)
        try:
            write_message(out, {"id": header.get("id"), **reply}, out_tables)
        except Exception as e:  # noqa: BLE001 - an unencodable result is still answered
            if isinstance(e, (BrokenPipeError, ConnectionError)):
                return
            write_message(out, {"id": header.get("id"), **error_reply(e)}, {})


def serve_stdio(worker: Worker, max_frame: int, run: Dispatch = dispatch) -> None:
    # Keep fd 1 for the protocol and point fd 1 of everything else (print,
    # C libraries) at stderr, so no stray output corrupts a reply.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    die_with_parent()
    serve_stream(worker, sys.stdin.buffer, out, max_frame, run)


def authenticate(conn: socket.socket, inp: BinaryIO, out: BinaryIO, token: bytes) -> bool:
    """The first message must carry the token; it may carry nothing else."""
    conn.settimeout(AUTH_TIMEOUT_S)
    try:
        header, _ = read_message(inp, max_frame=0)
    except (OSError, Disconnected, protocol.ProtocolError):
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


def serve_tcp(worker: Worker, host: str, port: int, token: bytes, max_frame: int, run: Dispatch = dispatch) -> None:
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
                        serve_stream(worker, inp, out, max_frame, run)
            except OSError as e:
                print(f"nfhm.serve: connection from {peer[0]} ended: {e}", file=sys.stderr, flush=True)


def read_token(token_file: str | None) -> bytes:
    if token_file:
        with open(token_file, "rb") as f:
            token = f.read().strip()
    else:
        token = os.environ.get("NFHM_TOKEN", "").strip().encode()
    if not token:
        raise SystemExit("nfhm.serve: a TCP worker needs a token: --token-file FILE or NFHM_TOKEN")
    return token


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nfhm.serve", description=__doc__.split("\n\n")[0])
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
    load_extensions()
    worker = Worker()
    run: Dispatch = dispatch
    if args.distributed:
        from . import distributed

        leader = distributed.init().leader
        if not leader or args.listen:
            die_with_parent()  # the parent is torchrun's agent (serve_stdio does this for rank 0)
        if not leader:
            distributed.follow(worker, dispatch)
            return
        run = distributed.lead(dispatch, COLLECTIVE.__contains__)
    try:
        if args.stdio:
            serve_stdio(worker, args.max_frame_bytes, run)
            return
        host, _, port = args.listen.rpartition(":")
        serve_tcp(worker, host or "127.0.0.1", int(port), read_token(args.token_file), args.max_frame_bytes, run)
    finally:
        if args.distributed:
            distributed.release_followers()


if __name__ == "__main__":
    main()
