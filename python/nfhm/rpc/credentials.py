"""What a TCP worker keeps secret: the shared token (--token-file or NFHM_TOKEN) and its TLS key.

Each problem with them ends the server at start with one line saying what to do, never a
traceback. A token file or key that others on the machine can read is refused, as ssh refuses
such a private key: a token anyone can read protects nothing.
"""

from __future__ import annotations

import os
import ssl
import stat

TOKEN_ENV = "NFHM_TOKEN"
# The first line a client sends, {"auth": "<token>"}, must fit the lobby's limit (lobby.py)
# even when every character of the token needs a six-character JSON escape.
MAX_TOKEN_BYTES = 512


def _fail(message: str) -> SystemExit:
    return SystemExit(f"nfhm.rpc.serve: {message}")


def _check_private(path: str, what: str, missing_hint: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise _fail(f"{what} {path} does not exist{missing_hint}") from None
    except OSError as e:
        raise _fail(f"cannot read {what} {path}: {e.strerror}") from None
    if not stat.S_ISREG(mode):
        raise _fail(f"{what} {path} is not a regular file")
    if mode & 0o077:
        raise _fail(
            f"{what} {path} can be accessed by other users (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}` and start again"
        )


def read_token(token_file: str | None) -> bytes:
    if token_file:
        make = f"; make one: openssl rand -hex 32 > {token_file} && chmod 600 {token_file}"
        _check_private(token_file, "token file", make)
        try:
            with open(token_file, "rb") as f:
                token = f.read(MAX_TOKEN_BYTES + 1).strip()
        except OSError as e:
            raise _fail(f"cannot read token file {token_file}: {e.strerror}") from None
    else:
        token = os.environ.get(TOKEN_ENV, "").strip().encode()
    if not token:
        raise _fail(f"a TCP worker needs a token: --token-file FILE or {TOKEN_ENV}")
    if len(token) > MAX_TOKEN_BYTES:
        raise _fail(f"the token is longer than {MAX_TOKEN_BYTES} bytes; `openssl rand -hex 32` makes a good one")
    return token


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """The server side of TLS 1.2 or later with this certificate (chain) and private key."""
    _check_private(key, "TLS key", "")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError:  # the key's existence was checked above
        raise _fail(f"TLS certificate {cert} does not exist") from None
    except (ssl.SSLError, OSError) as e:
        raise _fail(f"cannot use --tls-cert {cert} with --tls-key {key}: {e}") from None
    return context
