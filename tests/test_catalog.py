"""Model names resolved by the catalog, and the 404s of things that are not there."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gatewaytui.catalog import Catalog
from gatewaytui.config import ModelConfig, RoutingConfig
from gatewaytui.model import GatewayError


def catalog() -> Catalog:
    models = [ModelConfig(name="gemini-2.5-flash", provider="gemini", aliases=["flash"])]
    return Catalog(models, RoutingConfig())


def test_models_prefixes_are_stripped_a_bounded_number_of_times() -> None:
    cat = catalog()
    for name in (
        "gemini-2.5-flash",
        "models/gemini-2.5-flash",
        "models/models/gemini-2.5-flash",
        "models/flash",
    ):
        assert cat.resolve(name).name == "gemini-2.5-flash"
    for depth in (3, 3000):  # was a RecursionError (a 500) at 3,000
        with pytest.raises(GatewayError) as caught:
            cat.resolve("models/" * depth + "gemini-2.5-flash")
        assert caught.value.status == 404 and caught.value.code == "model_not_found"
        assert len(caught.value.message) < 300  # the name is not echoed whole


DEEP = "models/" * 3000 + "gemini-2.5-flash"


async def test_deep_prefixes_are_a_404_in_each_callers_shape(gateway: Any) -> None:
    key = await gateway.mint("deep")
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        gem = await http.post(
            f"/v1beta/models/{DEEP}:generateContent",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
            headers={"x-goog-api-key": key},
        )
        assert gem.status_code == 404, gem.text
        assert gem.json()["error"]["status"] == "NOT_FOUND"
        msgs = await http.post(
            "/v1/messages",
            json={"model": DEEP, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-api-key": key},
        )
        assert msgs.status_code == 404 and msgs.json()["error"]["type"] == "not_found_error", msgs.text
        chat = await http.post(
            "/v1/chat/completions",
            json={"model": DEEP, "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {key}"},
        )
        assert chat.status_code == 404 and chat.json()["error"]["code"] == "model_not_found", chat.text


async def test_missing_key_and_request_are_not_called_missing_models(gateway: Any) -> None:
    key = await gateway.mint("lost")
    auth = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
        for path in ("/tenant/keys/nope", "/v1/usage/req_nope"):
            r = await http.get(path, headers=auth)
            assert r.status_code == 404, (path, r.text)
            error = r.json()["error"]
            assert error["type"] == "invalid_request_error" and error["code"] == "not_found", (path, error)
        model = await http.post(
            "/v1/chat/completions",
            json={"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]},
            headers=auth,
        )
        assert model.status_code == 404 and model.json()["error"]["code"] == "model_not_found"
