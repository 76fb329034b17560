"""Writing results: ``latest.json`` (everything) and ``latest.md`` (the tables)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from bench.goals import check_goals

__all__ = ["markdown", "write_results"]


def _ms(value: Any) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _ratio(value: Any) -> str:
    return f"{value:.2f}x" if isinstance(value, int | float) else "-"


def _op_table(ops: list[dict[str, Any]], drivers: list[str]) -> list[str]:
    head = "| group | operation | ours p50 | ours p95 |"
    rule = "|---|---|---:|---:|"
    for d in drivers:
        head += f" {d} p50 | {d} p95 | vs {d} |"
        rule += "---:|---:|---:|"
    lines = [head + " stmts |", rule + "---:|"]
    for op in ops:
        ours = op.get("ours") or {}
        row = f"| {op['group']} | {op['op']} |"
        row += f" {_ms(ours.get('p50_ms'))} | {_ms(ours.get('p95_ms'))} |"
        for d in drivers:
            raw = op["raw"].get(d, {})
            row += f" {_ms(raw.get('p50_ms'))} | {_ms(raw.get('p95_ms'))} |"
            row += f" {_ratio(op['ratio_p50'].get(d))} |"
        row += f" {op['statements_per_call']} |"
        if op.get("error"):
            row += f" error: {op['error']}"
        elif op.get("replay_mismatches"):
            row += f" {op['replay_mismatches']} replay mismatches"
        lines.append(row)
    return lines


def _database(name: str, d: dict[str, Any]) -> list[str]:
    lines = [f"## {name}", ""]
    if not d.get("reachable"):
        return [*lines, f"**Not measured: unreachable** ({d.get('error')})", ""]
    lines += [f"Server: {d.get('server_version')}", ""]
    drivers = list(d.get("raw_drivers", []))
    if any("expert" in op.get("raw", {}) for op in d.get("ops", [])):
        drivers.append("expert")  # the hand-written baseline (bench/expert.py)
    if d.get("ops"):
        lines += [f"### Operations ({d.get('base_rows')} rows per table)", ""]
        lines += [*_op_table(d["ops"], drivers), ""]
    if d.get("votes"):
        lines += [*_votes(d["votes"]), ""]
    if d.get("synchronous_normal"):
        lines += [
            "### The same writes with `synchronous=normal` (the default is `full`)",
            "",
            "Ours and the raw drivers on a second file with `PRAGMA synchronous = NORMAL`: "
            "what fsyncing every commit costs.",
            "",
            *_op_table(d["synchronous_normal"], drivers),
            "",
        ]
    scale = d.get("scale")
    if scale:
        lines += [f"### Scale: {scale['rows']:,} rows per table", ""]
        lines += [f"Bulk load seconds: {scale.get('load_seconds')}", ""]
        lines += [*_op_table(scale["ops"], drivers), ""]
        lines += [
            "| operation | p50 at base | p50 at scale | scale / base |",
            "|---|---:|---:|---:|",
        ]
        for key, v in scale.get("vs_base", {}).items():
            cells = [key, _ms(v["base_p50_ms"]), _ms(v["scale_p50_ms"]), _ratio(v["ratio"])]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", *_slow_plans(scale)]
    for title, key in (
        ("Concurrency", "concurrency"),
        ("Wake-up latency", "wakeup"),
        ("Peak RSS", "rss"),
    ):
        part = d.get(key)
        if part:
            lines += [f"### {title}", "", _part(key, part), ""]
    return lines


def _votes(votes: dict[str, Any]) -> list[str]:
    """The votes timed interleaved with ``approve`` (ours): p50 and the ratio to approve."""
    if "error" in votes:
        return [f"Votes interleaved: error: {votes['error']}"]
    cells = [
        f"{name} p50 {_ms(s['p50_ms'])} ms"
        + (f" ({_ratio(votes['ratio_vs_approve'][name])})" if name != "approve" else "")
        for name, s in votes["ours"].items()
    ]
    return [
        f"Votes, ours, {votes['calls']} calls each interleaved (ratio to approve): "
        + ", ".join(cells)
    ]


def _slow_plans(scale: dict[str, Any]) -> list[str]:
    """Query plans at scale of the operations that grew more than 2x."""
    slow = {k for k, v in scale.get("vs_base", {}).items() if (v.get("ratio") or 0) > 2}
    lines = []
    for op in scale["ops"]:
        if f"{op['group']}.{op['op']}" in slow and op.get("plans"):
            lines += [f"Plan of {op['group']}.{op['op']} at scale:", "", "```"]
            for p in op["plans"]:
                lines += [p["sql"], *p["plan"], ""]
            lines[-1] = "```"
            lines.append("")
    return lines


def _part(key: str, part: dict[str, Any]) -> str:
    if "error" in part:
        return f"error: {part['error']}"
    if key == "concurrency":
        o, r = part["ours"], part["raw"]
        return (
            f"{part['processes']} processes x {part['tasks_per_process']} tasks, "
            f"{o['calls']} calls: ours {o['throughput_per_s']}/s "
            f"(p50 {_ms(o['p50_ms'])} ms, p95 {_ms(o['p95_ms'])} ms), "
            f"{r['driver']} {r['throughput_per_s']}/s (p50 {_ms(r['p50_ms'])} ms, "
            f"p95 {_ms(r['p95_ms'])} ms); throughput ratio {_ratio(part['throughput_ratio'])}"
        )
    if key == "wakeup":
        a, t = part["after_decision"], part["including_decision"]
        return (
            f"{part['mechanism']}, {part['rounds']} rounds: after the decision returned "
            f"p50 {_ms(a['p50_ms'])} ms, p95 {_ms(a['p95_ms'])} ms; from the decision call "
            f"p50 {_ms(t['p50_ms'])} ms, p95 {_ms(t['p95_ms'])} ms"
        )
    return (
        f"{part['saves_each']} approval saves + {part['saves_each']} session saves: "
        f"peak {part['peak_mib']} MiB (after imports {part['after_import_mib']} MiB)"
    )


def markdown(results: dict[str, Any]) -> str:
    """The results as markdown tables."""
    m = results["machine"]
    s = results["settings"]
    lines = [
        "# Benchmark results",
        "",
        f"{m['date_utc']} on {m['cpu_model']} ({m['cores']} cores), Python {m['python']}, "
        f"load average at start {m['load_average_at_start']}, commit {m['git_commit']}"
        + (" (src modified)" if m.get("git_dirty") else ""),
        "",
        f"Settings: {json.dumps(s)}",
        "",
        "Times in ms; `vs X` = ours p50 / X p50 on the same statements; "
        "`stmts` = driver calls per operation.",
        "",
    ]
    imp = results.get("import")
    if imp:
        if "error" in imp:
            lines += [f"Import: error: {imp['error']}", ""]
        else:
            lines += [
                f"Import of dataflow + kaizen.governance + kaizen.integrations.nexus: median "
                f"{imp['median_ms']} ms of {imp['repeats']} fresh processes "
                f"(drivers imported: {imp['drivers_imported'] or 'none'})",
                "",
            ]
    lines += _goals(results)
    lines += _topologies(results)
    for name, d in results["databases"].items():
        lines += _database(name, d)
    return "\n".join(lines).rstrip() + "\n"


#: Each cluster beside the single server it replicates.
_BESIDE = {"pg-ha": "postgresql", "galera": "mysql"}


def _topologies(results: dict[str, Any]) -> list[str]:
    """Clusters beside their single server, measured in the same run: p50 per operation
    (and cluster / single), concurrent throughput."""
    dbs = results["databases"]
    pairs = [(c, s) for c, s in _BESIDE.items() if dbs.get(c, {}).get("ops")]
    if not pairs:
        return []
    lines = ["## Topologies (same run)", "", "p50 in ms; `x` = cluster / single server.", ""]
    head = "| operation |" + "".join(f" {s} | {c} | x |" for c, s in pairs)
    lines += [head, "|---|" + "---:|---:|---:|" * len(pairs)]
    keys = [(o["group"], o["op"]) for o in dbs[pairs[0][0]]["ops"]]
    for group, op in keys:
        row = f"| {group}.{op} |"
        for cluster, single in pairs:
            p50 = {
                n: next(
                    (
                        (o.get("ours") or {}).get("p50_ms")
                        for o in dbs.get(n, {}).get("ops", [])
                        if (o["group"], o["op"]) == (group, op)
                    ),
                    None,
                )
                for n in (single, cluster)
            }
            a, b = p50[single], p50[cluster]
            row += f" {_ms(a)} | {_ms(b)} | {_ratio(b / a if a and b else None)} |"
        lines.append(row)
    lines.append("")
    for cluster, single in pairs:
        rates = [
            (dbs.get(n, {}).get("concurrency") or {}).get("ours", {}) for n in (single, cluster)
        ]
        if all("throughput_per_s" in r for r in rates):
            lines.append(
                f"Concurrent throughput (ours): {single} {rates[0]['throughput_per_s']}/s, "
                f"{cluster} {rates[1]['throughput_per_s']}/s."
            )
    return [*lines, ""]


def _goals(results: dict[str, Any]) -> list[str]:
    goals = results.get("goals") or []
    missing = [n for n, d in results["databases"].items() if not d.get("reachable")]
    if not goals and not missing:
        return []
    lines = ["## Targets (issues 5 and 15)", ""]
    if missing:
        lines += [f"**Not measured (unreachable): {', '.join(missing)}**", ""]
    met = sum(1 for g in goals if g["met"])
    lines += [f"{met} of {len(goals)} met.", ""]
    lines += ["| target | database | value | limit | met |", "|---|---|---:|---:|---|"]
    for g in goals:
        value = g["value"]
        shown = f"{value:.2f}" if isinstance(value, int | float) else "-"
        verdict = {True: "yes", False: "**no**", None: "-"}[g["met"]]
        lines.append(
            f"| {g['target']} | {g['database'] or '-'} | {shown} | {g['limit']} | {verdict} |"
        )
    return [*lines, ""]


def write_results(results: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``latest.json`` and ``latest.md`` atomically; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results["goals"] = check_goals(results)
    paths = (out_dir / "latest.json", out_dir / "latest.md")
    texts = (json.dumps(results, indent=2, default=str) + "\n", markdown(results))
    for path, text in zip(paths, texts, strict=True):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return paths
