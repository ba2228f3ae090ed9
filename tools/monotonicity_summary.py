#!/usr/bin/env python3
"""Prints the per-row monotonicity curve of analyze stages in numbers: for each run folder given,
the map's weight relative to its row's top key (`row_curve.student`) in the lowest bin, its
minimum and where, its maximum, and the bins above 1 below the top key (a monotone map has none).

    python3 tools/monotonicity_summary.py results/sst2_minilm_attention_cpu/run-0{10..18} [--stage stage-2]

The README's reading of `results/figures/minilm_monotonicity.png` quotes this output.
"""
import argparse
import json
from pathlib import Path


def summary(run: Path, stage: str) -> str:
    report = json.loads((run / "analysis" / f"{stage}.json").read_text())
    curve = report.get("row_curve")
    if curve is None:
        return f"{run}: no row_curve (a report from before per-row curves; re-run the analyze stage)"
    edges, student = curve["edges"], curve["student"]
    points = [((edges[i] + edges[i + 1]) / 2, y) for i, y in enumerate(student) if y is not None]
    if not points:
        return f"{run}: {report['attention']}: no student curve"
    x_min, y_min = min(points, key=lambda p: p[1])
    top_bin = edges[-2]
    above = [x for x, y in points if y > 1 and x < top_bin]
    where = f"{len(above)} of {len(points)} bins, x in [{min(above):.2f}, {max(above):.2f}]" if above else "none"
    return (
        f"{report['attention']:<26} lowest bin (x={points[0][0]:.2f}) {points[0][1]:.4g}; "
        f"min {y_min:.4g} at x={x_min:.2f}; max {max(y for _, y in points):.4g}; above 1: {where}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--stage", default="stage-2", help="analysis file stem (default: stage-2)")
    args = parser.parse_args()
    for run in args.runs:
        print(summary(run, args.stage))


if __name__ == "__main__":
    main()
