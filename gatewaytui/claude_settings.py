"""Pointing Claude Code at the gateway (or back at Anthropic) through its ``settings.json``.

Claude Code reads ``<home>/settings.json`` (home is ``~/.claude`` unless configured otherwise); its
``env`` table sets environment variables for every session. "Proxy" mode sets ``ANTHROPIC_BASE_URL``
to the gateway and a gateway key in ``ANTHROPIC_AUTH_TOKEN`` (sent as a bearer token) or
``ANTHROPIC_API_KEY``; the values they replace are kept in a sidecar file so "direct" mode can put them
back. Every other setting is left exactly as it was; writes are atomic and the file stays private.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .store.keys import KEY_PREFIX as GATEWAY_KEY_PREFIX

SETTINGS = "settings.json"
BACKUP = "settings.gatewaytui-backup.json"
MANAGED = ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY")
KEY_VARS = ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY")


class SettingsError(Exception):
    """settings.json cannot be read or written (message is fit for the operator)."""


def home_dir(home: str) -> Path:
    return Path(os.path.expanduser(home or "~/.claude"))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path} is not valid JSON (line {exc.lineno}); fix or move it first") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path} does not hold a JSON object; fix or move it first")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
        fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, ensure_ascii=False)
                fh.write("\n")
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise SettingsError(f"cannot write {path}: {exc.strerror or exc}") from None


def mask(value: str | None) -> str | None:
    if not value:
        return None
    return value[:6] + "…" + value[-4:] if len(value) > 14 else "…"


def read(home: str, gateway_url: str | None = None) -> dict[str, Any]:
    """What Claude Code is set to use, without revealing keys."""
    path = home_dir(home) / SETTINGS
    data = _read_json(path)
    env = (data or {}).get("env")
    env = env if isinstance(env, dict) else {}
    base_url = env.get("ANTHROPIC_BASE_URL")
    key_var = next((k for k in KEY_VARS if env.get(k)), None)
    key = env.get(key_var) if key_var else None
    if not base_url:
        mode = "direct"
    elif gateway_url is None or _same_gateway(str(base_url), gateway_url):
        mode = "proxy"
    else:
        mode = "other"  # some other base URL the operator set
    return {
        "path": str(path),
        "exists": data is not None,
        "mode": mode,
        "base_url": base_url,
        "key_var": key_var,
        "key": mask(str(key)) if key else None,
        "gateway_key": bool(key) and str(key).startswith(GATEWAY_KEY_PREFIX),
        "backup": (home_dir(home) / BACKUP).exists(),
        "env": {
            k: (mask(str(v)) if "KEY" in k or "TOKEN" in k or "SECRET" in k else v) for k, v in env.items()
        },
        "other_settings": sorted(k for k in (data or {}) if k != "env"),
    }


def _same_gateway(base_url: str, gateway_url: str) -> bool:
    return base_url.rstrip("/").startswith(gateway_url.rstrip("/"))


def set_proxy(
    home: str,
    base_url: str,
    key: str,
    *,
    key_var: str = "ANTHROPIC_AUTH_TOKEN",
    gateway_url: str | None = None,
) -> dict[str, Any]:
    """Send Claude Code through the gateway at ``base_url`` with tenant key ``key``."""
    if key_var not in KEY_VARS:
        raise SettingsError(f"key_var must be one of {', '.join(KEY_VARS)}")
    root = home_dir(home)
    path, backup_path = root / SETTINGS, root / BACKUP
    data = _read_json(path) or {}
    env = data.get("env")
    if env is not None and not isinstance(env, dict):
        raise SettingsError(f'{path}: "env" is not an object; fix it first')
    env = dict(env or {})
    if _read_json(backup_path) is None:  # first switch: remember what we replace
        _write_json(backup_path, {"env": {k: env.get(k) for k in MANAGED}})
    env["ANTHROPIC_BASE_URL"] = base_url
    for var in KEY_VARS:
        env.pop(var, None)
    env[key_var] = key
    data["env"] = env
    _write_json(path, data)
    return read(home, gateway_url)


def set_direct(home: str, gateway_url: str | None = None) -> dict[str, Any]:
    """Send Claude Code straight to Anthropic again: restore what proxy mode replaced."""
    root = home_dir(home)
    path, backup_path = root / SETTINGS, root / BACKUP
    data = _read_json(path)
    backup = _read_json(backup_path)
    if data is None and backup is None:
        return read(home, gateway_url)
    data = data or {}
    env = data.get("env")
    if env is not None and not isinstance(env, dict):
        raise SettingsError(f'{path}: "env" is not an object; fix it first')
    env = dict(env or {})
    saved = (backup or {}).get("env")
    if isinstance(saved, dict):
        for var in MANAGED:
            if isinstance(saved.get(var), str):
                env[var] = saved[var]
            else:
                env.pop(var, None)
    else:  # no record of earlier values: drop the gateway URL and any gateway key
        env.pop("ANTHROPIC_BASE_URL", None)
        for var in KEY_VARS:
            if str(env.get(var, "")).startswith(GATEWAY_KEY_PREFIX):
                env.pop(var)
    if env:
        data["env"] = env
    else:
        data.pop("env", None)
    _write_json(path, data)
    if backup is not None:
        try:
            backup_path.unlink()
        except OSError as exc:
            raise SettingsError(f"cannot remove {backup_path}: {exc.strerror or exc}") from None
    return read(home, gateway_url)
