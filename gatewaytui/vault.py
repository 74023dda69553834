"""Encryption at rest for upstream credentials (API keys, OAuth tokens).

The key comes from an environment variable (a Fernet key) or a key file created with 0600 permissions
beside the database. Tenant keys are never encrypted: only their hashes are stored.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

PREFIX = "enc1:"


class VaultError(Exception):
    pass


class Vault:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def open(cls, env_name: str, key_file: str | Path) -> Vault:
        raw = os.environ.get(env_name)
        if raw:
            return cls(_normalise(raw))
        path = Path(key_file)
        if path.exists():
            return cls(path.read_bytes().strip())
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key + b"\n")
        finally:
            os.close(fd)
        return cls(key)

    def encrypt(self, plaintext: str) -> str:
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        if not token.startswith(PREFIX):
            raise VaultError("value is not encrypted by this vault")
        try:
            return self._fernet.decrypt(token[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise VaultError(
                "cannot decrypt credential: wrong secret key (GATEWAYTUI_SECRET_KEY / key file)"
            ) from None


def _normalise(raw: str) -> bytes:
    """Accept a Fernet key, or derive one from any passphrase."""
    try:
        if len(base64.urlsafe_b64decode(raw.encode())) == 32:
            return raw.encode()
    except Exception:
        pass
    return base64.urlsafe_b64encode(hashlib.sha256(raw.encode()).digest())
