"""Asking an upstream account how it stands: a one-token request whose rate-limit headers tell the quota.

Used by the operator's "refresh quotas" (``GET /accounts/quota/all``). Each probe is a real request of
one output token on the cheapest model the account serves; its answer is recorded like any other
attempt (a 429 cools the account, an invalid-key error disables it, a success ends a cooldown early).
A probe names no tenant and nothing but a one-word prompt, so a refusal it meets is the account's own:
any 401/403 disables the account (``Pool.failure`` without a tenant), confirming what requests only
suspected.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from ..catalog import Catalog
from ..config import ModelConfig
from ..model import ChatRequest, Message, Text
from ..providers import registry
from ..providers.base import UpstreamError
from .account import Account
from .pool import SERVES, Pool

PROBE_TIMEOUT = 30.0


def probe_model(catalog: Catalog, acc: Account) -> tuple[str, ModelConfig] | None:
    """(provider module, model) of the cheapest configured model this account can serve."""
    options = []
    for m in catalog.models.values():
        module = catalog.provider_module(m)
        if acc.provider in SERVES.get(module, (module,)) and acc.serves(m.upstream, m.name):
            options.append((m.input_per_mtok + m.output_per_mtok, m.name, module, m))
    if not options:
        return None
    _, _, module, model = min(options)
    return module, model


async def probe(
    http: httpx.AsyncClient, pool: Pool, catalog: Catalog, acc: Account, oauth: Any = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": acc.id,
        "label": acc.label,
        "provider": acc.provider,
        "ok": False,
        "status": None,
        "quota": None,
        "error": None,
        "model": None,
    }
    if not acc.enabled:
        out["error"] = f"disabled: {acc.disabled_reason or 'by the operator'}"
        return out
    choice = probe_model(catalog, acc)
    if choice is None:
        out["error"] = "no configured model is served by this account"
        return out
    module_name, model = choice
    out["model"] = model.name
    try:
        provider = registry.get(module_name)
    except KeyError as exc:
        out["error"] = str(exc)
        return out
    req = ChatRequest(
        model=model.name, messages=[Message("user", [Text("ping")])], max_tokens=1, protocol="probe"
    )
    try:
        if acc.oauth and oauth is not None:
            await oauth.ensure_fresh(acc)
        up = provider.build_request(req, model.upstream, acc.credentials())
        response = await http.post(up.url, content=up.body, headers=up.headers, timeout=PROBE_TIMEOUT)
    except UpstreamError as refused:  # an OAuth token that cannot be refreshed
        out["status"], out["error"] = refused.status, refused.message
        return out
    except httpx.HTTPError as exc:
        unreachable = UpstreamError(502, "connection", f"cannot reach upstream: {type(exc).__name__}")
        pool.failure(acc, unreachable, model.upstream)
        out["status"], out["error"] = 502, unreachable.message
        return out
    quota = provider.read_quota(response.headers)
    out["status"] = response.status_code
    if response.status_code == 200:
        out["ok"] = True
        if acc.cooldown_until > time.time():
            pool.reset(acc)
        pool.success(acc)
        if quota:
            pool.update_quota(acc, quota, force=True)
        else:
            out["error"] = "the upstream reports no quota headers"
    else:
        err = provider.classify_error(response.status_code, response.headers, response.content)
        pool.failure(acc, err, model.upstream, quota)
        out["error"] = f"{err.status} {err.cause}: {err.message}"[:300]
    out["quota"] = acc.quota
    return out


async def probe_all(
    http: httpx.AsyncClient, pool: Pool, catalog: Catalog, accounts: list[Account], oauth: Any = None
) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(probe(http, pool, catalog, a, oauth) for a in accounts)))
