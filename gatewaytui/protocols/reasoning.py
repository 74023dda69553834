"""Reasoning settings across wires: one effort <-> token-budget table, and the rule that fits a
thinking budget inside the request's output ceiling.

| effort  | budget tokens |
|---------|---------------|
| minimal | 1,024         |
| low     | 2,048         |
| medium  | 8,192         |
| high    | 16,384        |
| xhigh   | 24,576        |
| max     | 32,768        |

A budget maps back to the smallest effort whose budget covers it (at least ``low`` for OpenAI, since
not every model has ``minimal``). OpenAI takes ``minimal`` to ``high`` (``xhigh``/``max`` are sent as
``high``). A budget never pushes ``max_tokens`` up: it must fit below the
request's output ceiling with room for the answer (1,024 tokens, or half of a smaller ceiling), else it
is cut to fit, and a wire with a minimum
budget (Anthropic: 1,024) gets no thinking at all when even the minimum does not fit.
"""

from __future__ import annotations

from ..model import ThinkingConfig

EFFORT_BUDGETS: dict[str, int] = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 24576,
    "max": 32768,
}
DEFAULT_EFFORT = "medium"
OPENAI_EFFORTS = ("minimal", "low", "medium", "high")
ANSWER_ROOM = 1024  # output tokens kept for the answer itself when a budget is cut to fit


def budget_for(thinking: ThinkingConfig) -> int:
    """The thinking budget the settings ask for: an explicit budget, else the effort's (default medium)."""
    if thinking.budget_tokens and thinking.budget_tokens > 0:
        return thinking.budget_tokens
    return EFFORT_BUDGETS.get(thinking.effort or DEFAULT_EFFORT, EFFORT_BUDGETS[DEFAULT_EFFORT])


def effort_for(budget: int) -> str:
    """The smallest effort whose budget covers ``budget``."""
    for effort, tokens in EFFORT_BUDGETS.items():
        if budget <= tokens:
            return effort
    return "max"


def fit_budget(wanted: int, max_tokens: int, minimum: int) -> int | None:
    """``wanted`` cut so that it stays below ``max_tokens`` with room left for the answer
    (``ANSWER_ROOM``, or half of a smaller ceiling), but never below ``minimum``; None when even
    ``minimum`` leaves no room for an answer."""
    ceiling = max_tokens - max(1, min(ANSWER_ROOM, max_tokens // 2))
    if ceiling < minimum:
        return None
    return max(minimum, min(wanted, ceiling))


def openai_effort(thinking: ThinkingConfig | None) -> str | None:
    """A ``reasoning_effort`` / ``reasoning.effort`` level OpenAI accepts (None: the model's default)."""
    if thinking is None:
        return None
    if not thinking.enabled:
        return "none"
    if thinking.effort:
        return thinking.effort if thinking.effort in (*OPENAI_EFFORTS, "none") else "high"
    if not thinking.budget_tokens or thinking.budget_tokens < 0:
        return None  # adaptive / dynamic: the model's default
    effort = effort_for(thinking.budget_tokens)  # a budget never asks for "minimal" (not every model has it)
    return "low" if effort == "minimal" else effort if effort in OPENAI_EFFORTS else "high"
