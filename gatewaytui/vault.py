"""Encryption at rest for upstream credentials (API keys, OAuth tokens).

The key comes from an environment variable or a key file created with 0600 permissions beside the
database. The variable holds either a Fernet key (used as is) or a passphrase, stretched with scrypt
under a random salt; the salt and the cost parameters are stored in the database (``settings``, key
``vault_kdf``), so they travel with the data they unlock. Tenant keys are never encrypted: only their
hashes are stored.

The first process to open a database with a key stores a check value beside the KDF parameters
(``settings``, key ``vault_check``: a constant encrypted under that key, written once). Every later
opener (the gateway, the CLI) must decrypt it, so a shell with another key (or none, where a fresh key
file would be made) is refused with a clear message instead of encrypting new credentials under a key the
gateway does not hold.

Databases written before scrypt hold credentials under the old derivation (one unsalted SHA-256 of the
passphrase): ``Vault.upgrade`` re-encrypts them under the scrypt key at start, and until then they still
decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .store import accounts as account_store
from .store import db as dbmod
from .store import settings as settings_store

PREFIX = "enc1:"
KDF_SETTING = "vault_kdf"
CHECK_SETTING = "vault_check"
CHECK_PLAINTEXT = "gatewaytui vault key check"
WRONG_KEY = "cannot decrypt: wrong secret key"
# OWASP's minimum for scrypt (128 MiB, about a third of a second): paid once per process start
SCRYPT_COST = {"n": 2**17, "r": 8, "p": 1}
ENCRYPTED_COLUMNS = ("secret", "oauth")


class VaultError(Exception):
    pass


class KeyMismatch(VaultError):
    """The key at hand is not the one this database's credentials are encrypted with."""


class Vault:
    def __init__(self, key: bytes, legacy: bytes | None = None) -> None:
        self._fernet = Fernet(key)
        self._legacy = Fernet(legacy) if legacy is not None else None  # read-only: the pre-scrypt key

    @classmethod
    def open(cls, env_name: str, key_file: str | Path, conn: sqlite3.Connection) -> Vault:
        """The vault for this database (``conn``: the migrated database, which keeps the KDF's salt and
        the key check value); raises ``KeyMismatch`` when the key at hand is not the database's."""
        raw = os.environ.get(env_name)
        path = Path(key_file)
        if raw:
            where = f"${env_name}"
            if _is_fernet_key(raw):
                vault = cls(raw.encode())
            else:
                vault = cls(derive(raw, kdf_params(conn)), legacy=legacy_key(raw))
        elif path.exists():
            where = f"key file {path}"
            vault = cls(path.read_bytes().strip())
        else:
            if _holds_secrets(conn):
                raise KeyMismatch(
                    f"{WRONG_KEY}: this database's credentials are encrypted with a key that is not here "
                    f"(${env_name} is unset and {path} does not exist); set ${env_name} to the key the "
                    "gateway uses, or run where its key file is"
                )
            where = f"key file {path}"
            vault = cls(_new_key_file(path))
        vault.verify(conn, where)
        return vault

    def verify(self, conn: sqlite3.Connection, where: str = "the secret key") -> None:
        """Check this key against the database's check value, storing it first if there is none yet."""
        check = settings_store.get(conn, CHECK_SETTING)
        if not isinstance(check, str):
            tokens = _stored_tokens(conn)
            if tokens and not any(self._opens(t) for t in tokens):
                raise KeyMismatch(_mismatch(where))
            with dbmod.Transaction(conn):
                settings_store.put_new(conn, CHECK_SETTING, self.encrypt(CHECK_PLAINTEXT))
                check = settings_store.get(conn, CHECK_SETTING)
        if not (isinstance(check, str) and self._opens(check)):
            raise KeyMismatch(_mismatch(where))

    def _opens(self, token: str) -> bool:
        try:
            self.decrypt(token)
            return True
        except VaultError:
            return False

    def encrypt(self, plaintext: str) -> str:
        return PREFIX + self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        if not token.startswith(PREFIX):
            raise VaultError("value is not encrypted by this vault")
        data = token[len(PREFIX) :].encode()
        for fernet in (self._fernet, self._legacy):
            if fernet is None:
                continue
            try:
                return fernet.decrypt(data).decode()
            except InvalidToken:
                continue
        raise VaultError(f"{WRONG_KEY} (GATEWAYTUI_SECRET_KEY / key file)")

    def upgrade(self, conn: sqlite3.Connection) -> int:
        """Re-encrypt every stored credential still under the pre-scrypt key; returns how many were."""
        if self._legacy is None:
            return 0
        changed = 0
        with dbmod.Transaction(conn):
            for row in account_store.listing(conn, include_removed=True):
                fields: dict[str, Any] = {}
                for column in ENCRYPTED_COLUMNS:
                    token = row.get(column)
                    if token and self._legacy_only(token):
                        fields[column] = self.encrypt(self.decrypt(token))
                if fields:
                    account_store.update(conn, row["id"], **fields)
                    changed += 1
        return changed

    def _legacy_only(self, token: str) -> bool:
        if not token.startswith(PREFIX):
            return False
        try:
            self._fernet.decrypt(token[len(PREFIX) :].encode())
            return False
        except InvalidToken:
            return True


def _mismatch(where: str) -> str:
    return (
        f"{WRONG_KEY}: {where} is not the key this database's credentials are encrypted with; "
        "use the gateway's key (the same GATEWAYTUI_SECRET_KEY, or its key file)"
    )


def _new_key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key + b"\n")
    finally:
        os.close(fd)
    return key


def _stored_tokens(conn: sqlite3.Connection) -> list[str]:
    rows = account_store.listing(conn, include_removed=True)
    return [row[c] for row in rows for c in ENCRYPTED_COLUMNS if row.get(c)]


def _holds_secrets(conn: sqlite3.Connection) -> bool:
    return settings_store.get(conn, CHECK_SETTING) is not None or bool(_stored_tokens(conn))


def kdf_params(conn: sqlite3.Connection) -> dict[str, Any]:
    """The database's scrypt salt and cost, created on first use (the first writer wins)."""
    fresh = {"kdf": "scrypt", "salt": base64.b64encode(os.urandom(16)).decode(), **SCRYPT_COST}
    with dbmod.Transaction(conn):
        settings_store.put_new(conn, KDF_SETTING, fresh)
        params = settings_store.get(conn, KDF_SETTING)
    if not isinstance(params, dict) or params.get("kdf") != "scrypt":
        raise VaultError(f"unknown key derivation stored in settings.{KDF_SETTING}: {params!r}")
    return params


def derive(passphrase: str, params: dict[str, Any]) -> bytes:
    """A Fernet key from a passphrase: scrypt with the stored salt and cost."""
    kdf = Scrypt(
        salt=base64.b64decode(params["salt"]),
        length=32,
        n=int(params["n"]),
        r=int(params["r"]),
        p=int(params["p"]),
    )
    return base64.urlsafe_b64encode(kdf.derive(passphrase.encode()))


def legacy_key(passphrase: str) -> bytes:
    """The derivation before scrypt (one unsalted SHA-256): kept only to read and upgrade old rows."""
    return base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest())


def _is_fernet_key(raw: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(raw.encode())) == 32
    except Exception:
        return False
