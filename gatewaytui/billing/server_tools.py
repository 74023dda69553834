"""Server tools: tools the upstream runs itself inside one request (web search, web fetch, code execution).

They pull in input the request body does not show (search results, fetched pages, program output) and
each use may carry a fee. Admission holds a bound for them; settlement bills the uses the upstream reports.

The bound, per server tool in the request (the server-tool billing rule in the README):
- uses: the tool's own ``max_uses`` when it sets a positive integer, else the model's
  ``server_tool_max_uses``. An Anthropic web search or web fetch tool without ``max_uses`` is sent upstream
  with that default, so the upstream cannot run more uses than were held. ``server_tool_max_uses = 0``
  refuses requests with server tools on that model (400).
- fee: uses x the model's per-use price for the tool's kind (``web_search_per_use`` ...).
- input: uses x the model's ``server_tool_input_tokens``, added to the input bound.

Each family spells the tools its own way; a tool another family's client sent (OpenAI's ``web_search``,
Gemini's ``googleSearch``) counts the same once translated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..config import ModelConfig
from ..model import ChatRequest, GatewayError

# a tool's ``type`` (Anthropic, OpenAI) -> kind
TYPE_PREFIXES = (
    ("web_search", "web_search"),  # Anthropic web_search_2025..., OpenAI web_search / web_search_preview
    ("web_fetch", "web_fetch"),
    ("code_execution", "code_execution"),
    ("code_interpreter", "code_execution"),
)
# Gemini's tools are objects named by a single key
GEMINI_KEYS = {
    "googleSearch": "web_search",
    "google_search": "web_search",
    "googleSearchRetrieval": "web_search",
    "google_search_retrieval": "web_search",
    "urlContext": "web_fetch",
    "url_context": "web_fetch",
    "codeExecution": "code_execution",
    "code_execution": "code_execution",
}
LIMITED_BY_MAX_USES = re.compile(r"(web_search|web_fetch)_\d{8}")  # Anthropic tools that take max_uses


@dataclass(slots=True)
class ToolBound:
    uses: dict[str, int] = field(default_factory=dict)  # kind -> uses held
    input_tokens: int = 0


def kind_of(raw: dict[str, object]) -> str | None:
    """The server-tool kind of a provider-native tool, or None (a client-run or unknown hosted tool)."""
    kind = raw.get("type")
    if isinstance(kind, str):
        return next((k for prefix, k in TYPE_PREFIXES if kind.startswith(prefix)), None)
    return next((GEMINI_KEYS[key] for key in raw if key in GEMINI_KEYS), None)


def bound(req: ChatRequest, model: ModelConfig) -> ToolBound:
    """The uses and input a request's server tools are held for; sets the ceiling upstream where it can."""
    out = ToolBound()
    found: list[tuple[str, str, int]] = []  # (name, kind, uses)
    for tool in req.tools:
        raw = tool.raw
        kind = kind_of(raw) if raw is not None else None
        if raw is None or kind is None:
            continue
        asked = raw.get("max_uses")
        if type(asked) is int and asked > 0:
            uses = asked
        else:
            uses = model.server_tool_max_uses
            if asked is None and uses and LIMITED_BY_MAX_USES.fullmatch(str(raw.get("type"))):
                raw["max_uses"] = uses  # the upstream enforces the ceiling the hold was computed for
        found.append((tool.name, kind, uses))
    if "web_search_options" in req.extras:  # OpenAI Chat's search models search on their own
        found.append(("web_search_options", "web_search", model.server_tool_max_uses))
    if found and not model.server_tool_max_uses:
        names = ", ".join(sorted({name for name, _, _ in found}))
        raise GatewayError(
            "invalid_request",
            f"model {model.name!r} does not allow server tools on this gateway ({names}); remove them",
            code="server_tools_not_allowed",
        )
    for _, kind, uses in found:
        out.uses[kind] = out.uses.get(kind, 0) + uses
    out.input_tokens = sum(out.uses.values()) * model.server_tool_input_tokens
    return out
