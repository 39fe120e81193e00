"""The worker over a byte stream: stdio (a child of the orchestrator) or TCP.

    python -m nfhm.rpc.serve --stdio
    python -m nfhm.rpc.serve --listen 127.0.0.1:7341 --token-file token.txt
    python -m nfhm.rpc.serve --listen 0.0.0.0:7341 --token-file token.txt --tls-cert cert.pem --tls-key key.pem --allow-dir /srv/nfhm
    torchrun --nproc-per-node 8 -m nfhm.rpc.serve --listen 0.0.0.0:7341 --token-file token.txt --distributed

A message is one JSON line (wire.dumps) followed by the Arrow frames its "tables" list names, in
order. Requests: {"id", "method", "params", "tables"}. Replies: {"id", "ok", "result" | "error",
"tables"}. Over TCP the first line a client sends must be {"auth": "<token>"}; nothing runs
before it matches (lobby.py), and then the worker reads and writes only the files under the
--allow-dir directories and imports only the plug-ins of nfhm and the --allow-plugin modules
(confinement.py). One call runs at a time; clients are served one after another. With
--distributed (under torchrun) rank 0 serves and the other ranks follow it (nfhm/rpc/torchrun.py).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import ssl
import sys
import time
from typing import Any, BinaryIO

from ..core import world
from ..core.lifetime import die_with_parent
from ..methods.state import WorkerState
from . import torchrun, wire
from .confinement import Confinement
from .credentials import read_token, tls_context
from .lobby import Lobby
from .registry import Dispatch, Registry, error_reply

# The orchestrator that started a stdio worker is trusted; a TCP client's frames are held to a
# size that fits what nfhm sends: an image list of ~8 million paths of 100 characters.
LOCAL_MAX_FRAME = 16 << 30
REMOTE_MAX_FRAME = 1 << 30
MAX_LINE = 64 << 20
LINGER_S = 2.0


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
        tables = wire.read_frames(inp, names, max_frame)
    except EOFError:
        raise Disconnected() from None
    return header, tables


def write_message(out: BinaryIO, header: dict[str, Any], tables: dict[str, Any]) -> None:
    out.write(wire.control_line(header, list(tables)))
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


def serve_tcp(
    state: WorkerState,
    address: tuple[str, int],
    token: bytes,
    tls: ssl.SSLContext | None,
    max_frame: int,
    run: Dispatch,
) -> None:
    """Methods run on this thread, for one admitted client after another; the lobby admits them."""
    with socket.create_server(address) as server:
        bound = server.getsockname()
        print(json.dumps({"listening": f"{bound[0]}:{bound[1]}", "pid": os.getpid()}), flush=True)
        lobby = Lobby(server, token, tls)
        lobby.start()
        while True:
            conn, peer = lobby.admitted.get()
            # Closing flushes what a vanished client never read, which fails too: the
            # `with` is inside the `try`, so no client can end the server.
            try:
                with conn, conn.makefile("rb") as inp, conn.makefile("wb") as out:
                    serve_stream(state, inp, out, max_frame, run)
                    _close_gently(conn)
            except OSError as e:
                print(f"nfhm.rpc.serve: connection from {peer} ended: {e}", file=sys.stderr, flush=True)


def _close_gently(conn: socket.socket) -> None:
    """Ends a connection so that its last reply arrives: closing with input unread (the rest of a
    refused frame) would reset the connection, and the peer could lose the reply that says why.
    The unread input is drained, for at most LINGER_S."""
    deadline = time.monotonic() + LINGER_S
    try:
        conn.shutdown(socket.SHUT_WR)
        while (left := deadline - time.monotonic()) > 0:
            conn.settimeout(left)
            if not conn.recv(1 << 16):
                return
    except OSError:  # the peer is gone, or the deadline passed
        pass


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nfhm.rpc.serve", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stdio", action="store_true", help="serve one orchestrator over stdin/stdout")
    mode.add_argument(
        "--listen", metavar="HOST:PORT", help="serve over TCP; 0.0.0.0 accepts every network this machine is on"
    )
    parser.add_argument("--token-file", help="file holding the shared token, mode 600 (default: env NFHM_TOKEN)")
    parser.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this certificate (PEM; with --tls-key)")
    parser.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM, mode 600)")
    paths = parser.add_mutually_exclusive_group()
    paths.add_argument(
        "--allow-dir",
        action="append",
        metavar="DIR",
        help="a directory whose files TCP clients may have read and written (repeatable; default: the working directory)",
    )
    paths.add_argument("--allow-any-path", action="store_true", help="let TCP clients name any path this process can use")
    parser.add_argument(
        "--allow-plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module or package whose plug-ins TCP clients may name, beside nfhm's own (repeatable)",
    )
    parser.add_argument(
        "--max-frame-bytes",
        type=int,
        help=f"the most bytes of Arrow frames one message may carry (default over TCP: {REMOTE_MAX_FRAME})",
    )
    parser.add_argument(
        "--distributed", action="store_true", help="run under torchrun: rank 0 serves, the other ranks follow it"
    )
    args = parser.parse_args(argv)
    remote_only = [args.tls_cert, args.tls_key, args.allow_dir, args.allow_any_path, args.allow_plugin]
    if args.stdio and any(remote_only):
        parser.error("--tls-*, --allow-* are for --listen; a --stdio worker serves the orchestrator that started it")
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")

    # A bad token file or key ends the server before torchrun's ranks join or anything listens.
    token = read_token(args.token_file) if args.listen else b""
    tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None

    if args.distributed and os.environ.get("RANK", "0") != "0":
        # Only rank 0 speaks the protocol: under torchrun every rank shares its stdout, so the
        # others send theirs to stderr before anything can print.
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    confinement = None if args.stdio else Confinement.of(args.allow_dir, args.allow_any_path, args.allow_plugin)
    registry = Registry.from_environment(confinement)
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
            serve_stdio(state, args.max_frame_bytes or LOCAL_MAX_FRAME, run)
            return
        host, _, port = args.listen.rpartition(":")
        host = host or "127.0.0.1"
        if tls is None and not _is_loopback(host):
            print(
                f"nfhm.rpc.serve: warning: listening on {host} without TLS: the token and all data cross the "
                "network unencrypted (--tls-cert and --tls-key encrypt them)",
                file=sys.stderr,
                flush=True,
            )
        serve_tcp(state, (host, int(port)), token, tls, args.max_frame_bytes or REMOTE_MAX_FRAME, run)
    finally:
        if args.distributed:
            torchrun.release_followers()


if __name__ == "__main__":
    main()
