"""The translation matrix: every client protocol x every upstream provider, with the official SDKs.

For each pair: plain text, streamed text, a tool-call round trip with streamed arguments, an image, usage
numbers mapped into the client's fields, and an upstream error in the client's shape. The fake upstream's
answers are documented in gatewaytui/demo/upstream.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as gtypes

UPSTREAMS = {  # upstream provider -> the model routed to it (tests/conftest.py DEFAULT_MODELS)
    "anthropic": "claude-sonnet-4-5",
    "openai": "gpt-4o",
    "openai-responses": "gpt-5",
    "gemini": "gemini-2.5-flash",
    "openrouter": "kimi-k2",
    "openai-compatible": "local-llama",
}
CLIENTS = ("anthropic", "openai_chat", "openai_responses", "gemini")
SCENARIOS = ("text", "stream", "tool_round_trip", "image", "usage", "error")
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
USAGE = "[usage in=100 out=20 cache_read=50]"


class Client:
    """One protocol's SDK, driven the same way for every scenario."""

    def __init__(self, gw: Any, key: str) -> None:
        self.gw, self.key = gw, key

    async def close(self) -> None: ...


class AnthropicClient(Client):
    def __init__(self, gw: Any, key: str) -> None:
        super().__init__(gw, key)
        self.sdk = anthropic.AsyncAnthropic(api_key=key, base_url=gw.base_url, max_retries=0)

    async def close(self) -> None:
        await self.sdk.close()

    async def text(self, model: str, prompt: str) -> str:
        msg = await self.sdk.messages.create(
            model=model, max_tokens=512, messages=[{"role": "user", "content": prompt}]
        )
        return "".join(b.text for b in msg.content if b.type == "text")

    async def stream(self, model: str, prompt: str) -> str:
        async with self.sdk.messages.stream(
            model=model, max_tokens=512, messages=[{"role": "user", "content": prompt}]
        ) as s:
            final = await s.get_final_message()
        return "".join(b.text for b in final.content if b.type == "text")

    async def tool_round_trip(self, model: str) -> tuple[dict[str, Any], str]:
        tools = [
            {
                "name": WEATHER["name"],
                "description": WEATHER["description"],
                "input_schema": WEATHER["schema"],
            }
        ]
        messages: list[dict[str, Any]] = [{"role": "user", "content": "Please use the tool get_weather"}]
        async with self.sdk.messages.stream(model=model, max_tokens=512, tools=tools, messages=messages) as s:
            first = await s.get_final_message()
        call = next(b for b in first.content if b.type == "tool_use")
        assert first.stop_reason == "tool_use"
        messages += [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "22C and sunny"}],
            },
        ]
        second = await self.sdk.messages.create(model=model, max_tokens=512, tools=tools, messages=messages)
        return call.input, "".join(b.text for b in second.content if b.type == "text")

    async def image(self, model: str) -> str:
        content = [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "text", "text": "What is in this image?"},
        ]
        msg = await self.sdk.messages.create(
            model=model, max_tokens=256, messages=[{"role": "user", "content": content}]
        )
        return "".join(b.text for b in msg.content if b.type == "text")

    async def usage(self, model: str) -> tuple[int, int, int]:
        msg = await self.sdk.messages.create(
            model=model, max_tokens=256, messages=[{"role": "user", "content": f"count {USAGE}"}]
        )
        u = msg.usage
        return (
            u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0),
            u.cache_read_input_tokens or 0,
            u.output_tokens,
        )

    async def error(self, model: str) -> int:
        with pytest.raises(anthropic.APIStatusError) as info:
            await self.sdk.messages.create(
                model=model, max_tokens=64, messages=[{"role": "user", "content": "[fault:400]"}]
            )
        assert (
            info.value.body["type"] == "error" and info.value.body["error"]["type"] == "invalid_request_error"
        )
        return info.value.status_code


class ChatClient(Client):
    def __init__(self, gw: Any, key: str) -> None:
        super().__init__(gw, key)
        self.sdk = openai.AsyncOpenAI(api_key=key, base_url=gw.base_url + "/v1", max_retries=0)

    async def close(self) -> None:
        await self.sdk.close()

    async def text(self, model: str, prompt: str) -> str:
        r = await self.sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}]
        )
        return r.choices[0].message.content or ""

    async def stream(self, model: str, prompt: str) -> str:
        async with self.sdk.chat.completions.stream(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            stream_options={"include_usage": True},
        ) as s:
            final = await s.get_final_completion()
        assert final.usage is not None and final.usage.completion_tokens > 0
        return final.choices[0].message.content or ""

    async def tool_round_trip(self, model: str) -> tuple[dict[str, Any], str]:
        tools = [
            {
                "type": "function",
                "function": {
                    "name": WEATHER["name"],
                    "description": WEATHER["description"],
                    "parameters": WEATHER["schema"],
                },
            }
        ]
        messages: list[Any] = [{"role": "user", "content": "Please use the tool get_weather"}]
        async with self.sdk.chat.completions.stream(model=model, messages=messages, tools=tools) as s:
            first = await s.get_final_completion()
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        call = choice.message.tool_calls[0]
        messages += [
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "22C and sunny"},
        ]
        second = await self.sdk.chat.completions.create(model=model, messages=messages, tools=tools)
        return json.loads(call.function.arguments), second.choices[0].message.content or ""

    async def image(self, model: str) -> str:
        content = [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        ]
        r = await self.sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": content}]
        )
        return r.choices[0].message.content or ""

    async def usage(self, model: str) -> tuple[int, int, int]:
        r = await self.sdk.chat.completions.create(
            model=model, messages=[{"role": "user", "content": f"count {USAGE}"}]
        )
        u = r.usage
        return u.prompt_tokens, u.prompt_tokens_details.cached_tokens or 0, u.completion_tokens

    async def error(self, model: str) -> int:
        with pytest.raises(openai.APIStatusError) as info:
            await self.sdk.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "[fault:400]"}]
            )
        assert isinstance(info.value.body, dict) and "message" in info.value.body
        return info.value.status_code


class ResponsesClient(ChatClient):
    async def text(self, model: str, prompt: str) -> str:
        r = await self.sdk.responses.create(model=model, input=prompt)
        return r.output_text

    async def stream(self, model: str, prompt: str) -> str:
        async with self.sdk.responses.stream(model=model, input=prompt) as s:
            final = await s.get_final_response()
        assert final.usage is not None and final.usage.output_tokens > 0
        return final.output_text

    async def tool_round_trip(self, model: str) -> tuple[dict[str, Any], str]:
        tools = [
            {
                "type": "function",
                "name": WEATHER["name"],
                "description": WEATHER["description"],
                "parameters": WEATHER["schema"],
                "strict": False,
            }
        ]
        items: list[Any] = [{"role": "user", "content": "Please use the tool get_weather"}]
        async with self.sdk.responses.stream(model=model, input=items, tools=tools) as s:
            first = await s.get_final_response()
        call = next(o for o in first.output if o.type == "function_call")
        items += [
            o.model_dump(exclude_none=True) for o in first.output if o.type in ("function_call", "message")
        ]
        items.append({"type": "function_call_output", "call_id": call.call_id, "output": "22C and sunny"})
        second = await self.sdk.responses.create(model=model, input=items, tools=tools)
        return json.loads(call.arguments), second.output_text

    async def image(self, model: str) -> str:
        content = [
            {"type": "input_text", "text": "What is in this image?"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
        ]
        r = await self.sdk.responses.create(model=model, input=[{"role": "user", "content": content}])
        return r.output_text

    async def usage(self, model: str) -> tuple[int, int, int]:
        r = await self.sdk.responses.create(model=model, input=f"count {USAGE}")
        u = r.usage
        return u.input_tokens, u.input_tokens_details.cached_tokens, u.output_tokens

    async def error(self, model: str) -> int:
        with pytest.raises(openai.APIStatusError) as info:
            await self.sdk.responses.create(model=model, input="[fault:400]")
        return info.value.status_code


class GeminiClient(Client):
    def __init__(self, gw: Any, key: str) -> None:
        super().__init__(gw, key)
        self.sdk = genai.Client(api_key=key, http_options=gtypes.HttpOptions(base_url=gw.base_url))

    async def close(self) -> None:
        await self.sdk.aio.aclose()

    async def text(self, model: str, prompt: str) -> str:
        r = await self.sdk.aio.models.generate_content(model=model, contents=prompt)
        return r.text or ""

    async def stream(self, model: str, prompt: str) -> str:
        parts = []
        async for chunk in await self.sdk.aio.models.generate_content_stream(model=model, contents=prompt):
            parts.append(chunk.text or "")
        return "".join(parts)

    async def tool_round_trip(self, model: str) -> tuple[dict[str, Any], str]:
        decl = gtypes.FunctionDeclaration(
            name=WEATHER["name"], description=WEATHER["description"], parameters_json_schema=WEATHER["schema"]
        )
        config = gtypes.GenerateContentConfig(
            tools=[gtypes.Tool(function_declarations=[decl])],
            automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True),
        )
        contents: list[Any] = [
            gtypes.Content(role="user", parts=[gtypes.Part(text="Please use the tool get_weather")])
        ]
        calls = []
        model_parts = []
        async for chunk in await self.sdk.aio.models.generate_content_stream(
            model=model, contents=contents, config=config
        ):
            for cand in chunk.candidates or []:
                for part in cand.content.parts if cand.content and cand.content.parts else []:
                    model_parts.append(part)
                    if part.function_call:
                        calls.append(part.function_call)
        assert calls, "no function call came back"
        call = calls[0]
        contents += [
            gtypes.Content(role="model", parts=model_parts),
            gtypes.Content(
                role="user",
                parts=[
                    gtypes.Part(
                        function_response=gtypes.FunctionResponse(
                            id=call.id, name=call.name, response={"output": "22C and sunny"}
                        )
                    )
                ],
            ),
        ]
        second = await self.sdk.aio.models.generate_content(model=model, contents=contents, config=config)
        return dict(call.args or {}), second.text or ""

    async def image(self, model: str) -> str:
        parts = [
            gtypes.Part(inline_data=gtypes.Blob(mime_type="image/png", data=base64.b64decode(PNG))),
            gtypes.Part(text="What is in this image?"),
        ]
        r = await self.sdk.aio.models.generate_content(
            model=model, contents=[gtypes.Content(role="user", parts=parts)]
        )
        return r.text or ""

    async def usage(self, model: str) -> tuple[int, int, int]:
        r = await self.sdk.aio.models.generate_content(model=model, contents=f"count {USAGE}")
        u = r.usage_metadata
        return (
            u.prompt_token_count,
            u.cached_content_token_count or 0,
            (u.candidates_token_count or 0) + (u.thoughts_token_count or 0),
        )

    async def error(self, model: str) -> int:
        from google.genai import errors

        with pytest.raises(errors.APIError) as info:
            await self.sdk.aio.models.generate_content(model=model, contents="[fault:400]")
        return info.value.code


SDKS = {
    "anthropic": AnthropicClient,
    "openai_chat": ChatClient,
    "openai_responses": ResponsesClient,
    "gemini": GeminiClient,
}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("upstream_provider", list(UPSTREAMS))
@pytest.mark.parametrize("client_protocol", CLIENTS)
async def test_matrix(gateway, client_protocol: str, upstream_provider: str, scenario: str) -> None:
    model = UPSTREAMS[upstream_provider]
    key = await gateway.mint("matrix", usd=5)
    client = SDKS[client_protocol](gateway, key)
    try:
        if scenario == "text":
            assert (await client.text(model, "Hello matrix")).startswith(
                "Hello from the fake upstream! You said: Hello matrix"
            )
        elif scenario == "stream":
            assert (await client.stream(model, "Stream matrix")).startswith(
                "Hello from the fake upstream! You said: Stream matrix"
            )
        elif scenario == "tool_round_trip":
            args, answer = await client.tool_round_trip(model)
            assert args == {"city": "Paris"}
            assert "The tool returned: 22C and sunny" in answer
        elif scenario == "image":
            assert "I see 1 image" in await client.image(model)
        elif scenario == "usage":
            prompt_total, cached, output = await client.usage(model)
            assert (prompt_total, cached, output) == (150, 50, 20)
        elif scenario == "error":
            assert await client.error(model) == 400
    finally:
        await client.close()
