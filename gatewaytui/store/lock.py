"""The embedded store's server lock: one gateway server per SQLite file.

The in-memory admission (``billing.wallet``) is exact only while one process admits against a database.
A server takes an exclusive advisory lock on ``<database>.lock`` for its whole life; a second server on
the same file fails at start with a message that says why and what to use instead. The admin CLI never
takes it (it writes through SQLite's own locking and the server notices within a second). The kernel
drops the lock when the process ends, however it ends (kill -9 included), so a stale lock file is harmless.
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock, the guard is off
    fcntl = None  # type: ignore[assignment]


class StoreLocked(RuntimeError):
    """Another gateway server already serves this SQLite database."""


def lock_path(db_path: str | Path) -> Path:
    p = Path(db_path)
    return p.with_name(p.name + ".lock")


class ServerLock:
    """``ServerLock(path).acquire()`` ... ``release()``: held for the life of the server process."""

    def __init__(self, db_path: str | Path) -> None:
        self.db_path = str(db_path)
        self.path = lock_path(db_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None or self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise StoreLocked(
                f"another gateway server{f' (pid {holder})' if holder.isdigit() else ''} is already serving "
                f"the SQLite database {self.db_path}. An embedded SQLite store has one server: its credit "
                "admission is decided in that process's memory, and a second server would admit spend the "
                "first cannot see. To run several gateway processes, use a shared PostgreSQL store "
                '([database] url = "postgresql://..."; see "Running several instances" in README.md). '
                "The admin CLI (gatewaytui keys/credits/...) works beside the running server."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor drops the flock
