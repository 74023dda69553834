"""PostgreSQL behind the store's SQLite-shaped connection API, so the same store code runs on both.

The store modules speak one SQL: ``?`` placeholders, ``INSERT OR IGNORE`` / ``INSERT OR REPLACE``,
``BEGIN IMMEDIATE``, rows readable by index and by name. ``PgConnection`` takes that SQL, rewrites it
once per distinct statement (cached) into PostgreSQL's, and hands back rows shaped like ``sqlite3.Row``.
Placeholders become the server's own (``$1``, ``$2``, ...) and statements go out through psycopg's
``RawCursor``, which sends them as they are: psycopg's own ``%s`` parsing is cached only for statements
under 4 KB, and the writer's multi-row INSERTs are longer, so it re-parsed each one (with a regular
expression, most of the writer's CPU per settled request).
Constraint violations surface as ``IntegrityError`` (a ``sqlite3.IntegrityError``), so callers catch one
exception for both stores. Sums of integer columns (``numeric`` in PostgreSQL) come back as ``int``.

``ddl`` rewrites the schema's SQLite DDL (``schema.py``) into PostgreSQL's: integer columns are 64-bit
(micro-USD), REAL is double precision (timestamps), ``INTEGER PRIMARY KEY`` is an identity column and the
ledger's append-only triggers become PL/pgSQL ones.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.adapt import Loader

from ..model import GatewayError

URL_SCHEMES = ("postgresql://", "postgres://")

# tables whose INSERT OR REPLACE needs a conflict target in PostgreSQL: table -> primary key
PRIMARY_KEYS = {
    "requests": "id",
    "settings": "key",
    "account_state": "account_id",
    "request_bodies": "request_id",
}


def is_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


class IntegrityError(sqlite3.IntegrityError):
    """A PostgreSQL constraint violation, catchable as the SQLite one."""


class NulInText(GatewayError):
    """Text with a NUL character, which PostgreSQL cannot hold: a 400 in the client's protocol."""

    def __init__(self) -> None:
        super().__init__("invalid_request", "text may not contain NUL (\\u0000) characters")


# what a store that cannot be reached raises (refused, dropped, timed out, a pool with no connection to
# give): the callers' "unavailable"; any other exception (a constraint, a programming error) is a bug
UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError)


class StoreUnavailable(GatewayError):
    """The server cannot be reached (or dropped the connection): a 503 in the client's protocol wherever it
    surfaces in a request; the writer retries its batch."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(
            "unavailable",
            "the gateway's store is unreachable; try again shortly",
            retry_after=5,
        )
        self.cause = str(cause).strip()

    def __str__(self) -> str:
        return f"{self.message} ({self.cause})" if self.cause else self.message


class Row:
    """A result row: by index, by column name, ``dict(row)``, ``row.keys()`` — as ``sqlite3.Row``."""

    __slots__ = ("_values", "_index")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"


def _row_factory(cursor: Any) -> Any:
    index = {d.name: n for n, d in enumerate(cursor.description or ())}
    return lambda values: Row(values, index)


class _NumericLoader(Loader):
    """``numeric`` (what SUM over bigint gives) as int when whole, else float: money stays integer."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.I)
_OR_REPLACE = re.compile(r"^\s*INSERT\s+OR\s+REPLACE\s+INTO\s+(\w+)\s*\(([^)]*)\)", re.I)


@lru_cache(maxsize=4096)
def translate(sql: str, with_params: bool) -> str:
    """The store's SQL as PostgreSQL's (placeholders only when the statement carries parameters)."""
    stripped = sql.strip()
    if stripped.upper() == "BEGIN IMMEDIATE":
        # SQLite's BEGIN IMMEDIATE takes the write lock up front: one writing transaction at a time. The
        # same here, across every instance (the writer's batches, the CLI, start-up's upserts): without it
        # two instances' batches lock the rows they share (a tenant's credit row through the ledger
        # trigger, account_state) in different orders and deadlock (seen in the multi-instance soak).
        # Admissions are single autocommit statements and never wait on it.
        return "BEGIN; SELECT pg_advisory_xact_lock(hashtext('gatewaytui'), 1)"  # (int, int): apart from one-key locks
    if with_params:
        sql = _placeholders(sql)
    if _OR_IGNORE.match(sql):
        sql = _OR_IGNORE.sub("INSERT INTO", sql, count=1) + " ON CONFLICT DO NOTHING"
    else:
        m = _OR_REPLACE.match(sql)
        if m:
            table, cols = m.group(1), [c.strip() for c in m.group(2).split(",")]
            pk = PRIMARY_KEYS[table]
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c != pk)
            sql = f"INSERT INTO {sql[m.start(1) :]} ON CONFLICT ({pk}) DO UPDATE SET {sets}"
    return sql


def _placeholders(sql: str) -> str:
    """``?`` to ``$1``, ``$2``, ... outside string literals."""
    parts = sql.split("'")  # even parts are outside string literals
    n = 0
    for i in range(0, len(parts), 2):
        pieces = parts[i].split("?")
        out = [pieces[0]]
        for piece in pieces[1:]:
            n += 1
            out.append(f"${n}{piece}")
        parts[i] = "".join(out)
    return "'".join(parts)


class PgConnection:
    """One PostgreSQL connection in autocommit mode (transactions are explicit, as with SQLite)."""

    dialect = "postgresql"

    def __init__(self, url: str, *, readonly: bool = False, connect_timeout: float = 5.0) -> None:
        self.url = url
        self.readonly = readonly  # a reader: a statement cut by a lost connection is retried once
        self.connect_timeout = max(1, int(connect_timeout))
        self.raw = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            raw = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=self.connect_timeout,
                row_factory=_row_factory,
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(exc) from exc
        raw.adapters.register_loader("numeric", _NumericLoader)
        return raw

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        try:
            try:
                return self._execute(sql, params)
            except psycopg.OperationalError:
                if not (self.readonly and self.raw.closed):
                    raise
                self.raw = self._connect()  # the server restarted: a read is safe to repeat
                return self._execute(sql, params)
        except UNREACHABLE as exc:
            raise StoreUnavailable(exc) from exc

    def _execute(self, sql: str, params: Sequence[Any] | None) -> Any:
        try:
            if params is None:
                return psycopg.RawCursor(self.raw).execute(translate(sql, False).encode())
            return psycopg.RawCursor(self.raw).execute(translate(sql, True).encode(), tuple(params))
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(str(exc).strip()) from exc
        except psycopg.DataError as exc:
            if params is not None and any(isinstance(p, str) and "\x00" in p for p in params):
                raise NulInText() from exc  # SQLite stores such text; PostgreSQL cannot, so none can match
            raise

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Any:
        cur = psycopg.RawCursor(self.raw)
        try:
            cur.executemany(translate(sql, True).encode(), [tuple(p) for p in seq])
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(str(exc).strip()) from exc
        except UNREACHABLE as exc:
            raise StoreUnavailable(exc) from exc
        return cur

    def executescript(self, script: str) -> None:
        self.raw.execute(script.encode())

    def close(self) -> None:
        self.raw.close()

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)


# ------------------------------------------------------------------ DDL

_TRIGGER = re.compile(
    r"CREATE TRIGGER (\w+) BEFORE (UPDATE|DELETE) ON (\w+)\s+BEGIN SELECT RAISE\(ABORT, '([^']*)'\); END;",
    re.I,
)


def ddl(script: str) -> str:
    """The schema's SQLite DDL as PostgreSQL DDL."""

    def trigger(m: re.Match[str]) -> str:
        name, event, table, message = m.groups()
        return (
            f"CREATE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = 'integrity_constraint_violation'; END $$;"
            f" CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION {name}_fn();"
        )

    script = _TRIGGER.sub(trigger, script)
    script = re.sub(
        r"\bINTEGER PRIMARY KEY( AUTOINCREMENT)?\b",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        script,
        flags=re.I,
    )
    script = re.sub(r"\bINTEGER\b", "BIGINT", script)
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", script)


def retryable(exc: BaseException) -> bool:
    """A failure of the connection or the transaction, not of the statement: the same work, retried on a
    fresh connection (after a rollback), can succeed — the server went away, restarted, or chose this
    transaction as a deadlock victim."""
    return isinstance(exc, (StoreUnavailable, psycopg.OperationalError, psycopg.InterfaceError))
