"""The secret key: encrypting channel URLs and other secrets at rest, hashing API keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from engine.config import ROOT
from engine.errors import EngineError


class SecretKeyError(EngineError):
    """No usable secret key, or a secret that this key cannot decrypt."""


@lru_cache(maxsize=4)
def _master(configured: str, key_file: str) -> bytes:
    if configured:
        return hashlib.sha256(configured.encode()).digest()
    path = Path(key_file)
    if path.exists():
        raw = path.read_bytes().strip()
        if len(raw) < 32:
            raise SecretKeyError(f"{path} is too short to be a Klaxon secret key")
        return hashlib.sha256(raw).digest()
    # The embedded default: make a key once and keep it next to the database.
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    return hashlib.sha256(raw).digest()


def master_key() -> bytes:
    """32 bytes from KLAXON_SECRET_KEY, or from a key generated once under the data folder."""
    # Read the two variables directly: building every Settings cost a request 0.2 ms of its
    # 4 (each API-key check derives a key). The defaults are Settings.load()'s.
    secret = os.environ.get("KLAXON_SECRET_KEY", "")
    data_dir = Path(os.environ.get("KLAXON_DATA_DIR", str(ROOT / "data")))
    return _master(secret, str(data_dir / "secret.key"))


def _derived(purpose: str) -> bytes:
    return hmac.new(master_key(), purpose.encode(), hashlib.sha256).digest()


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derived("encrypt")))


def encrypt(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretKeyError(
            "a stored secret cannot be decrypted: KLAXON_SECRET_KEY differs from the key it "
            "was saved with"
        ) from None


def signing_key() -> bytes:
    """For session tokens (JWT) and other signatures."""
    return _derived("sign")


def hash_token(token: str) -> str:
    """API keys and refresh tokens are kept as keyed hashes, never in clear."""
    return hmac.new(_derived("token"), token.encode(), hashlib.sha256).hexdigest()


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"
