"""The single writer: batched inserts as few statements, one bad row never sinking the others."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gatewaytui.store import db as dbmod
from gatewaytui.store import writer as writer_mod
from gatewaytui.store.writer import Writer


def test_batched_inserts_survive_a_bad_row(tmp_path) -> None:
    path = tmp_path / "w.db"
    conn = dbmod.connect(str(path))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    conn.commit()
    writer = Writer(path, flush_interval=0.2)  # long enough that all four land in one batch
    writer.start()
    sql = "INSERT INTO t (id, v) VALUES (?, ?)"
    good1 = writer.insert([(sql, (1, "a")), (sql, (2, "b"))])
    bad = writer.insert([(sql, (3, "c")), (sql, (4, None))])  # NOT NULL fails: neither of its rows lands
    other = writer.submit(lambda c: c.execute("INSERT INTO t (id, v) VALUES (5, 'e')").rowcount)
    good2 = writer.insert([(sql, (6, "f"))])
    assert good1.result(5) is None and good2.result(5) is None and other.result(5) == 1
    with pytest.raises(sqlite3.IntegrityError):
        bad.result(5)
    writer.stop()
    assert [r[0] for r in conn.execute("SELECT id FROM t ORDER BY id")] == [1, 2, 5, 6]
    assert writer.pending == 0


def test_many_rows_go_in_few_statements(tmp_path) -> None:
    conn = dbmod.connect(str(tmp_path / "m.db"))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    rows = [(i, f"v{i}") for i in range(450)]
    writer_mod._insert_many(conn, "INSERT INTO t (id, v) VALUES (?, ?)", rows)
    inserts = [s for s in statements if s.startswith("INSERT")]
    # 128 + 128 + 128 + 64 + 2 rows: a GIL hand-off per statement, not per row, and statements of a few
    # power-of-two sizes, compiled once each (the connection caches them), not one of each batch's own size
    assert [s.count("), (") + 1 for s in inserts] == [128, 128, 128, 64, 2]
    assert tuple(conn.execute("SELECT COUNT(*), SUM(id) FROM t").fetchone()) == (450, sum(range(450)))
    assert conn.execute("SELECT v FROM t WHERE id = 449").fetchone()[0] == "v449"


def test_closing_the_readers_waits_for_a_read_in_progress(tmp_path: Path) -> None:
    """Closing a SQLite connection while another thread steps it crashed the process (a console snapshot
    read was still running when the runtime stopped): ``close`` waits for reads in progress."""
    import threading

    from gatewaytui.store import db as dbmod

    path = tmp_path / "r.db"
    dbmod.migrate(path)
    readers = dbmod.Readers(path)
    inside, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def slow(conn: Any) -> int:
        inside.set()
        release.wait(5)
        return conn.execute("SELECT COUNT(*) FROM tenants").fetchone()[0]

    reader = threading.Thread(target=lambda: seen.append(readers.run(slow)))
    reader.start()
    assert inside.wait(5)
    closer = threading.Thread(target=readers.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # still waiting for the read
    release.set()
    reader.join(5)
    closer.join(5)
    assert not closer.is_alive() and seen == [0]
    assert readers.run(lambda c: c.execute("SELECT 1").fetchone()[0]) == 1  # a late read still answers


def test_append_writes_like_insert_and_logs_a_refused_write(tmp_path, caplog) -> None:
    """``append`` (what a settlement uses: nobody waits) batches with ``insert``; its rows land, and a write
    the store refuses rolls back alone and is logged instead of being dropped silently."""
    path = tmp_path / "w.db"
    conn = dbmod.connect(str(path))
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    conn.commit()
    writer = Writer(path, flush_interval=0.01)
    writer.start()
    sql = "INSERT INTO t (id, v) VALUES (?, ?)"
    try:
        writer.append([(sql, (1, "a"))])
        writer.append([(sql, (2, "b")), (sql, (3, None))])  # NOT NULL: neither row lands
        done = writer.insert([(sql, (4, "d"))])
        done.result(timeout=10)
    finally:
        writer.stop()
    assert [r[0] for r in conn.execute("SELECT id FROM t ORDER BY id")] == [1, 4]
    assert writer.pending == 0
    assert "a settlement could not be written" in caplog.text
