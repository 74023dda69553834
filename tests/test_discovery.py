"""Discovery and counting: model lists in each protocol's shape, count_tokens (offline tiktoken)."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as gtypes

from gatewaytui import tokens


async def test_openai_models_list_with_aliases_and_pricing(gateway) -> None:
    key = await gateway.mint("d", usd=1)
    async with openai.AsyncOpenAI(api_key=key, base_url=gateway.base_url + "/v1", max_retries=0) as client:
        models = [m async for m in client.models.list()]
    ids = {m.id for m in models}
    assert {"claude-sonnet-4-5", "gpt-4o", "gemini-2.5-flash", "auto"} <= ids
    auto = next(m for m in models if m.id == "auto")
    assert auto.model_extra["alias_of"] == "claude-sonnet-4-5"
    assert auto.model_extra["pricing"]["input"] == "3" and auto.model_extra["pricing"]["cache_read"] == "0.3"
    gpt = next(m for m in models if m.id == "gpt-4o")
    # plain decimals: Decimal.normalize() alone gives "1E+1"
    assert gpt.model_extra["pricing"]["output"] == "10"
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        r = await http.get("/models", headers={"authorization": f"Bearer {key}"})
        assert r.status_code == 200 and r.json()["object"] == "list"


async def test_anthropic_models_list_shape_ends_paging(gateway) -> None:
    key = await gateway.mint("d", usd=1)
    async with anthropic.AsyncAnthropic(api_key=key, base_url=gateway.base_url, max_retries=0) as client:
        page = await client.models.list()
        ids = [m.id for m in page.data]
        one = await client.models.retrieve("claude-sonnet-4-5")
    assert "claude-sonnet-4-5" in ids and page.has_more is False
    assert one.type == "model" and one.id == "claude-sonnet-4-5"


async def test_gemini_models_list(gateway) -> None:
    key = await gateway.mint("d", usd=1)
    client = genai.Client(api_key=key, http_options=gtypes.HttpOptions(base_url=gateway.base_url))
    try:
        names = [m.name async for m in await client.aio.models.list()]
        count = await client.aio.models.count_tokens(
            model="gemini-2.5-flash", contents="hello world, how are you?"
        )
    finally:
        await client.aio.aclose()
    assert "models/gemini-2.5-flash" in names
    assert count.total_tokens > 3


async def test_count_tokens_counts_system_messages_tools_and_images(gateway) -> None:
    key = await gateway.mint("d", usd=1)
    async with anthropic.AsyncAnthropic(api_key=key, base_url=gateway.base_url, max_retries=0) as client:
        base = await client.messages.count_tokens(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hello world"}]
        )
        richer = await client.messages.count_tokens(
            model="claude-sonnet-4-5",
            system="You are terse.",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hello world"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                        },
                    ],
                }
            ],
            tools=[
                {
                    "name": "get_weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                }
            ],
        )
        beta = await client.beta.messages.count_tokens(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hello world"}]
        )
        with pytest.raises(anthropic.NotFoundError) as unknown:
            await client.messages.count_tokens(
                model="no-such-model", messages=[{"role": "user", "content": "x"}]
            )
    enc = tokens.encoding("o200k_base")
    assert base.input_tokens == len(enc.encode("hello world")) + 3
    assert richer.input_tokens >= base.input_tokens + tokens.IMAGE_TOKENS + len(enc.encode("You are terse."))
    assert beta.input_tokens == base.input_tokens
    assert unknown.value.body["error"]["type"] == "not_found_error"


async def test_count_tokens_under_tool_route_prefix(gateway) -> None:
    key = await gateway.mint("d", usd=1, kind="subscription")
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hello world"}]}
        r = await http.post(
            "/claudecode/v1/messages/count_tokens?beta=true", json=body, headers={"x-api-key": key}
        )
        assert r.status_code == 200 and r.json()["input_tokens"] > 0
        generic = await http.post("/v1/messages/count_tokens", json=body, headers={"x-api-key": key})
        assert generic.status_code == 403 and generic.json()["error"]["type"] == "permission_error"


def test_tiktoken_loads_offline_from_bundled_ranks() -> None:
    assert tokens.encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert tokens.encoding("o200k_base").n_vocab > 199_000
