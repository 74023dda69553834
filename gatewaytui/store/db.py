"""Opening the database: pragmas, migrations, and thread-local reader connections.

The database holds usage, balances and encrypted credentials: its file (and SQLite's ``-wal``/``-shm``
files, which SQLite creates with the database's own mode) is readable by its owner only, 0600.

A store is named by its target: a SQLite file path, or a ``postgresql://`` URL (then every connection is a
``pg.PgConnection``, which takes the same SQL and gives the same rows; see ``pg``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

import sqlite_utils

from .schema import migrations

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000


def is_shared(target: str | Path) -> bool:
    """True for a PostgreSQL store (shared by any number of gateway processes)."""
    from .pg import is_url

    return is_url(target)


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit); for SQLite: WAL, with a busy timeout."""
    if is_shared(path):
        from .pg import PgConnection

        return cast(sqlite3.Connection, PgConnection(str(path), readonly=readonly))  # the same API
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
    if is_shared(path):
        pg = connect(path)
        try:
            migrations.apply_postgresql(pg)
        finally:
            pg.close()
        return
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
        self._idle = threading.Condition(self._lock)
        self._active = 0  # reads running in ``run`` now
        self._closed = False

    def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on this thread's read connection. ``close`` waits for runs in progress: closing a SQLite
        connection while another thread steps it crashes the process. After ``close``, a late run gets a
        connection of its own, closed when it ends."""
        with self._lock:
            late = self._closed
            if not late:
                self._active += 1
        if late:
            conn = connect(self.path, readonly=True)
            try:
                return fn(conn)
            finally:
                conn.close()
        try:
            return fn(self.get())
        finally:
            with self._lock:
                self._active -= 1
                if not self._active:
                    self._idle.notify_all()

    def get(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(conn, "closed", False):  # a PostgreSQL connection the server dropped
            with self._lock:
                self._all.remove(conn)
            conn = self._local.conn = None
        if conn is None:
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self, wait: float = 10.0) -> None:
        with self._lock:
            self._closed = True
            self._idle.wait_for(lambda: not self._active, timeout=wait)
            for conn in self._all:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing a broken connection
                    pass
            self._all.clear()


class Transaction:
    """``with Transaction(conn):`` — BEGIN IMMEDIATE ... COMMIT (or ROLLBACK on error), one at a time."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")  # on PostgreSQL with an advisory lock to the same effect (pg.py)
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")
