"""Claude Code itself (`claude -p`, from npm) through the gateway: Anthropic upstream and a translated
OpenAI upstream, each with a tool round trip. Skipped only when the binary is not installed (CI installs it)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

CLAUDE = shutil.which("claude") or shutil.which(
    "claude", path=str(Path(__file__).resolve().parent.parent / ".ci/node/node_modules/.bin")
)

pytestmark = pytest.mark.skipif(
    CLAUDE is None, reason="Claude Code (npm @anthropic-ai/claude-code) is not installed"
)


async def run_claude(base_url: str, key: str, home: Path, prompt: str) -> dict:
    work = home / "work"
    work.mkdir(parents=True, exist_ok=True)
    (work / "note.txt").write_text("hello from the test\n")
    env = {
        **os.environ,
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        CLAUDE,
        "-p",
        prompt,
        "--model",
        "claude-sonnet-4-5",
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


def tool_round_trip_seen(upstream, path: str) -> bool:
    """The upstream saw a request carrying a tool result (so a tool call went out and came back)."""
    for rec in upstream.requests:
        if rec.path != path or not isinstance(rec.json, dict):
            continue
        for m in rec.json.get("messages") or []:
            content = m.get("content")
            if m.get("role") == "tool" or (
                isinstance(content, list)
                and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content)
            ):
                return True
    return False


async def test_claude_code_against_anthropic_upstream(gateway, upstream, tmp_path: Path) -> None:
    key = await gateway.mint("cc", usd=50)
    result = await run_claude(gateway.base_url, key, tmp_path, "Please use the Read tool to read note.txt")
    assert result["is_error"] is False and result["subtype"] == "success"
    assert "The tool returned" in result["result"]
    assert tool_round_trip_seen(upstream, "/v1/messages")
    beta = [r.headers.get("anthropic-beta", "") for r in upstream.requests if r.path == "/v1/messages"]
    assert any("claude-code" in b for b in beta)  # Claude Code's beta headers pass through


async def test_claude_code_against_translated_openai_upstream(make_gateway, upstream, tmp_path: Path) -> None:
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
    result = await run_claude(gw.base_url, key, tmp_path, "Please use the Read tool to read note.txt")
    assert result["is_error"] is False and result["subtype"] == "success"
    assert "The tool returned" in result["result"]
    assert tool_round_trip_seen(upstream, "/v1/chat/completions")
    assert not any(r.path == "/v1/messages" for r in upstream.requests)
