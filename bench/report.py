"""The results table (Markdown), with ratios and the targets, from one run's medians."""

from __future__ import annotations

import math
from typing import Any

HEADS = {
    "direct": "direct (limit)",
    "bare": "bare Quart+Hypercorn",
    "gatewaytui": "gatewaytui",
    "litellm": "LiteLLM proxy",
}


def columns(figs: dict[str, dict[str, Any]]) -> list[str]:
    """direct, bare, gatewaytui, gatewaytui[variant]..., litellm — whichever ran."""
    names: list[str] = []
    for per in figs.values():
        names += [n for n in per if n not in names]
    rank = {"direct": 0, "bare": 1, "gatewaytui": 2, "litellm": 4}
    return sorted(names, key=lambda n: (rank.get(n, 3), n))


# figure -> (target text, checks): ("litellm", x) gatewaytui >= x * litellm; ("bare", f) >= f * bare
THROUGHPUT_TARGETS: dict[str, tuple[str, list[tuple[str, float]]]] = {
    "non-streamed c=32": (">= 20x LiteLLM, >= 50% bare", [("litellm", 20.0), ("bare", 0.5)]),
    "non-streamed c=128": (">= 20x LiteLLM, >= 50% bare", [("litellm", 20.0), ("bare", 0.5)]),
    "non-streamed c=1": ("", []),
    "streamed c=32": (">= 15x LiteLLM", [("litellm", 15.0)]),
    "translated non-streamed c=32": (">= 20x LiteLLM", [("litellm", 20.0)]),
    "translated streamed c=32": (">= 15x LiteLLM", [("litellm", 15.0)]),
}


def _num(x: float | None, fmt: str = "{:,.0f}") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return fmt.format(x)


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else (" ✅" if ok else " ❌")


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    figs = results["figures"]
    present = columns({**figs, **results.get("ttft", {}), "idle": results.get("idle", {})})
    head = [HEADS.get(c, c) for c in present]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}; {m['wrk']}"
        + (f"; LiteLLM {m['litellm']}" if m.get("litellm") else ""),
        f"Date: {m['date']}; gatewaytui {m['gatewaytui_rev']}",
        f"Command: `{results.get('command') or 'python -m bench'}`",
        "",
        "| Figure | " + " | ".join(head) + " | gatewaytui ÷ LiteLLM | gatewaytui ÷ bare | Target |",
        "|---|" + "---:|" * len(present) + "---:|---:|---|",
    ]
    flags: list[str] = []
    for fig, per in figs.items():
        gw = per.get("gatewaytui", {}).get("rps")
        row = [_num(per.get(c, {}).get("rps")) for c in present]
        ll = per.get("litellm", {}).get("rps")
        bare = per.get("bare", {}).get("rps")
        r_ll = gw / ll if gw and ll else None
        r_bare = gw / bare if gw and bare else None
        text, checks = THROUGHPUT_TARGETS.get(fig, ("", []))
        oks = []
        for who, x in checks:
            r = r_ll if who == "litellm" else r_bare
            if r is not None:
                oks.append(r >= x)
        verdict = _verdict(all(oks) if oks else None)
        lines.append(
            f"| {fig} req/s | "
            + " | ".join(row)
            + f" | {_num(r_ll, '{:.1f}×')} | {_num(r_bare, '{:.0%}')} | {text}{verdict} |"
        )
        direct = per.get("direct", {}).get("rps")
        if gw and direct and direct < 5 * gw:
            flags.append(
                f"⚠ {fig}: the fake upstream served only {direct / gw:.1f}× the gateway (< 5×): this figure may be upstream-bound"
            )
        for c in present:
            if per.get(c, {}).get("errors"):
                flags.append(f"⚠ {fig}: {c} had {per[c]['errors']} errors")
    for fig in ("non-streamed c=32", "streamed c=32", "translated non-streamed c=32"):
        per = figs.get(fig, {})
        if per and any("cpu_ms" in v for v in per.values()):
            cells = [_num(per.get(c, {}).get("cpu_ms"), "{:.3f}") for c in present]
            gw, bare = per.get("gatewaytui", {}).get("cpu_ms"), per.get("bare", {}).get("cpu_ms")
            ratio = _num(bare / gw, "{:.0%}") if gw and bare else "–"
            lines.append(
                f"| CPU ms per request, {fig} | "
                + " | ".join(cells)
                + f" | | {ratio} | (contention-proof view of the ratio) |"
            )
    c1 = figs.get("non-streamed c=1", {})
    if "direct" in c1:
        for pct, goal in (("p50_ms", "<= 1 ms"), ("p99_ms", "")):
            base = c1["direct"][pct]
            cells = []
            for c in present:
                cells.append(
                    "0 (base " + _num(base, "{:.3f}") + " ms)"
                    if c == "direct"
                    else _num(c1.get(c, {}).get(pct, float("nan")) - base, "{:+.3f} ms")
                )
            gw_added = c1.get("gatewaytui", {}).get(pct, float("nan")) - base
            ok = (gw_added <= 1.0) if goal and not math.isnan(gw_added) else None
            lines.append(
                f"| added latency {pct[:3]} c=1 (non-streamed) | "
                + " | ".join(cells)
                + f" | | | {goal}{_verdict(ok)} |"
            )
    for fig, per in results.get("ttft", {}).items():
        if "direct" not in per:
            continue
        base = per["direct"]["p50_ms"]
        cells = []
        for c in present:
            if c == "direct":
                cells.append("0 (base " + _num(base, "{:.3f}") + " ms)")
            else:
                cells.append(_num(per.get(c, {}).get("p50_ms", float("nan")) - base, "{:+.3f} ms"))
        gw_added = per.get("gatewaytui", {}).get("p50_ms", float("nan")) - base
        ok = None if math.isnan(gw_added) else gw_added <= 1.0
        lines.append(
            f"| added {fig} p50 (streamed) | " + " | ".join(cells) + f" | | | <= 1 ms{_verdict(ok)} |"
        )
    idle = results.get("idle", {})
    if idle:
        n = idle.get("gatewaytui", next(iter(idle.values())))["streams"]
        cells = [
            (
                _num(idle[c]["kb_per_stream"], "{:.1f} KiB")
                + (f" ({idle[c]['streams']} held)" if idle[c]["streams"] != n else "")
            )
            if c in idle
            else "–"
            for c in present
        ]
        gw = idle.get("gatewaytui", {}).get("kb_per_stream")
        lines.append(
            f"| RSS per open idle stream ({n:,} streams) | "
            + " | ".join(cells)
            + f" | | | <= 40 KiB{_verdict(None if gw is None else gw <= 40.0)} |"  # VmRSS is in KiB
        )
    lines.append("")
    lines.append(
        "Throughput rows: requests/s, median of the rounds (wrk, one thread, keep-alive). Streams carry "
        "50 text deltas (55 SSE events). Added latency and TTFT are the target's median minus the fake "
        "upstream's own, measured in the same run."
    )
    if flags:
        lines.append("")
        lines.extend(flags)
    return "\n".join(lines) + "\n"
