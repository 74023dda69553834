"""The durable spool of a shared (PostgreSQL) store: settlements the store could not take yet, on local disk.

When the writer cannot reach PostgreSQL, it appends the journal entries it holds (a settled request's usage
row and ledger entries: ``writer.Rows``) to this process's spool file, one JSON line per entry, and fsyncs;
when they commit, the file is emptied. The entries are safe to write twice (ledger entries carry
idempotency keys and are ``INSERT OR IGNORE``; usage rows are ``INSERT OR REPLACE``), so a replay after a
commit whose acknowledgement was lost is harmless.

Each process owns one file, ``spool-<store>-<pid>-<token>.jsonl`` (0600, in a 0700 directory), under an
exclusive ``flock`` for its life. A process starting on the same store (``<store>`` is a digest of its URL)
adopts every such file that no live process holds (one killed while the store was down), replays it, and
deletes it once its entries are committed; so several instances on one machine (``--workers N``) can share
the directory.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

log = logging.getLogger("gatewaytui.store")

Statements = list[tuple[str, tuple[Any, ...]]]


def default_dir() -> Path:
    """The user's data directory: ``$XDG_DATA_HOME/gatewaytui/spool`` (``~/.local/share/...``)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "gatewaytui" / "spool"


def _encode(value: Any) -> Any:
    return (
        {"b64": base64.b64encode(value).decode()}
        if isinstance(value, (bytes, bytearray, memoryview))
        else value
    )


def _decode(value: Any) -> Any:
    return base64.b64decode(value["b64"]) if isinstance(value, dict) else value


def dumps(statements: Statements) -> str:
    return json.dumps(
        [[sql, [_encode(v) for v in params]] for sql, params in statements], separators=(",", ":")
    )


def loads(line: str) -> Statements:
    return [(str(sql), tuple(_decode(v) for v in params)) for sql, params in json.loads(line)]


class Spool:
    def __init__(self, directory: str | Path, store: str) -> None:
        self.dir = Path(directory).expanduser()
        self.tag = hashlib.sha256(store.encode()).hexdigest()[:12]
        self.path = self.dir / f"spool-{self.tag}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        self._fd: int | None = None
        self._adopted: list[tuple[Path, int]] = []  # other processes' files being replayed, locked
        self.written = 0  # entries appended to this process's file since it was last emptied

    def open(self) -> list[Statements]:
        """Create and lock this process's file; adopt the files of dead processes on the same store and
        return their entries, to be written before anything else."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        entries: list[Statements] = []
        for path in sorted(self.dir.glob(f"spool-{self.tag}-*.jsonl")):
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:  # another process adopted and finished it
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live process owns it (or is adopting it)
                os.close(fd)
                continue
            found = self._read(path)
            self._adopted.append((path, fd))
            entries += found
        if entries:
            log.warning(
                "replaying %d spooled settlements left by a process that stopped while the store was down",
                len(entries),
            )
        return entries

    @staticmethod
    def _read(path: Path) -> list[Statements]:
        out = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    out.append(loads(line))
                except (ValueError, TypeError):  # a line cut by a crash mid-append: it never completed
                    log.error("spool %s line %d is not a whole entry; skipped", path, n)
        return out

    def append(self, batch: list[Statements]) -> None:
        """Append entries and fsync: after this returns, they survive the process."""
        if not batch or self._fd is None:
            return
        data = "".join(dumps(s) + "\n" for s in batch).encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        self.written += len(batch)

    def committed(self) -> None:
        """Every spooled entry is in the store: empty this process's file, delete the adopted ones."""
        if self._fd is not None and self.written:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
            self.written = 0
        for path, fd in self._adopted:
            path.unlink(missing_ok=True)
            os.close(fd)
        self._adopted = []

    def close(self) -> None:
        """Release the files; this process's is deleted if empty, else left for the next start to replay."""
        if self._fd is None:
            return
        if not self.written:
            self.path.unlink(missing_ok=True)
        else:
            log.error(
                "%d settlements stay in %s; the next gateway start replays them", self.written, self.path
            )
        os.close(self._fd)
        self._fd = None
        for _, fd in self._adopted:
            os.close(fd)
        self._adopted = []
