"""Claude Code itself (`claude -p`, from npm) through the gateway, with a tool round trip, under the model
names users give it: a Claude name and the gateway's `auto` (Anthropic upstream, passthrough), an OpenAI
model and a Gemini model (translated). For names it does not know as Claude (and for `auto`) Claude Code
sends a `role: system` message inside `messages` with the `mid-conversation-system-*` beta; the gateway
must carry it to every upstream. Skipped only when the binary is not installed (CI installs it)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

CLAUDE = shutil.which("claude") or shutil.which(
    "claude", path=str(Path(__file__).resolve().parent.parent / ".ci/node/node_modules/.bin")
)

pytestmark = pytest.mark.skipif(
    CLAUDE is None, reason="Claude Code (npm @anthropic-ai/claude-code) is not installed"
)

PROMPT = "Please use the Read tool to read note.txt"


async def run_claude(base_url: str, key: str, home: Path, prompt: str, model: str) -> dict:
    work = home / "work"
    work.mkdir(parents=True, exist_ok=True)
    (work / "note.txt").write_text("hello from the test\n")
    env = {
        **os.environ,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": key,
        # no internet: no telemetry, error reports, update checks or other non-essential calls
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        CLAUDE,
        "-p",
        prompt,
        "--model",
        model,
        "--allowedTools",
        "Read",
        "--output-format",
        "json",
        cwd=work,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode == 0, (out + err).decode()[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])


def _bodies(upstream: Any, path_part: str) -> list[dict[str, Any]]:
    return [r.json for r in upstream.requests if path_part in r.path and isinstance(r.json, dict)]


def tool_round_trip_seen(upstream: Any, path_part: str) -> bool:
    """The upstream saw a request carrying a tool result (so a tool call went out and came back)."""
    for body in _bodies(upstream, path_part):
        for m in body.get("messages") or []:
            content = m.get("content")
            if m.get("role") == "tool" or (
                isinstance(content, list)
                and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
            ):
                return True
        for c in body.get("contents") or []:
            if any(isinstance(p, dict) and "functionResponse" in p for p in c.get("parts") or []):
                return True
    return False


def roles(upstream: Any, path_part: str) -> list[list[str]]:
    return [[m.get("role") for m in body.get("messages") or []] for body in _bodies(upstream, path_part)]


# model name -> the upstream path it must reach
CASES = {
    "claude-sonnet-4-5": "/v1/messages",
    "auto": "/v1/messages",
    "gpt-4o": "/v1/chat/completions",
    "gemini-2.5-flash": ":streamGenerateContent",
}


@pytest.mark.parametrize("model", list(CASES))
async def test_claude_code_tool_round_trip(gateway: Any, upstream: Any, tmp_path: Path, model: str) -> None:
    key = await gateway.mint("cc", usd=50)
    result = await run_claude(gateway.base_url, key, tmp_path, PROMPT, model)
    assert result["is_error"] is False and result["subtype"] == "success", result
    assert "The tool returned" in result["result"]
    path = CASES[model]
    assert tool_round_trip_seen(upstream, path)
    assert all(path in r.path for r in upstream.requests if r.method == "POST")  # no other upstream
    if path == "/v1/messages":  # passthrough: beta headers and Claude Code's own messages kept
        beta = [r.headers.get("anthropic-beta", "") for r in upstream.requests if r.path == path]
        assert all("claude-code" in b for b in beta)
        if model == "auto":  # a name Claude Code does not know: a mid-conversation system message
            assert any("mid-conversation-system" in b for b in beta)
            assert any("system" in turn for turn in roles(upstream, path))
    elif path == "/v1/chat/completions":  # the system message stays at its position, after the user's
        turns = roles(upstream, path)
        assert any("system" in t[1:] for t in turns), turns
    else:  # Gemini has no system role in contents: folded into systemInstruction
        for body in _bodies(upstream, path):
            assert {c.get("role") for c in body["contents"]} <= {"user", "model"}
            assert body["systemInstruction"]["parts"]


async def test_claude_code_against_translated_openai_upstream(make_gateway, upstream, tmp_path: Path) -> None:
    """A Claude model name the operator routes to OpenAI: translated, tool round trip included."""
    models = [
        {
            "name": "claude-sonnet-4-5",
            "provider": "openai",
            "upstream": "gpt-4o",
            "aliases": ["claude-haiku-4-5"],
            "input_per_mtok": 2.5,
            "output_per_mtok": 10.0,
        }
    ]
    gw = await make_gateway(models=models)
    key = await gw.mint("cc", usd=50)
    result = await run_claude(gw.base_url, key, tmp_path, PROMPT, "claude-sonnet-4-5")
    assert result["is_error"] is False and result["subtype"] == "success"
    assert "The tool returned" in result["result"]
    assert tool_round_trip_seen(upstream, "/v1/chat/completions")
    assert not any(r.path == "/v1/messages" for r in upstream.requests)
