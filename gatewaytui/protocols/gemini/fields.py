"""Reading Gemini bodies: a field by its camelCase or snake_case name, typed and range-checked."""

from __future__ import annotations

import re
from typing import Any

from ..base import expect_type, require


def get_field(obj: dict[str, Any], name: str) -> Any:
    """A field by its lowerCamelCase wire name or by its snake_case proto name."""
    value = obj.get(name)
    if value is None:
        value = obj.get(re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), name))
    return value


def opt_field(obj: dict[str, Any], name: str, types: type | tuple[type, ...], path: str) -> Any:
    value = get_field(obj, name)
    return None if value is None else expect_type(value, types, f"{path}.{name}" if path else name)


def num_field(obj: dict[str, Any], name: str, lo: float, hi: float, path: str) -> float | None:
    value = opt_field(obj, name, (int, float), path)
    require(value is None or lo <= value <= hi, f"{path}.{name}: must be between {lo} and {hi}", name)
    return None if value is None else float(value)


INT32_MAX = 2**31 - 1  # Gemini's integer fields are int32


def int_field(obj: dict[str, Any], name: str, path: str, lo: int = 0) -> int | None:
    value = opt_field(obj, name, (int, float), path)
    if value is None:
        return None
    require(
        value == int(value) and lo <= value <= INT32_MAX,
        f"{path}.{name}: must be an integer from {lo} to {INT32_MAX}",
        name,
    )
    return int(value)


def bare_model(model: str) -> str:
    return model[len("models/") :] if model.startswith("models/") else model
