"""The console against a running headless gateway (``gatewaytui attach URL``), over its admin HTTP API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from ..codec import SSEDecoder
from .source import ActionError, Source, SourceUnavailable

RECONNECT_MAX_S = 10.0


class RemoteSource(Source):
    def __init__(
        self, base_url: str, token: str, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = self.base_url
        self._token = token
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"authorization": f"Bearer {self._token}"},
            transport=self._transport,
            timeout=httpx.Timeout(10.0, read=30.0),
            trust_env=False,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise SourceUnavailable("the remote source is not open")
        return self._client

    async def _get(self, path: str) -> httpx.Response:
        try:
            return await self.client.get(path)
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"{self.base_url}: {exc.__class__.__name__}: {exc}") from None

    async def snapshot(self) -> dict[str, Any]:
        response = await self._get("/admin/snapshot")
        if response.status_code != 200:
            raise SourceUnavailable(_error_message(response))
        return orjson.loads(response.content)

    async def request(self, request_id: str) -> dict[str, Any] | None:
        response = await self._get(f"/admin/console/requests/{request_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise SourceUnavailable(_error_message(response))
        return orjson.loads(response.content)

    async def history(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        params: dict[str, Any] = dict(query.get("filters") or {})
        params |= {
            "q": query.get("text") or "",
            "sort": query.get("sort") or "started",
            "order": "desc" if query.get("descending", True) else "asc",
            "limit": int(query.get("limit") or 200),
        }
        try:
            response = await self.client.get("/admin/console/history", params=params)
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"{self.base_url}: {exc.__class__.__name__}: {exc}") from None
        if response.status_code != 200:
            raise SourceUnavailable(_error_message(response))
        return orjson.loads(response.content)["requests"]

    async def act(self, action: str, **args: Any) -> Any:
        return (await self._call("POST", f"/admin/console/{action}", args))["result"]

    async def begin_oauth(self, provider: str, label: str | None, base_url: str | None) -> dict[str, Any]:
        body = {"provider": provider, "label": label, "base_url": base_url, "oauth": True}
        return await self._call("POST", "/accounts/add", {k: v for k, v in body.items() if v is not None})

    async def oauth_status(self, state: str) -> dict[str, Any]:
        return await self._call("GET", f"/accounts/oauth/{state}")

    async def complete_oauth(self, state: str, code: str) -> dict[str, Any]:
        return (await self._call("POST", "/accounts/oauth/complete", {"state": state, "code": code}))[
            "account"
        ]

    async def _call(self, method: str, path: str, args: dict[str, Any] | None = None) -> Any:
        """An admin call: its JSON answer, or ``ActionError`` with the gateway's message."""
        try:
            if method == "GET":
                response = await self.client.get(path)
            else:
                response = await self.client.post(
                    path, content=orjson.dumps(args or {}), headers={"content-type": "application/json"}
                )
        except httpx.HTTPError as exc:
            raise ActionError("unavailable", f"{self.base_url} is unreachable: {exc}") from None
        if response.status_code not in (200, 201):
            error = _error_body(response)
            raise ActionError(error.get("type") or "api_error", _error_message(response), error.get("param"))
        return orjson.loads(response.content)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Follow the event stream, reconnecting with backoff.

        Each (re)connection is announced as a ``console.connected`` event once the gateway has subscribed, so
        nothing published after it is missed; a lost connection is reported as ``console.disconnected``.
        """
        delay = 0.5
        while True:
            try:
                async with self.client.stream(
                    "GET", "/admin/events", timeout=httpx.Timeout(10.0, read=None)
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        raise SourceUnavailable(_error_message(response))
                    decoder = SSEDecoder()
                    async for chunk in response.aiter_bytes():
                        for event, data in decoder.feed(chunk):
                            if event == "ready":
                                delay = 0.5
                                yield {
                                    "topic": "console.connected",
                                    "data": {"url": self.base_url},
                                    "at": None,
                                }
                                continue
                            yield orjson.loads(data)
            except (httpx.HTTPError, SourceUnavailable, orjson.JSONDecodeError) as exc:
                yield {"topic": "console.disconnected", "data": {"error": str(exc)[:200]}, "at": None}
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX_S, delay * 2)


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, dict) else {}


def _error_message(response: httpx.Response) -> str:
    message = _error_body(response).get("message")
    return str(message) if message else f"HTTP {response.status_code}"
