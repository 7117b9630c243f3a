"""Rendering results: a text table for stdout, one JSON line, the generated block of docs/performance.md."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.scenarios import Row, ScenarioResult

BEGIN = "<!-- BEGIN GENERATED: python -m benchmarks.run rewrites this block -->"
END = "<!-- END GENERATED -->"
_SHOWN_EXTRAS = (
    "cpu_s",
    "peak_rss_MiB",
    "proxied_requests",
    "src_manifest_gets",
    "src_blob_gets",
    "dst_uploads",
    "dst_manifest_puts",
    "src_requests",
    "dst_requests",
    "peak_in_httpx",
    "connections",
)


def _num(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:g}" if isinstance(value, int) or value == int(value) else f"{value:.1f}"


def _extras(row: Row) -> str:
    parts = []
    for key in _SHOWN_EXTRAS:
        if key in row.extra:
            parts.append(f"{key}={_num(row.median_of(key))}")
    return " ".join(parts)


def _ratio(result: ScenarioResult, row: Row) -> str:
    base = {"cold": "ours", "many": "ours", "memory": "ours", "rerun": "ours sync"}.get(result.name)
    if result.name.startswith("thin"):
        base = "ours"
    if result.name == "curve":
        base = "ours --concurrency 4"  # the default
    if result.name == "many" and row.contender.endswith(" rerun"):
        base = "ours rerun"  # reruns compare with ours' rerun
    if result.name == "dryscale" and row.contender.endswith(" unbounded"):
        base = row.contender.removesuffix(" unbounded")  # each size against itself with the bound
    if base is None or row.contender == base:
        return ""
    ours = result.row(base).median
    return f"{row.median / ours:.2f}" if ours else ""


def text_table(results: Sequence[ScenarioResult], plan: Sequence[dict[str, Any]]) -> str:
    """The human summary printed on stdout."""
    lines: list[str] = []
    head = f"{'scenario':<8} {'contender':<24} {'median s':>9}  {'runs (s)':<26} {'÷ ours':<8} details"
    for result in results:
        lines += ["", result.title, head, "-" * len(head)]
        for row in result.rows:
            runs = " ".join(f"{s:.2f}" for s in row.seconds)
            lines.append(
                f"{result.name:<8} {row.contender:<24} {row.median:>9.2f}  {runs:<26} "
                f"{_ratio(result, row):<8} {_extras(row)}"
            )
        for goal, met, evidence in result.goals:
            mark = "MET " if met else "MISS" if met is not None else "n/a "
            lines.append(f"  [{mark}] {goal}: {evidence}")
        lines += [f"  note: {note}" for note in result.notes]
    if plan:
        lines += ["", "Plan scale: validate + plan + HEAD-only pass against MockTransport registries"]
        lines.append(
            f"{'entries':>8} {'latency':>8} {'validate s':>11} {'plan s':>8} "
            f"{'HEAD pass s':>12} {'total s':>8}"
        )
        for p in plan:
            lines.append(
                f"{p['entries']:>8} {p['latency_ms']:>6}ms {p['validate_s']:>11.3f} {p['plan_s']:>8.3f} "
                f"{p['head_pass_s']:>12.3f} {p['total_s']:>8.3f}"
            )
        thousand = [p for p in plan if p["entries"] == 1000 and p["latency_ms"] == 0]
        if thousand:
            t = thousand[0]["total_s"]
            lines.append(f"  [{'MET ' if t < 2 else 'MISS'}] 1,000 entries in < 2 s: {t:.2f}s")
    return "\n".join(lines)


def as_json(
    results: Sequence[ScenarioResult],
    plan: Sequence[dict[str, Any]],
    machine: dict[str, str],
    command: str,
    runs: int,
    quick: bool,
    elapsed: float,
) -> dict[str, Any]:
    """Everything, machine-readable (printed as one line)."""
    scenarios: dict[str, Any] = {}
    for result in results:
        scenarios[result.name] = {
            "title": result.title,
            "rows": {
                row.contender: {
                    "median_s": round(row.median, 3),
                    "runs_s": [round(s, 3) for s in row.seconds],
                    **{k: row.median_of(k) for k in _SHOWN_EXTRAS if k in row.extra},
                }
                for row in result.rows
            },
            "figures": result.figures,
            "goals": [{"goal": g, "met": m, "evidence": e} for g, m, e in result.goals],
        }
    if plan:
        scenarios["plan"] = {"points": list(plan)}
    return {
        "bench": "docker-transfer",
        "command": command,
        "runs": runs,
        "quick": quick,
        "elapsed_s": round(elapsed, 1),
        "machine": machine,
        "scenarios": scenarios,
    }


def markdown(
    results: Sequence[ScenarioResult],
    plan: Sequence[dict[str, Any]],
    machine: dict[str, str],
    command: str,
    runs: int,
    elapsed: float,
) -> str:
    """The generated block of docs/performance.md."""
    out = [
        BEGIN,
        "",
        f"Measured {machine['date']} with `{command}` (medians of the runs listed per contender, "
        f"{runs} unless the row shows more; "
        f"whole run {elapsed / 60:.1f} min).",
        "",
        "`time ÷ ours` > 1 means that contender took longer than ours. `cpu_s` is the user + system CPU of",
        "the contender's own processes (registries excluded): less sensitive to other load than wall time.",
        "",
        "| machine | |",
        "| --- | --- |",
        f"| CPU | {machine['cpu']} ({machine['nproc']} cores as seen by `nproc`) |",
        f"| memory | {machine['memory']} |",
        f"| kernel | {machine['kernel']} |",
        f"| Python / httpx | {machine['python']} / {machine['httpx']} |",
        f"| skopeo | {machine['skopeo']} |",
        f"| registry | {machine['registry']} |",
        f"| curl | {machine['curl']} |",
        f"| load average (1/5/15 min) | {machine.get('load', 'unknown')} |",
        "",
    ]
    for result in results:
        out += [
            f"#### {result.title}",
            "",
            "| contender | median s | runs (s) | time ÷ ours | details (medians) |",
            "| --- | ---: | --- | --- | --- |",
        ]
        for row in result.rows:
            runs_s = " ".join(f"{s:.2f}" for s in row.seconds)
            out.append(
                f"| {row.contender} | {row.median:.2f} | {runs_s} | {_ratio(result, row)} | {_extras(row)} |"
            )
        out.append("")
        figures = {k: v for k, v in result.figures.items() if not isinstance(v, list)}
        if figures:
            out.append("Figures: " + ", ".join(f"`{k}` = {v}" for k, v in figures.items()) + ".")
            out.append("")
        for key, value in result.figures.items():
            if isinstance(value, list):
                shown = ", ".join(f"`{v}`" for v in value[:10]) or "none"
                out.append(f"`{key}`: {shown}" + (f" (+{len(value) - 10} more)" if len(value) > 10 else ""))
                out.append("")
        for goal, met, evidence in result.goals:
            out.append(
                f"- **{'met' if met else 'MISSED' if met is not None else 'n/a'}**: {goal} ({evidence})"
            )
        out += [f"- note: {note}" for note in result.notes]
        out.append("")
    if plan:
        out += [
            "#### Plan scale: validate + plan + HEAD-only pass (MockTransport, in process)",
            "",
            "| entries | fake latency | validate s | plan s | HEAD pass s | total s | requests |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for p in plan:
            reqs = ", ".join(f"{k}: {v}" for k, v in p["requests"].items())
            out.append(
                f"| {p['entries']} | {p['latency_ms']} ms | {p['validate_s']:.3f} | {p['plan_s']:.3f} | "
                f"{p['head_pass_s']:.3f} | {p['total_s']:.3f} | {reqs} |"
            )
        thousand = [p for p in plan if p["entries"] == 1000 and p["latency_ms"] == 0]
        if thousand:
            t = thousand[0]["total_s"]
            out += ["", f"- **{'met' if t < 2 else 'MISSED'}**: 1,000 entries in < 2 s ({t:.2f} s)"]
        out.append("")
    out.append(END)
    return "\n".join(out)


_SKELETON = """# Performance

How docker-transfer compares with what users would otherwise run (the seed's skopeo loop,
`skopeo sync`) and with the raw limit of the two registries, measured by `make bench`.

{generated}
"""


def write_docs(path: Path, block: str) -> None:
    """Replace the generated block of ``path`` (creating the file around it when needed)."""
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            head, _, rest = text.partition(BEGIN)
            _, _, tail = rest.partition(END)
            path.write_text(head + block + tail)
            return
    path.write_text(_SKELETON.format(generated=block))


def json_line(data: dict[str, Any]) -> str:
    """One line of JSON."""
    return json.dumps(data, separators=(",", ":"), sort_keys=False, default=str)
