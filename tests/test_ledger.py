"""The ledger and the wallet, against a real database file: append-only, idempotent, balance derived."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gatewaytui.billing.wallet import Wallet
from gatewaytui.model import GatewayError
from gatewaytui.store import db as dbmod
from gatewaytui.store import ledger, payments
from gatewaytui.store import tenants as tenant_store


@pytest.fixture
def conn(tmp_path: Path, store: str | None) -> sqlite3.Connection:
    path = store or str(tmp_path / "ledger.db")
    dbmod.migrate(path)
    c = dbmod.connect(path)
    yield c
    c.close()


def _tenant(conn: sqlite3.Connection, name: str = "acme") -> int:
    t, _ = tenant_store.get_or_create(conn, name)
    return int(t["id"])


def test_ledger_is_append_only(conn: sqlite3.Connection) -> None:
    tid = _tenant(conn)
    assert ledger.append(conn, tid, "topup", 5_000_000, "topup:1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE ledger SET amount_micro = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM ledger")
    assert ledger.balance(conn, tid) == 5_000_000


def test_idempotency_keys_write_once(conn: sqlite3.Connection) -> None:
    tid = _tenant(conn)
    assert ledger.append(conn, tid, "topup", 1_000_000, "stripe:topup:cs_1")
    assert not ledger.append(conn, tid, "topup", 1_000_000, "stripe:topup:cs_1")
    assert ledger.balance(conn, tid) == 1_000_000
    assert len(ledger.entries(conn, tid)) == 1


def test_amounts_must_be_integer_micro_usd(conn: sqlite3.Connection) -> None:
    tid = _tenant(conn)
    with pytest.raises(TypeError):
        ledger.append(conn, tid, "topup", 1.5, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ledger.append(conn, tid, "gift", 1, "y")


def test_every_kind_sums_into_the_balance(conn: sqlite3.Connection) -> None:
    a, b = _tenant(conn, "a"), _tenant(conn, "b")
    for kind, amount, key in [
        ("topup", 10_000_000, "t"),
        ("hold", -3_000, "h:r1"),
        ("settle", 1_200, "s:r1"),
        ("hold", -4_000, "h:r2"),
        ("release", 4_000, "r:r2"),
        ("refund", -2_000_000, "rf"),
        ("adjustment", 500, "adj"),
    ]:
        ledger.append(conn, a, kind, amount, key, request_id=key.split(":")[-1])
    ledger.append(conn, b, "topup", 7, "tb")
    assert ledger.balance(conn, a) == 10_000_000 - 1_800 - 2_000_000 + 500
    assert ledger.balances(conn) == {a: 10_000_000 - 1_800 - 2_000_000 + 500, b: 7}


def test_unsettled_holds_are_found_for_recovery(conn: sqlite3.Connection) -> None:
    tid = _tenant(conn)
    ledger.append(conn, tid, "hold", -100, "hold:r1", request_id="r1")
    ledger.append(conn, tid, "hold", -100, "hold:r2", request_id="r2")
    ledger.append(conn, tid, "settle", 40, "settle:r2", request_id="r2")
    assert [h["request_id"] for h in ledger.unsettled_holds(conn)] == ["r1"]


def test_stripe_event_claim_is_once(conn: sqlite3.Connection) -> None:
    assert payments.claim_event(conn, "evt_1", "checkout.session.completed")
    assert not payments.claim_event(conn, "evt_1", "checkout.session.completed")


def test_wallet_admits_only_what_the_balance_covers() -> None:
    w = Wallet()
    w.load({1: 10_000}, 0)
    holds = []
    for i in range(5):
        holds.append(w.hold(1, 3_000, f"r{i}")) if w.available(1) >= 3_000 else None
    assert len(holds) == 3 and w.available(1) == 1_000
    with pytest.raises(GatewayError) as exc:
        w.hold(1, 3_000, "r9")
    assert exc.value.status == 402
    entries = w.close(holds[0], 2_500)  # settle at real cost
    assert entries == [("hold", -3_000, "hold:r0"), ("settle", 500, "settle:r0")]
    assert w.close(holds[0], 2_500) == []  # exactly once
    assert w.close(holds[1], None) == [("hold", -3_000, "hold:r1"), ("release", 3_000, "release:r1")]
    assert w.balance[1] == 10_000 - 2_500 and w.held[1] == 3_000


def test_free_holds_never_touch_credit() -> None:
    w = Wallet()
    h = w.free_hold(1, "r1")
    assert w.close(h, 999) == [] and w.balance[1] == 0
