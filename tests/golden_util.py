"""Golden cases: wire examples kept as JSON data files under ``tests/golden/<protocol>/``.

Each case file is one JSON object; what its keys mean is up to the test module that reads it.
Internal model objects (requests, responses, stream events) are written as plain JSON with a
``"_type"`` tag naming the class, and only the fields that differ from their defaults:

    {"_type": "Text", "text": "hi"}

Run with ``GATEWAYTUI_UPDATE_GOLDEN=1`` to rewrite the expected values from the current code
(then read the diff before committing it).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from gatewaytui import model

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE = os.environ.get("GATEWAYTUI_UPDATE_GOLDEN") == "1"


def case_params(protocol: str, kind: str | None = None) -> list[Any]:
    """``pytest.param(path)`` per case file of a protocol (optionally only cases whose "kind" matches)."""
    params = []
    for path in sorted((GOLDEN_DIR / protocol).glob("*.json")):
        if kind is None or load(path).get("kind") == kind:
            params.append(pytest.param(path, id=path.stem))
    return params


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def to_plain(obj: Any, *, exclude: tuple[str, ...] = ()) -> Any:
    """A model object as tagged JSON (defaults and the ``kind`` discriminator left out)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {"_type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            if f.name in exclude or (f.name == "kind" and f.default is not dataclasses.MISSING):
                continue  # a part's ``kind`` is a fixed discriminator; StreamError's is data
            value = getattr(obj, f.name)
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = dataclasses.MISSING
            if default is dataclasses.MISSING or value != default:
                out[f.name] = to_plain(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def from_plain(obj: Any) -> Any:
    """Inverse of ``to_plain``: tagged JSON back into model objects."""
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    if isinstance(obj, dict):
        if "_type" in obj:
            cls = getattr(model, obj["_type"])
            return cls(**{k: from_plain(v) for k, v in obj.items() if k != "_type"})
        return {k: from_plain(v) for k, v in obj.items()}
    return obj


def check(path: Path, key: str, actual: Any) -> None:
    """Assert ``actual`` equals the case's ``key`` (or record it when updating goldens)."""
    actual = json.loads(json.dumps(actual))  # tuples -> lists, as JSON would have them
    case = load(path)
    if UPDATE:
        case[key] = actual
        path.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    assert key in case, f"{path.name}: no expected {key!r}; run with GATEWAYTUI_UPDATE_GOLDEN=1 and review"
    assert actual == case[key], f"{path.name}: {key} differs from the golden file"
