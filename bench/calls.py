"""The request each target gets for a scenario (the gateway's routes, LiteLLM's, or the fake upstream's
own), shared by the throughput run and the instruction count."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bench import procs

DIRECTIVE = "[bench chunks=50]"
IDLE_DIRECTIVE = "[bench chunks=50 idle=600]"
PROMPT = "Say hello in fifty words."


@dataclass
class Call:
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Target:
    name: str
    proc: procs.Proc
    key: str = ""


def body(protocol: str, *, stream: bool, directive: str = DIRECTIVE) -> bytes:
    msg = {"role": "user", "content": f"{PROMPT} {directive}"}
    data: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [msg]}
    if stream:
        data["stream"] = True
    return json.dumps(data, separators=(",", ":")).encode()


def call_for(target: Target, scenario: str, *, stream: bool, directive: str = DIRECTIVE) -> Call:
    """The request each target gets for a scenario: ``anthropic`` (passthrough) or ``translated``."""
    if target.name == "direct":  # what the gateway itself sends upstream for either scenario
        return Call(
            "/v1/messages",
            body("anthropic", stream=stream, directive=directive),
            {
                "content-type": "application/json",
                "x-api-key": procs.UPSTREAM_KEY,
                "anthropic-version": "2023-06-01",
            },
        )
    key = procs.MASTER_KEY if target.name == "litellm" else target.key
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    if scenario == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
        return Call("/v1/messages", body("anthropic", stream=stream, directive=directive), headers)
    return Call("/v1/chat/completions", body("openai", stream=stream, directive=directive), headers)
