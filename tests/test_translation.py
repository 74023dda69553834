"""Translation rules across the hub: mid-conversation system turns, reasoning settings within the output
ceiling, and newer blocks or parts passed on rather than refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gatewaytui.codec import loads
from gatewaytui.model import ChatRequest, Message, Opaque, Text, ThinkingConfig
from gatewaytui.protocols import anthropic, gemini, openai_chat, openai_responses
from gatewaytui.providers import anthropic as anthropic_provider
from gatewaytui.providers import openai_compatible, openrouter
from gatewaytui.providers.base import Credentials

AGENTS = "Available agent types: general-purpose"
CLAUDE_CODE_BETA = "claude-code-20250219,mid-conversation-system-2026-04-07,effort-2025-11-24"


def claude_code_body(system_content: Any = AGENTS, **extra: Any) -> dict[str, Any]:
    """What Claude Code 2.1 sends for a model name it does not know as Claude."""
    return {
        "model": "gpt-4o",
        "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "read note.txt"}]},
            {"role": "system", "content": system_content},
        ],
        **extra,
    }


# ---------------------------------------------------------------- mid-conversation system turns


@pytest.mark.parametrize("content", [AGENTS, [{"type": "text", "text": AGENTS}]])
def test_anthropic_system_message_is_a_system_turn(content: Any) -> None:
    req = anthropic.decode_request(claude_code_body(content), headers={"anthropic-beta": CLAUDE_CODE_BETA})
    assert [m.role for m in req.messages] == ["user", "system"]
    assert req.messages[1].content == [Text(AGENTS)]
    assert [t.text for t in req.system] == ["You are Claude Code."]


def test_anthropic_passthrough_keeps_the_system_message_and_the_beta() -> None:
    body = claude_code_body()
    req = anthropic.decode_request(body, headers={"anthropic-beta": CLAUDE_CODE_BETA})
    up = anthropic_provider.build_request(
        req, "claude-sonnet-4-5", Credentials(base_url="https://api.anthropic.com", api_key="k")
    )
    sent = loads(up.body)
    assert sent["messages"] == body["messages"]
    assert "mid-conversation-system-2026-04-07" in up.headers["anthropic-beta"]


def test_system_turn_in_each_upstream_wire() -> None:
    req = anthropic.decode_request(claude_code_body())
    chat = openai_chat.encode_request(req)["messages"]
    assert [m["role"] for m in chat] == ["system", "user", "system"]  # at its position
    assert chat[2]["content"] == AGENTS
    items = openai_responses.encode_request(req)["input"]
    assert [(i.get("role"), i["content"][0]["text"]) for i in items] == [
        ("user", "read note.txt"),
        ("developer", AGENTS),
    ]
    body = gemini.encode_request(req, model="gemini-2.5-flash")
    assert [c["role"] for c in body["contents"]] == ["user"]
    assert body["systemInstruction"]["parts"] == [{"text": "You are Claude Code."}, {"text": AGENTS}]


def test_openai_compatible_servers_get_one_leading_system_message() -> None:
    """Local chat templates (Qwen, Mistral...) refuse a system message after the first turn."""
    req = anthropic.decode_request(claude_code_body())
    up = openai_compatible.build_request(
        req, "llama", Credentials(base_url="http://127.0.0.1:8000", api_key="k")
    )
    messages = loads(up.body)["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == f"You are Claude Code.\n\n{AGENTS}"


def test_openai_mid_conversation_system_to_anthropic_goes_top_level() -> None:
    """A translated request carries no mid-conversation beta: the instruction joins the system."""
    req = openai_chat.decode_request(
        {
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "developer", "content": "Now answer in French."},
                {"role": "user", "content": "again"},
            ],
        }
    )
    assert [m.role for m in req.messages] == ["user", "assistant", "system", "user"]
    body = anthropic.encode_request(req)
    assert body["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Now answer in French."},
    ]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    again = openai_chat.encode_request(req)["messages"]  # and back to Chat, at its position
    assert [m["role"] for m in again] == ["system", "user", "assistant", "system", "user"]


def test_responses_mid_conversation_developer_keeps_its_position() -> None:
    req = openai_responses.decode_request(
        {
            "model": "gpt-5",
            "input": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": "hi"},
                {"role": "developer", "content": [{"type": "input_text", "text": "Use tools."}]},
            ],
        }
    )
    assert [t.text for t in req.system] == ["Be brief."]
    assert [m.role for m in req.messages] == ["user", "system"]
    items = openai_responses.encode_request(req)["input"]
    assert [i["role"] for i in items] == ["user", "developer"]


async def test_claude_code_system_message_through_the_gateway(gateway: Any, upstream: Any) -> None:
    key = await gateway.mint("cc-sys")
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01", "anthropic-beta": CLAUDE_CODE_BETA}
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        for model, path in (
            ("auto", "/v1/messages"),
            ("gpt-4o", "/v1/chat/completions"),
            ("gpt-5", "/v1/responses"),
            ("gemini-2.5-flash", ":generateContent"),
        ):
            body = claude_code_body(model=model, max_tokens=256)
            r = await http.post("/v1/messages?beta=true", json=body, headers=headers)
            assert r.status_code == 200, (model, r.text)
            assert any(path in rec.path for rec in upstream.requests), model


# ---------------------------------------------------------------- reasoning within the ceiling


def anthropic_thinking(thinking: ThinkingConfig | None, max_tokens: int | None) -> dict[str, Any]:
    req = ChatRequest(
        model="claude-sonnet-4-5",
        messages=[Message("user", [Text("hi")])],
        max_tokens=max_tokens,
        thinking=thinking,
    )
    return anthropic.encode_request(req)


def test_responses_summary_alone_does_not_turn_thinking_on() -> None:
    req = openai_responses.decode_request(
        {"model": "claude-sonnet-4-5", "input": "hi", "reasoning": {"summary": "auto"}}
    )
    assert req.thinking is None
    req.max_tokens = 8192
    body = anthropic.encode_request(req)
    assert "thinking" not in body and body["max_tokens"] == 8192


@pytest.mark.parametrize(
    ("effort", "max_tokens", "budget"),
    [
        ("minimal", 8192, 1024),
        ("low", 8192, 2048),
        ("medium", 8192, 7168),  # cut to leave 1,024 tokens for the answer
        ("high", 8192, 7168),
        ("high", 32000, 16384),
        ("xhigh", 64000, 24576),
        ("medium", 2048, 1024),  # the minimum still fits, half the ceiling left
        ("medium", 2000, None),  # Anthropic's minimum of 1,024 does not fit: no thinking
    ],
)
def test_effort_maps_to_a_budget_inside_the_ceiling(effort: str, max_tokens: int, budget: int | None) -> None:
    body = anthropic_thinking(ThinkingConfig(effort=effort), max_tokens)
    assert body["max_tokens"] == max_tokens  # never raised past the ceiling
    if budget is None:
        assert "thinking" not in body
    else:
        assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
        assert 1024 <= budget < max_tokens


def test_thinking_off_keeps_sampling_and_forced_tools() -> None:
    req = ChatRequest(
        model="m",
        messages=[Message("user", [Text("hi")])],
        max_tokens=1500,
        temperature=0.2,
        thinking=ThinkingConfig(effort="high"),
    )
    body = anthropic.encode_request(req)
    assert "thinking" not in body and body["temperature"] == 0.2


async def test_codex_reasoning_summary_reaches_anthropic_within_the_ceiling(
    gateway: Any, upstream: Any
) -> None:
    """Codex sends reasoning {summary: auto} (and an effort); the Anthropic body stays at the model's 8,192."""
    key = await gateway.mint("codex")
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as http:
        for reasoning in ({"summary": "auto"}, {"effort": "high", "summary": "auto"}):
            r = await http.post(
                "/v1/responses",
                json={"model": "claude-sonnet-4-5", "input": "hi", "reasoning": reasoning, "store": False},
                headers={"authorization": f"Bearer {key}"},
            )
            assert r.status_code == 200, r.text
            sent = [rec.json for rec in upstream.requests if rec.path == "/v1/messages"][-1]
            assert sent["max_tokens"] == 8192
            if "effort" in reasoning:
                assert sent["thinking"] == {"type": "enabled", "budget_tokens": 7168}
            else:
                assert "thinking" not in sent


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        (ThinkingConfig(budget_tokens=1024), "low"),  # a budget never asks for "minimal"
        (ThinkingConfig(budget_tokens=8000), "medium"),
        (ThinkingConfig(budget_tokens=20000), "high"),
        (ThinkingConfig(effort="max"), "high"),  # OpenAI has no "max"
        (ThinkingConfig(effort="minimal"), "minimal"),
        (ThinkingConfig(enabled=False), "none"),
        (ThinkingConfig(adaptive=True), None),
    ],
)
def test_thinking_to_openai_effort(thinking: ThinkingConfig, effort: str | None) -> None:
    req = ChatRequest(model="o3", messages=[Message("user", [Text("hi")])], thinking=thinking)
    assert openai_chat.encode_request(req).get("reasoning_effort") == effort


def test_gemini_budget_stays_inside_max_output_tokens() -> None:
    req = ChatRequest(
        model="gemini-2.5-flash",
        messages=[Message("user", [Text("hi")])],
        max_tokens=4096,
        thinking=ThinkingConfig(budget_tokens=20000),
    )
    cfg = gemini.encode_request(req, model="gemini-2.5-flash")["generationConfig"]
    assert cfg["maxOutputTokens"] == 4096 and cfg["thinkingConfig"]["thinkingBudget"] == 3072


def test_openrouter_reasoning_budget_stays_inside_max_tokens() -> None:
    creds = Credentials(base_url="https://openrouter.ai/api", api_key="k")
    for max_tokens, expected in ((4096, {"max_tokens": 3072}), (1, {"enabled": False})):
        req = ChatRequest(
            model="m",
            messages=[Message("user", [Text("hi")])],
            max_tokens=max_tokens,
            thinking=ThinkingConfig(budget_tokens=20000),
        )
        sent = loads(openrouter.build_request(req, "anthropic/claude-sonnet-4.5", creds).body)
        assert sent["reasoning"] == expected and sent["max_tokens"] == max_tokens


# ---------------------------------------------------------------- newer blocks and parts


def test_anthropic_unknown_source_and_block_types_pass_through() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "thinking": {"type": "auto-future"},
        "tool_choice": {"type": "some-future-choice"},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "document", "source": {"type": "file", "file_id": "file_011"}},
                    {"type": "image", "source": {"type": "file", "file_id": "file_012"}},
                    {"type": "mid_conv_system", "text": "x"},
                    {"type": "text", "text": "summarise"},
                ],
            }
        ],
    }
    req = anthropic.decode_request(body)
    parts = req.messages[0].content
    assert [type(p) for p in parts] == [Opaque, Opaque, Opaque, Text]
    assert req.thinking is None and req.tool_choice is None
    sent = loads(
        anthropic_provider.build_request(
            req, "claude-sonnet-4-5", Credentials(base_url="https://api.anthropic.com", api_key="k")
        ).body
    )
    assert sent["messages"] == body["messages"] and sent["thinking"] == body["thinking"]
    assert sent["tool_choice"] == body["tool_choice"]
    chat = openai_chat.encode_request(req)["messages"]  # no home on Chat: left out, the text kept
    assert chat == [{"role": "user", "content": "summarise"}]


def test_chat_unknown_part_reaches_openai_as_sent() -> None:
    part = {"type": "input_video", "input_video": {"url": "https://x/v.mp4"}}
    req = openai_chat.decode_request(
        {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, part]}]}
    )
    assert openai_chat.encode_request(req)["messages"][0]["content"][1] == part
