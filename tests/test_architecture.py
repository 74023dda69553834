"""Machine-checked architecture: the core never imports the console, protocols/providers stay uniform,
and the import-circle check of ``.ci/run`` finds circles.

The import-linter contracts (``lint-imports``), mypy and ``scripts/import_cycles.py`` run as their own
steps of ``.ci/run``, before the tests.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import import_cycles  # noqa: E402

CORE = [
    "gatewaytui.runtime",
    "gatewaytui.host",
    "gatewaytui.ops.actions",
    "gatewaytui.server.app",
    "gatewaytui.server.relay",
    "gatewaytui.providers.registry",
    "gatewaytui.billing.wallet",
    "gatewaytui.pool.pool",
    "gatewaytui.store.writer",
    "gatewaytui.cli",
    "gatewaytui.demo.setup",
]


def test_core_never_loads_textual() -> None:
    code = "import sys\n" + "".join(f"import {m}\n" for m in CORE) + "print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


def test_the_circle_check_finds_a_circle_and_passes_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "circled"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import c\n")
    (pkg / "c.py").write_text("def f():\n    from . import a\n")
    (pkg / "d.py").write_text("from . import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles.circles("circled") == [["circled.a", "circled.b", "circled.c"]]
    assert import_cycles.circles("gatewaytui") == []


PROTOCOL_API = (
    "NAME",
    "STREAM_CONTENT_TYPE",
    "decode_request",
    "encode_request",
    "encode_response",
    "decode_response",
    "StreamEncoder",
    "encode_error",
    "decode_usage",
    "encode_usage",
)
PROVIDER_API = (
    "NAME",
    "WIRE",
    "DEFAULT_BASE_URL",
    "build_request",
    "parse_response",
    "StreamParser",
    "classify_error",
    "read_quota",
)


@pytest.mark.parametrize("name", ["anthropic", "openai_chat", "openai_responses", "gemini"])
def test_every_protocol_module_offers_the_same_functions(name: str) -> None:
    module = importlib.import_module(f"gatewaytui.protocols.{name}")
    missing = [attr for attr in PROTOCOL_API if not hasattr(module, attr)]
    assert not missing, f"protocols.{name} lacks {missing}"


def test_every_provider_module_offers_the_same_interface() -> None:
    from gatewaytui.providers import registry

    assert set(registry.PROVIDERS) == {
        "anthropic",
        "openai",
        "openai-responses",
        "gemini",
        "openrouter",
        "openai-compatible",
    }
    for name, module in registry.PROVIDERS.items():
        missing = [attr for attr in PROVIDER_API if not hasattr(module, attr)]
        assert not missing, f"provider {name} lacks {missing}"
