"""The account pool on its own: selection strategies, cooldowns by cause, events."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from gatewaytui.bus import EventBus
from gatewaytui.model import ChatRequest, Message, Text
from gatewaytui.pool.account import Account
from gatewaytui.pool.affinity import affinity, prefix_hash
from gatewaytui.pool.cooldown import cooldown_seconds, quota_reset, refine
from gatewaytui.pool.pool import Pool
from gatewaytui.providers.base import UpstreamError

M = "claude-sonnet-4-5"


def make_pool(
    n: int = 3, strategy: str = "round-robin", live: Any = None, **kw: Any
) -> tuple[Pool, list[Account]]:
    saved: list[str] = []
    pool = Pool(EventBus(), strategy=strategy, persist=lambda acc: saved.append(acc.id), live=live)
    accounts = [
        Account(id=f"acc{i}", label=f"a{i}", provider="anthropic", base_url="http://x", api_key=f"k{i}", **kw)
        for i in range(n)
    ]
    for acc in accounts:
        pool.put(acc)
    pool.saved = saved  # type: ignore[attr-defined]
    return pool, accounts


def first(pool: Pool, sticky: str | None = None, session: str | None = None) -> str:
    return pool.candidates("anthropic", M, M, sticky, session=session)[0].label


def test_round_robin_cycles_and_respects_weight() -> None:
    pool, accs = make_pool(3)
    assert [first(pool) for _ in range(6)] == ["a0", "a1", "a2", "a0", "a1", "a2"]
    accs[2].weight = 2
    counts = Counter(first(pool) for _ in range(400))
    assert counts["a2"] == pytest.approx(200, abs=2)


def test_least_used_prefers_the_idle_account() -> None:
    pool, accs = make_pool(3, strategy="least-used")
    accs[0].inflight, accs[1].inflight, accs[2].inflight = 3, 1, 2
    assert first(pool) == "a1"


def test_preferred_and_priority_come_before_the_strategy() -> None:
    pool, accs = make_pool(3)
    accs[1].priority = 5
    assert {first(pool) for _ in range(5)} == {"a1"}
    accs[2].preferred = True
    assert {first(pool) for _ in range(5)} == {"a2"}


def test_disabled_cooling_rpm_and_model_list_exclude_an_account() -> None:
    pool, accs = make_pool(4)
    accs[0].enabled = False
    accs[1].cooldown_until = time.time() + 60
    accs[2].rpm = 1
    pool.begin(accs[2])
    pool.end(accs[2])
    accs[3].models = ["claude-haiku-4-5"]
    assert pool.candidates("anthropic", M, M) == []
    assert [a.label for a in pool.candidates("anthropic", "claude-haiku-4-5", "claude-haiku-4-5")] == ["a3"]
    assert accs[2].health() == "throttled"
    # the earliest recovery is the RPM window or the cooldown, whichever is sooner (never the disabled one)
    assert 1 <= pool.earliest_recovery("anthropic", M, M) <= 60  # type: ignore[operator]


def test_sticky_keeps_a_key_on_one_account_and_fails_over() -> None:
    pool, accs = make_pool(4, strategy="sticky")
    homes = {first(pool, "conv-1") for _ in range(10)}
    assert len(homes) == 1
    home = pool.find(homes.pop())
    assert home is not None
    spread = Counter(first(pool, f"conv-{i}") for i in range(400))
    assert len(spread) == 4 and min(spread.values()) > 50  # different conversations spread out
    pool.failure(home, UpstreamError(529, "overloaded", "busy"))
    assert first(pool, "conv-1") != home.label  # a preference, not a pin


def test_sticky_spreads_a_sessions_concurrent_requests() -> None:
    live: set[str] = set()
    pool, accs = make_pool(3, strategy="sticky", live=live.__contains__)
    chosen = []
    for rid in ("r1", "r2", "r3"):
        acc = pool.candidates("anthropic", M, M, f"sess|{rid}", session="sess")[0]
        live.add(rid)
        pool.claim(rid, "sess", acc.id)
        chosen.append(acc.id)
    assert sorted(chosen) == ["acc0", "acc1", "acc2"]  # three sub-agents, three accounts
    live.clear()  # they finished: their claims clean themselves up
    assert pool.session_load("sess") == Counter()


def test_sticky_spills_when_the_home_account_is_much_busier() -> None:
    pool, accs = make_pool(2, strategy="sticky")
    home = pool.find(first(pool, "k"))
    assert home is not None
    home.inflight = 5
    assert first(pool, "k") != home.label


def test_affinity_uses_the_session_then_the_prompt_prefix() -> None:
    req = ChatRequest(
        model=M, messages=[Message("user", [Text("Fix the bug")])], system=[Text("You are Claude Code")]
    )
    assert affinity(req) is not None and affinity(req).session is None  # type: ignore[union-attr]
    later_turn = ChatRequest(
        model=M,
        system=[Text("You are Claude Code")],
        messages=[
            Message("user", [Text("Fix the bug")]),
            Message("assistant", [Text("Done")]),
            Message("user", [Text("Thanks")]),
        ],
    )
    assert prefix_hash(later_turn) == prefix_hash(req)  # a conversation's later turns keep their key
    req.user_id = "user_x_account_y_session_z"
    aff = affinity(req)
    assert aff is not None and aff.session == "user_x_account_y_session_z" and aff.key.startswith(aff.session)
    sub_agent = ChatRequest(
        model=M, user_id=req.user_id, messages=[Message("user", [Text("Search the repo")])]
    )
    assert affinity(sub_agent).key != aff.key  # type: ignore[union-attr]
    assert affinity(ChatRequest(model=M)) is None
    header_only = affinity(ChatRequest(model=M), {"x-claude-code-session-id": "s-1"})
    assert header_only is not None and header_only.session == "s-1"


# ---------------------------------------------------------------- cooldowns


def err(status: int, cause: str, retry_after: float | None = None) -> UpstreamError:
    return UpstreamError(status, cause, "boom", retry_after=retry_after)


def test_cooldown_by_cause() -> None:
    assert cooldown_seconds(err(429, "rate_limit", 12), 1) == 12
    assert cooldown_seconds(err(429, "rate_limit", 10**6), 1) == 7 * 86400  # so long it is a quota wall
    assert [cooldown_seconds(err(429, "rate_limit"), n) for n in (1, 2, 3, 10)] == [1, 2, 4, 60]
    assert cooldown_seconds(err(429, "rate_limit"), 1, {"reset_in": 17.0}) == 17
    assert [cooldown_seconds(err(529, "overloaded"), n) for n in (1, 2, 3)] == [2, 4, 8]
    assert [cooldown_seconds(err(500, "server"), n) for n in (1, 2, 9)] == [5, 10, 120]
    assert cooldown_seconds(err(502, "connection"), 1) == 5
    assert cooldown_seconds(err(504, "timeout"), 1) == 5
    assert cooldown_seconds(err(404, "model_not_found"), 1) == 3600
    assert cooldown_seconds(err(400, "bad_request"), 1) is None
    assert cooldown_seconds(err(429, "quota"), 1) == 3600  # no reset known


def test_quota_wall_uses_the_unified_window_reset() -> None:
    now = 1_000_000.0
    headers = {
        "unified_status": "rejected",
        "unified_5h_utilization": 1.0,
        "unified_5h_reset": now + 7200,
        "unified_7d_utilization": 0.4,
        "unified_7d_reset": now + 5 * 86400,
    }
    assert refine(err(429, "rate_limit", 60), headers) == "quota"
    assert quota_reset(headers, now) == now + 7200
    assert cooldown_seconds(err(429, "rate_limit", 60), 1, headers, now) == 7200
    weekly = {**headers, "unified_7d_utilization": 1.0}
    assert cooldown_seconds(err(429, "quota"), 1, weekly, now) == 5 * 86400
    throttle = {"unified_status": "allowed", "unified_5h_utilization": 0.2, "unified_5h_reset": now + 7200}
    assert refine(err(429, "rate_limit", 20), throttle) == "rate_limit"
    assert cooldown_seconds(err(429, "rate_limit", 20), 1, throttle, now) == 20


def test_failure_records_cause_since_until_and_publishes() -> None:
    pool, accs = make_pool(2)
    sub = pool.bus.subscribe()
    a = accs[0]
    pool.failure(a, err(429, "rate_limit", 30))
    since = a.since
    assert a.cause == "rate_limit" and since is not None and a.cooldown_until == pytest.approx(since + 30)
    assert a.last_error == "429 rate_limit: boom" and a.health() == "cooldown"
    pool.failure(a, err(529, "overloaded"))  # the streak continues: since is kept
    assert a.since == since and a.cause == "overloaded" and a.failures == 2
    cooldown = [e for e in sub.drain() if e.topic == "account.cooldown"]
    assert [e.data["cause"] for e in cooldown] == ["rate_limit", "overloaded"]
    assert pool.saved.count("acc0") == 2  # type: ignore[attr-defined]
    pool.success(a)
    assert a.failures == 0 and a.cause == "overloaded"  # still cooling: the cause stays visible


def test_auth_failure_disables_until_the_operator_or_a_refresh() -> None:
    pool, accs = make_pool(2)
    sub = pool.bus.subscribe()
    a = accs[0]
    pool.failure(a, err(401, "auth"))
    assert not a.enabled and a.cause == "auth" and "401" in (a.disabled_reason or "")
    assert [e.topic for e in sub.drain()] == ["account.disabled"]
    pool.reset(a)  # clearing cooldowns does not re-enable rejected credentials
    assert not a.enabled
    assert pool.reenable(a, "credentials refreshed")
    assert a.enabled and a.cause is None and a.disabled_reason is None
    a.enabled, a.disabled_reason = False, "disabled by the operator"
    assert not pool.reenable(a)  # never undoes the operator's own disable


def test_auth_failure_of_an_oauth_account_asks_for_a_refresh() -> None:
    pool, accs = make_pool(1)
    asked: list[str] = []
    pool.on_auth_failure = lambda acc: asked.append(acc.id)
    pool.failure(accs[0], err(401, "auth"))
    assert asked == []  # an API key cannot be refreshed
    accs[0].oauth = {"access_token": "t", "refresh_token": "r"}
    pool.failure(accs[0], err(401, "auth"))
    assert asked == ["acc0"]


def test_model_not_found_cools_only_that_model() -> None:
    pool, accs = make_pool(1)
    pool.failure(accs[0], err(404, "model_not_found"), M)
    assert accs[0].health() == "healthy" and accs[0].cause is None
    assert pool.candidates("anthropic", M, M) == []
    assert pool.candidates("anthropic", "claude-haiku-4-5", "claude-haiku-4-5")


def test_bad_request_is_not_the_accounts_fault() -> None:
    pool, accs = make_pool(1)
    pool.failure(accs[0], err(400, "bad_request"))
    assert accs[0].health() == "healthy" and accs[0].failures == 0


def test_tick_ends_cooldowns_by_the_clock() -> None:
    pool, accs = make_pool(1)
    pool.failure(accs[0], err(500, "server"))
    pool.failure(accs[0], err(404, "model_not_found"), M)
    sub = pool.bus.subscribe()
    accs[0].cooldown_until = time.time() - 1
    accs[0].model_cooldowns[M] = time.time() - 1
    pool.tick()
    assert accs[0].cause is None and accs[0].model_cooldowns == {}
    assert sorted(e.topic for e in sub.drain()) == ["account.cooldown_end", "account.model_cooldown_end"]


def test_public_view_shows_the_cooldown_but_no_secret() -> None:
    pool, accs = make_pool(1)
    accs[0].oauth = {"access_token": "secret-token", "refresh_token": "secret-refresh", "expires_at": 123.0}
    pool.failure(accs[0], err(429, "rate_limit", 30))
    view = accs[0].public()
    assert view["cooldown"]["cause"] == "rate_limit" and view["cooldown"]["remaining_s"] > 25
    assert view["auth"] == "oauth" and view["oauth_expires_at"] == 123.0
    assert "secret" not in repr(view) and "k0" not in repr(view)


def test_strategy_setting_applies() -> None:
    pool, _ = make_pool(1)
    pool.apply_settings({"strategy": "least-used"})
    assert pool.strategy == "least-used"
    pool.apply_settings({"strategy": "nonsense"})
    assert pool.strategy == "least-used"


def test_quota_updates_are_published_at_a_bounded_rate() -> None:
    pool, accs = make_pool(1)
    sub = pool.bus.subscribe()
    for n in range(20):  # every answer carries quota headers
        pool.success(accs[0], {"requests_remaining": 100 - n, "unified_status": "allowed"})
    assert accs[0].quota is not None and accs[0].quota["requests_remaining"] == 81  # always current in memory
    assert [e.topic for e in sub.drain()] == ["account.quota"]
    assert pool.saved == ["acc0"]  # type: ignore[attr-defined]
    pool.success(accs[0], {"unified_status": "allowed_warning"})  # a status change is news at once
    assert [e.topic for e in sub.drain()] == ["account.quota"]


def test_recent_window_stays_bounded_without_an_rpm_limit() -> None:
    """One timestamp per attempt must not accumulate forever on accounts with no rpm ceiling."""
    import time as _time

    from gatewaytui.bus import EventBus
    from gatewaytui.pool.account import Account
    from gatewaytui.pool.pool import Pool

    pool = Pool(EventBus())
    acc = Account(id="acc_x", label="x", provider="anthropic", base_url="http://127.0.0.1:9")
    acc.recent.extend([_time.time() - 120] * 1000)  # attempts from two minutes ago
    pool.begin(acc)
    assert len(acc.recent) == 1


@pytest.mark.parametrize("cause,status", [("forbidden", 403), ("timeout", 504)])
def test_a_suspect_failure_needs_different_tenants_in_a_row(cause: str, status: int) -> None:
    pool, (a, *_) = make_pool()
    err = UpstreamError(status, cause, "maybe the request's")
    for _ in range(5):
        pool.failure(a, err, M, tenant="t1")  # one tenant, however often
    pool.failure(a, err, M, tenant="t2")
    assert a.enabled and a.health() == "healthy" and a.cause is None
    pool.success(a)  # a success breaks the streak
    pool.failure(a, err, M, tenant="t3")
    pool.failure(a, err, M, tenant="t4")
    assert a.health() == "healthy"
    pool.failure(a, err, M, tenant="t5")
    assert a.health() == ("disabled" if cause == "forbidden" else "cooldown")
    assert a.cause == ("auth" if cause == "forbidden" else "timeout")


def test_a_suspect_failure_of_the_gateways_own_request_is_the_accounts() -> None:
    pool, (a, *_) = make_pool()
    pool.failure(a, UpstreamError(403, "forbidden", "refused"), M)  # a probe: no tenant, no request content
    assert not a.enabled and a.cause == "auth"


def test_an_oversized_answer_is_not_the_accounts_fault() -> None:
    pool, (a, *_) = make_pool()
    pool.failure(a, UpstreamError(502, "too_large", "too large"), M, tenant="t1")
    assert a.health() == "healthy" and a.errors == 0 and a.last_error is None
