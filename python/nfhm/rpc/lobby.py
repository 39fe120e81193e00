"""Connections to a TCP worker until they show the token: all handled side by side in one thread,
each with a short deadline and a small budget, so that idle or hostile connections neither delay
a client with the token nor cost the server memory.

The lobby accepts each connection, finishes its TLS handshake (with --tls-cert), and reads its
first line, which must be {"auth": "<token>"}: at most MAX_FIRST_LINE bytes, within
AUTH_DEADLINE_S of the connection's arrival. A connection with the token is answered
{"ok": true} and queued in `admitted` for the thread that runs methods (one client at a time);
any other is answered with the reason, when it can still be, and closed. At most MAX_WAITING
connections wait at once: a new one pushes out the oldest, so a crowd of idle connections
cannot keep a client out for longer than they keep arriving faster than it authenticates.
"""

from __future__ import annotations

import hmac
import queue
import selectors
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from . import wire
from .registry import error_reply

AUTH_DEADLINE_S = 5.0
MAX_FIRST_LINE = 4096
MAX_WAITING = 256
# A refused connection is drained this long, of at most this much, before it is closed: closing
# with input unread (a request sent right behind a wrong token) resets the connection, and the
# client would lose the reply that says why.
LINGER_S = 1.0
MAX_DRAIN = 1 << 16


def answer(line: bytes, token: bytes) -> dict[str, Any]:
    """The reply to a connection's first line: ok when it carries the token and no tables."""
    try:
        header = wire.loads(line)
    except wire.ProtocolError:
        header = None
    if not isinstance(header, dict):
        header = {}
    offered = header.get("auth")
    # surrogatepass: JSON can carry a lone surrogate ("\ud800"), which strict UTF-8 cannot encode.
    ok = (
        isinstance(offered, str)
        and not header.get("tables")
        and hmac.compare_digest(offered.encode("utf-8", "surrogatepass"), token)
    )
    reply = {"ok": True} if ok else error_reply(PermissionError("authentication failed: wrong or missing token"))
    return {"id": header.get("id"), **reply}


@dataclass
class _Waiting:
    peer: str
    deadline: float
    handshaken: bool
    line: bytearray = field(default_factory=bytearray)
    closing: bool = False  # refused and answered: only draining until LINGER_S
    drained: int = 0


class Lobby:
    def __init__(self, server: socket.socket, token: bytes, tls: ssl.SSLContext | None) -> None:
        self.server = server
        self.token = token
        self.tls = tls
        # (connection, peer address), admitted and answered, in order of arrival
        self.admitted: queue.Queue[tuple[socket.socket, str]] = queue.Queue()
        self._selector = selectors.DefaultSelector()
        self._waiting: dict[socket.socket, _Waiting] = {}  # oldest first

    def start(self) -> None:
        self.server.setblocking(False)
        self._selector.register(self.server, selectors.EVENT_READ)
        threading.Thread(target=self._run, name="nfhm-lobby", daemon=True).start()

    def _run(self) -> None:
        while True:
            deadline = min((w.deadline for w in self._waiting.values()), default=None)
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            for key, _ in self._selector.select(timeout):
                if key.fileobj is self.server:
                    self._accept()
                elif key.fileobj in self._waiting:
                    conn: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        self._advance(conn)
                    except Exception as e:  # noqa: BLE001 - one connection's surprise must not stop the lobby
                        print(f"nfhm.rpc.serve: lobby: {e!r}", file=sys.stderr, flush=True)
                        if conn in self._waiting:
                            self._close(conn)
            now = time.monotonic()
            for conn, w in [(c, w) for c, w in self._waiting.items() if w.deadline <= now]:
                if w.closing:
                    self._close(conn)
                else:
                    self._refuse(conn, f"no token within {AUTH_DEADLINE_S:g} s")

    def _accept(self) -> None:
        try:
            conn, address = self.server.accept()
        except OSError as e:  # out of file descriptors, a connection reset before accept
            print(f"nfhm.rpc.serve: accept failed: {e}", file=sys.stderr, flush=True)
            return
        if len(self._waiting) >= MAX_WAITING:
            self._refuse(next(iter(self._waiting)), f"more than {MAX_WAITING} connections waiting to authenticate")
        conn.setblocking(False)
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        self._waiting[conn] = _Waiting(address[0], time.monotonic() + AUTH_DEADLINE_S, handshaken=self.tls is None)
        self._selector.register(conn, selectors.EVENT_READ)

    def _advance(self, conn: socket.socket) -> None:
        """Goes as far as the bytes that have arrived allow: the handshake, then the first line
        byte by byte, so that nothing after its newline is taken from the methods' reader."""
        waiting = self._waiting[conn]
        if waiting.closing:
            self._drain(conn, waiting)
            return
        try:
            if not waiting.handshaken:
                conn.do_handshake()  # type: ignore[attr-defined]
                waiting.handshaken = True
                self._selector.modify(conn, selectors.EVENT_READ)
            while not waiting.line.endswith(b"\n"):
                if len(waiting.line) >= MAX_FIRST_LINE:
                    self._refuse(conn, f"the first line is longer than {MAX_FIRST_LINE} bytes")
                    return
                byte = conn.recv(1)
                if not byte:
                    self._close(conn)
                    return
                waiting.line += byte
        except ssl.SSLWantWriteError:
            self._selector.modify(conn, selectors.EVENT_WRITE)
            return
        except (ssl.SSLWantReadError, BlockingIOError):
            return
        except OSError as e:  # a failed handshake (a wrong certificate on the client), a reset
            ended = f"nfhm.rpc.serve: connection from {waiting.peer} ended before authenticating: {e}"
            print(ended, file=sys.stderr, flush=True)
            self._close(conn)
            return
        reply = answer(bytes(waiting.line), self.token)
        if not reply["ok"]:
            self._send(conn, reply)
            self._linger(conn)
        elif self._send(conn, reply):
            self._forget(conn)
            conn.settimeout(None)
            self.admitted.put((conn, waiting.peer))
        else:
            self._close(conn)

    def _refuse(self, conn: socket.socket, reason: str) -> None:
        if self._waiting[conn].handshaken:
            self._send(conn, {"id": None, **error_reply(PermissionError(f"authentication failed: {reason}"))})
        self._linger(conn)

    def _linger(self, conn: socket.socket) -> None:
        """No more writes; the input is drained (see LINGER_S) and then the connection closed."""
        waiting = self._waiting[conn]
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:  # the peer is gone already
            self._close(conn)
            return
        waiting.closing = True
        waiting.deadline = time.monotonic() + LINGER_S
        self._selector.modify(conn, selectors.EVENT_READ)

    def _drain(self, conn: socket.socket, waiting: _Waiting) -> None:
        try:
            data = conn.recv(MAX_DRAIN)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        except OSError:
            data = b""
        waiting.drained += len(data)
        if not data or waiting.drained > MAX_DRAIN:
            self._close(conn)

    @staticmethod
    def _send(conn: socket.socket, reply: dict[str, Any]) -> bool:
        """Without waiting (the socket is non-blocking): the short line fits a new connection's
        empty buffers, and a peer that does not take it must not stall the lobby."""
        line = wire.control_line(reply, [])
        try:
            return conn.send(line) == len(line)
        except OSError:  # would block (ssl.SSLWantWriteError is one), or the peer is gone
            return False

    def _forget(self, conn: socket.socket) -> None:
        self._selector.unregister(conn)
        del self._waiting[conn]

    def _close(self, conn: socket.socket) -> None:
        self._forget(conn)
        conn.close()
