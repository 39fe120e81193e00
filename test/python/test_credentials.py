"""A TCP worker's secrets (nfhm/rpc/credentials.py): a missing token file, or a token file or TLS
key that other users can read, ends the server with one line saying what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nfhm.rpc.credentials import read_token, tls_context


def secret(path: Path, text: str, mode: int) -> str:
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_a_token_file_only_its_owner_can_read_gives_the_token(tmp_path: Path) -> None:
    assert read_token(secret(tmp_path / "token", "abc123\n", 0o600)) == b"abc123"


def test_a_missing_token_file_says_how_to_make_one(tmp_path: Path) -> None:
    missing = tmp_path / "token"
    with pytest.raises(SystemExit, match=rf"token file {missing} does not exist; make one: openssl rand -hex 32 > {missing} && chmod 600 {missing}"):
        read_token(str(missing))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_a_token_file_others_can_read_is_refused_like_an_ssh_key(tmp_path: Path, mode: int) -> None:
    token = secret(tmp_path / "token", "abc123", mode)
    with pytest.raises(SystemExit, match=rf"can be accessed by other users \(mode 0{mode:o}\); run `chmod 600 {token}`"):
        read_token(token)


def test_a_tls_key_others_can_read_is_refused(tmp_path: Path) -> None:
    key = secret(tmp_path / "key.pem", "-----BEGIN PRIVATE KEY-----\n", 0o644)
    with pytest.raises(SystemExit, match=r"TLS key .* can be accessed by other users"):
        tls_context(str(tmp_path / "cert.pem"), key)


def test_the_server_ends_with_the_message_and_no_traceback(tmp_path: Path) -> None:
    token = secret(tmp_path / "token", "abc123", 0o644)
    run = subprocess.run(
        [sys.executable, "-m", "nfhm.rpc.serve", "--listen", "127.0.0.1:0", "--token-file", token],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1
    assert run.stderr.strip() == (
        f"nfhm.rpc.serve: token file {token} can be accessed by other users (mode 0644); run `chmod 600 {token}` and start again"
    )


def test_a_missing_certificate_is_named(tmp_path: Path) -> None:
    key = secret(tmp_path / "key.pem", "-----BEGIN PRIVATE KEY-----\n", 0o600)
    with pytest.raises(SystemExit, match=rf"TLS certificate {tmp_path / 'cert.pem'} does not exist"):
        tls_context(str(tmp_path / "cert.pem"), key)
