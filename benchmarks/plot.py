"""Plot history(limit=100) p50 latency against database size, from the JSON results.

Reads benchmarks/results/history.json (convostore and the raw drivers, SQLite and PostgreSQL), any
history_*.json written with ``bench_history.py --results NAME`` (sizes it adds) and, when present,
benchmarks/results/peers.json (peer stores on SQLite), and before_history*.json, runs of the same
script on an earlier commit (their convostore rows are drawn dotted as "before"); writes
docs/history_latency.png. Needs matplotlib (``pip install -e ".[bench]"``).

    .venv/bin/python benchmarks/plot.py
"""

from __future__ import annotations

import json
from collections import defaultdict

import _common as common


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points_by_label: dict[str, dict[int, float]] = defaultdict(dict)
    # history.json first; extra runs (e.g. history_pg_10m.json from --results) add missing sizes.
    paths = [common.RESULTS / "history.json"]
    paths += sorted(p for p in common.RESULTS.glob("history_*.json") if p not in paths)
    for path in paths:
        if not path.exists():
            continue
        for r in json.loads(path.read_text())["rows"]:
            label = f"{r['contender']} ({r['backend']})"
            points_by_label[label].setdefault(r["rows"], r["p50_ms"])
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for label, points in points_by_label.items():
        series[label] = list(points.items())
    before: dict[str, dict[int, float]] = defaultdict(dict)
    for path in sorted(common.RESULTS.glob("before_history*.json")):
        for r in json.loads(path.read_text())["rows"]:
            if r["contender"] == "convostore":
                before[f"convostore before ({r['backend']})"].setdefault(r["rows"], r["p50_ms"])
    for label, sizes in before.items():
        series[label] = list(sizes.items())
    peers_path = common.RESULTS / "peers.json"
    if peers_path.exists():
        for r in json.loads(peers_path.read_text())["history"]:
            if r["contender"] != "convostore":
                series[f"{r['contender']} (sqlite)"].append((r["rows"], r["p50_ms"]))

    fig, ax = plt.subplots(figsize=(8, 5))
    for label, line in sorted(series.items()):
        line.sort()
        style = ":" if " before " in label else "-" if label.startswith("convostore") else "--"
        ax.plot([p[0] for p in line], [p[1] for p in line], style, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("messages in the database")
    ax.set_ylabel("p50 latency of newest-100 read (ms)")
    ax.set_title("history(limit=100) latency vs database size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = common.ROOT / "docs" / "history_latency.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
