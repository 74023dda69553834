"""Credentials at rest: the passphrase is stretched with scrypt under a stored salt, credentials written
under the old unsalted SHA-256 derivation are upgraded at start, and the database files are 0600."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken

from gatewaytui import config as configmod
from gatewaytui.runtime import Runtime
from gatewaytui.store import accounts as account_store
from gatewaytui.store import db as dbmod
from gatewaytui.store import settings as settings_store
from gatewaytui.vault import KDF_SETTING, PREFIX, Vault, VaultError, derive

PASSPHRASE = "correct horse battery staple"


def _old_encrypt(passphrase: str, plaintext: str) -> str:
    """What the pre-scrypt vault stored: Fernet under base64(sha256(passphrase))."""
    key = base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest())
    return PREFIX + Fernet(key).encrypt(plaintext.encode()).decode()


def _mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _runtime(tmp_path: Path) -> Runtime:
    cfg = configmod.parse({"database": {"path": str(tmp_path / "gw.db")}})
    return Runtime(cfg)


async def test_old_derivation_database_decrypts_and_is_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "gw.db"
    dbmod.migrate(db)
    conn = dbmod.connect(db)
    with dbmod.Transaction(conn):
        row = account_store.insert(
            conn,
            label="legacy",
            provider="anthropic",
            base_url="http://127.0.0.1:9",
            secret=_old_encrypt(PASSPHRASE, "sk-legacy-upstream"),
            oauth=_old_encrypt(PASSPHRASE, json.dumps({"access_token": "at-legacy"})),
            enabled=1,
            source="db",
        )
    conn.close()
    monkeypatch.setenv("GATEWAYTUI_SECRET_KEY", PASSPHRASE)
    rt = _runtime(tmp_path)
    await rt.start()
    try:
        acc = rt.pool.accounts[row["id"]]
        assert acc.api_key == "sk-legacy-upstream"
        assert acc.oauth == {"access_token": "at-legacy"}
    finally:
        await rt.stop()
    conn = dbmod.connect(db)
    stored = account_store.get(conn, row["id"])
    params = settings_store.get(conn, KDF_SETTING)
    conn.close()
    assert stored is not None
    new = Fernet(derive(PASSPHRASE, params))
    old = Fernet(base64.urlsafe_b64encode(hashlib.sha256(PASSPHRASE.encode()).digest()))
    for column, plain in (("secret", "sk-legacy-upstream"), ("oauth", '{"access_token": "at-legacy"}')):
        token = stored[column][len(PREFIX) :].encode()
        assert new.decrypt(token).decode() == plain  # re-encrypted under scrypt ...
        with pytest.raises(InvalidToken):
            old.decrypt(token)  # ... and no longer under the weak key
    # a second start finds nothing left to upgrade and still decrypts
    rt = _runtime(tmp_path)
    await rt.start()
    try:
        assert rt.vault is not None and rt.vault.upgrade(dbmod.connect(db)) == 0
        assert rt.pool.accounts[row["id"]].api_key == "sk-legacy-upstream"
    finally:
        await rt.stop()


def test_passphrase_is_stretched_with_a_stored_salt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAYTUI_SECRET_KEY", PASSPHRASE)
    vaults, salts = [], []
    for name in ("a.db", "b.db"):
        dbmod.migrate(tmp_path / name)
        conn = dbmod.connect(tmp_path / name)
        vaults.append(Vault.open("GATEWAYTUI_SECRET_KEY", tmp_path / "unused.key", conn))
        params = settings_store.get(conn, KDF_SETTING)
        conn.close()
        assert params["kdf"] == "scrypt" and params["n"] >= 2**17 and params["r"] >= 8
        salts.append(params["salt"])
    assert salts[0] != salts[1] and len(base64.b64decode(salts[0])) == 16
    token = vaults[0].encrypt("sk-upstream")
    assert vaults[0].decrypt(token) == "sk-upstream"
    with pytest.raises(VaultError):  # same passphrase, other database's salt: another key
        vaults[1].decrypt(token)
    old = Fernet(base64.urlsafe_b64encode(hashlib.sha256(PASSPHRASE.encode()).digest()))
    with pytest.raises(InvalidToken):  # the unsalted SHA-256 of the passphrase does not open it
        old.decrypt(token[len(PREFIX) :].encode())
    # reopening the same database gives the same key (the salt is read back, not re-rolled)
    conn = dbmod.connect(tmp_path / "a.db")
    assert Vault.open("GATEWAYTUI_SECRET_KEY", tmp_path / "unused.key", conn).decrypt(token) == "sk-upstream"
    conn.close()
    assert not (tmp_path / "unused.key").exists()


def test_wrong_passphrase_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dbmod.migrate(tmp_path / "gw.db")
    conn = dbmod.connect(tmp_path / "gw.db")
    monkeypatch.setenv("GATEWAYTUI_SECRET_KEY", PASSPHRASE)
    token = Vault.open("GATEWAYTUI_SECRET_KEY", tmp_path / "k", conn).encrypt("sk")
    monkeypatch.setenv("GATEWAYTUI_SECRET_KEY", "another passphrase")
    with pytest.raises(VaultError, match="wrong secret key"):
        Vault.open("GATEWAYTUI_SECRET_KEY", tmp_path / "k", conn).decrypt(token)
    conn.close()


def test_fernet_key_in_the_environment_is_used_as_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key()
    monkeypatch.setenv("GATEWAYTUI_SECRET_KEY", key.decode())
    dbmod.migrate(tmp_path / "gw.db")
    conn = dbmod.connect(tmp_path / "gw.db")
    token = Vault.open("GATEWAYTUI_SECRET_KEY", tmp_path / "k", conn).encrypt("sk")
    assert settings_store.get(conn, KDF_SETTING) is None  # no KDF: nothing stored
    conn.close()
    assert Fernet(key).decrypt(token[len(PREFIX) :].encode()) == b"sk"


def test_new_database_and_its_wal_files_are_0600(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual umask, which would give 0644
    try:
        db = tmp_path / "gw.db"
        dbmod.migrate(db)
        conn = dbmod.connect(db)
        conn.execute("INSERT INTO settings (key, value, updated_at) VALUES ('x', '1', 0)")
        assert (tmp_path / "gw.db-wal").exists() and (tmp_path / "gw.db-shm").exists()
        for name in ("gw.db", "gw.db-wal", "gw.db-shm"):
            assert _mode(tmp_path / name) == 0o600, name
        conn.close()
    finally:
        os.umask(old_umask)


def test_existing_world_readable_database_is_tightened_at_start(tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    dbmod.migrate(db)
    conn = dbmod.connect(db)  # held open so the -wal/-shm files stay
    conn.execute("INSERT INTO settings (key, value, updated_at) VALUES ('x', '1', 0)")
    for name in ("gw.db", "gw.db-wal", "gw.db-shm"):
        os.chmod(tmp_path / name, 0o644)
    dbmod.migrate(db)
    for name in ("gw.db", "gw.db-wal", "gw.db-shm"):
        assert _mode(tmp_path / name) == 0o600, name
    conn.close()
