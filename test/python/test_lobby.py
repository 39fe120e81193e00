"""The TCP worker's lobby (nfhm/rpc/lobby.py) over real sockets: a client with the token is admitted
with the bytes it sent after its token line left for the methods' reader; a connection without
it is refused at its deadline; the oldest waiting connection makes room for a new one."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from nfhm.rpc import lobby as lobby_module
from nfhm.rpc.lobby import Lobby

TOKEN = b"the-token"


@pytest.fixture
def lobby() -> Iterator[Lobby]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        gate = Lobby(server, TOKEN, None)
        gate.start()
        yield gate


def connect(lobby: Lobby, first: bytes = b"") -> socket.socket:
    client = socket.create_connection(lobby.server.getsockname(), timeout=30)
    client.sendall(first)
    return client


def said(client: socket.socket) -> dict:
    return json.loads(client.makefile("rb").readline())


def test_the_token_admits_and_what_follows_it_is_left_for_the_methods(lobby: Lobby) -> None:
    client = connect(lobby, b'{"id": 0, "auth": "the-token"}\n{"id": 1, "method": "hello"}\n')
    assert said(client) == {"id": 0, "ok": True, "tables": []}
    admitted, _ = lobby.admitted.get(timeout=30)
    assert admitted.makefile("rb").readline() == b'{"id": 1, "method": "hello"}\n'


def test_a_connection_without_the_token_is_refused_at_its_deadline(lobby: Lobby, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lobby_module, "AUTH_DEADLINE_S", 0.2)
    reply = said(connect(lobby, b'{"auth": "the-'))
    assert reply["ok"] is False and reply["error"]["message"] == "authentication failed: no token within 0.2 s"
    assert lobby.admitted.empty()


def test_the_oldest_waiting_connection_makes_room(lobby: Lobby, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lobby_module, "MAX_WAITING", 2)
    oldest = connect(lobby)
    waiting = [connect(lobby) for _ in range(2)]
    assert said(oldest)["error"]["message"] == "authentication failed: more than 2 connections waiting to authenticate"
    waiting[-1].sendall(b'{"id": 0, "auth": "the-token"}\n')
    assert said(waiting[-1])["ok"] is True
