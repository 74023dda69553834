"""Machine-checked architecture: the core never imports the console, protocols/providers stay uniform."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = [
    "gatewaytui.runtime",
    "gatewaytui.host",
    "gatewaytui.admin",
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


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.fail("import-linter is part of the dev extra and must be installed")
    result = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


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
