"""The load tool: wrk (compiled, event-driven; Debian package ``wrk``) with a generated Lua script.

One static POST per run (wrk prebuilds it, so the client side costs next to nothing). The script's
``done`` hook prints one JSON line with requests, errors and latency percentiles in microseconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

MARK = "WRKJSON "

LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d}\\n',
    "{mark}", summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


def lua_string(s: str) -> str:
    """A Lua long-bracket string literal that cannot be closed by its content."""
    level = 0
    while f"]{'=' * level}]" in s:
        level += 1
    eq = "=" * level
    return f"[{eq}[{s}]{eq}]"


def script(body: bytes, headers: dict[str, str]) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(body.decode())}"]
    for k, v in headers.items():
        lines.append(f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}")
    return "\n".join(lines) + "\n" + LUA_DONE.replace("{mark}", MARK)


@dataclass
class Result:
    rps: float
    requests: int
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    raw: dict[str, float]

    def as_dict(self) -> dict[str, float]:
        return {
            "rps": self.rps,
            "requests": self.requests,
            "errors": self.errors,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
        }


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    connections: int,
    seconds: float,
    threads: int = 1,
    timeout: float = 10.0,
) -> Result:
    exe = wrk_path()
    if exe is None:
        raise RuntimeError("wrk not found: apt-get install -y wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script(body, headers))
        lua = f.name
    try:
        argv = [
            exe,
            "-t",
            str(min(threads, connections)),
            "-c",
            str(connections),
            "-d",
            f"{max(1, round(seconds))}s",
            "--timeout",
            f"{max(1, round(timeout))}s",
            "-s",
            lua,
            url,
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + timeout + 30)
    finally:
        Path(lua).unlink(missing_ok=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)), None)
    if line is None:
        raise RuntimeError(
            f"wrk gave no result (exit {proc.returncode}): {proc.stdout[-500:]} {proc.stderr[-500:]}"
        )
    raw = json.loads(line[len(MARK) :])
    errors = int(raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"])
    ok = max(0, int(raw["requests"]) - int(raw["status"]))
    return Result(
        rps=ok / (raw["duration_us"] / 1e6),
        requests=int(raw["requests"]),
        errors=errors,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        raw=raw,
    )
