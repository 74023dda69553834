"""One upstream account at run time: configuration, credentials and live health."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ..providers.base import Credentials


@dataclass(slots=True)
class Account:
    id: str
    label: str
    provider: str
    base_url: str
    api_key: str | None = None
    oauth: dict[str, Any] | None = None  # {"access_token", "refresh_token", "expires_at", ...}
    enabled: bool = True
    disabled_reason: str | None = None
    # why its stored credential cannot be used (e.g. it does not decrypt): never served, never persisted
    unusable: str | None = None
    priority: int = 0
    weight: int = 1
    models: list[str] = field(default_factory=list)
    rpm: int | None = None
    preferred: bool = False
    source: str = "db"
    headers: dict[str, str] = field(default_factory=dict)
    # live health
    cooldown_until: float = 0.0
    cause: str | None = None
    since: float | None = None
    last_error: str | None = None
    failures: int = 0
    model_cooldowns: dict[str, float] = field(default_factory=dict)
    quota: dict[str, Any] | None = None
    inflight: int = 0
    served: int = 0
    errors: int = 0
    recent: deque[float] = field(default_factory=deque)
    # tenants that met each "maybe the request's" failure (forbidden, timeout) since the last success
    suspects: dict[str, set[str]] = field(default_factory=dict)

    @property
    def auth(self) -> str:
        return "oauth" if self.oauth else "api_key"

    def secrets(self) -> list[str]:
        """Every credential this account sends upstream (API key, OAuth tokens, configured headers)."""
        oauth = self.oauth or {}
        found = [self.api_key, oauth.get("access_token"), oauth.get("refresh_token"), *self.headers.values()]
        return [s for s in found if isinstance(s, str) and len(s) >= 8]

    def scrub(self, text: str) -> str:
        """Upstreams sometimes repeat the credential they were sent in an error message: never keep it."""
        for secret in self.secrets():
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text

    def credentials(self) -> Credentials:
        token = (self.oauth or {}).get("access_token")
        return Credentials(
            base_url=self.base_url, api_key=self.api_key, oauth_token=token, headers=dict(self.headers)
        )

    def serves(self, upstream_model: str, name: str) -> bool:
        return not self.models or upstream_model in self.models or name in self.models

    def rpm_used(self, now: float) -> int:
        while self.recent and self.recent[0] <= now - 60:
            self.recent.popleft()
        return len(self.recent)

    def ready_at(self, now: float, model: str | None = None) -> float:
        """When this account can next serve ``model`` (``now`` if it can now, ``inf`` if disabled)."""
        if not self.enabled or self.unusable:
            return float("inf")
        at = max(now, self.cooldown_until)
        if model and self.model_cooldowns.get(model, 0) > at:
            at = self.model_cooldowns[model]
        if self.rpm and self.rpm_used(now) >= self.rpm and self.recent:
            at = max(at, self.recent[0] + 60)
        return at

    def health(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if not self.enabled or self.unusable:
            return "disabled"
        if self.cooldown_until > now:
            return "cooldown"
        if self.rpm and self.rpm_used(now) >= self.rpm:
            return "throttled"
        return "healthy"

    def state_dict(self) -> dict[str, Any]:
        return {
            "cooldown_until": self.cooldown_until or None,
            "cause": self.cause,
            "since": self.since,
            "last_error": self.last_error,
            "failures": self.failures,
            "model_cooldowns": self.model_cooldowns,
            "quota": self.quota,
        }

    def public(self, now: float | None = None) -> dict[str, Any]:
        """The account as the admin API and console show it — never a secret."""
        now = time.time() if now is None else now
        return {
            "id": self.id,
            "label": self.label,
            "provider": self.provider,
            "base_url": self.base_url,
            "auth": self.auth,
            "enabled": self.enabled,
            "disabled_reason": self.unusable or self.disabled_reason,
            "preferred": self.preferred,
            "priority": self.priority,
            "weight": self.weight,
            "models": self.models,
            "rpm": self.rpm,
            "rpm_used": self.rpm_used(now),
            "health": self.health(now),
            "cooldown": {
                "cause": self.cause,
                "since": self.since,
                "until": self.cooldown_until,
                "remaining_s": round(max(0.0, self.cooldown_until - now), 1),
                "last_error": self.last_error,
            }
            if self.cooldown_until > now
            else None,
            "cause": self.cause,
            "since": self.since,
            "cooldown_until": self.cooldown_until if self.cooldown_until > now else None,
            "last_error": self.last_error,
            "failures": self.failures,
            "model_cooldowns": {m: t for m, t in self.model_cooldowns.items() if t > now},
            "oauth_expires_at": (self.oauth or {}).get("expires_at") if self.oauth else None,
            "inflight": self.inflight,
            "served": self.served,
            "errors": self.errors,
            "quota": self.quota,
            "source": self.source,
        }
