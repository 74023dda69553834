"""Opening the database: pragmas, migrations, and thread-local reader connections.

The database holds usage, balances and encrypted credentials: its file (and SQLite's ``-wal``/``-shm``
files, which SQLite creates with the database's own mode) is readable by its owner only, 0600.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import sqlite_utils

from .schema import migrations

BUSY_TIMEOUT_MS = 10_000


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, with a busy timeout."""
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn


FILE_MODE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal")


def secure_files(path: str | Path) -> None:
    """Create the database file 0600 if missing; tighten an existing one (and its side files) to 0600."""
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)
    for name in (str(path), *(str(path) + suffix for suffix in SIDE_FILES)):
        try:
            if os.stat(name).st_mode & 0o777 != FILE_MODE:
                os.chmod(name, FILE_MODE)
        except FileNotFoundError:
            continue


def migrate(path: str | Path) -> None:
    """Bring the schema up to date (idempotent; safe while the gateway runs); the files are made 0600."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    secure_files(path)
    conn = connect(path)
    try:
        migrations.apply(sqlite_utils.Database(conn))
    finally:
        conn.close()


class Readers:
    """One read connection per thread, for queries run off the event loop."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._all.clear()


class Transaction:
    """``with Transaction(conn):`` — BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
