"""Plot history(limit=100) p50 latency against database size, from named JSON results.

Draws the convostore and raw-driver rows of the ``bench_history.py`` results given (later files
add the sizes earlier ones lack) and the peer rows of any ``bench_peers.py`` results given; writes
docs/history_latency.png. Needs matplotlib (``pip install -e ".[bench]"``).

    .venv/bin/python benchmarks/plot.py benchmarks/results/history_<date>.json \
        [benchmarks/results/peers_<date>.json …]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import _common as common


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("results", nargs="+", type=Path, help="history_*.json and peers_*.json files")
    args = p.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points_by_label: dict[str, dict[int, float]] = defaultdict(dict)
    for path in args.results:
        document = json.loads(path.read_text())
        for r in document.get("rows", []):
            label = f"{r['contender']} ({r['backend']})"
            points_by_label[label].setdefault(r["rows"], r["p50_ms"])
        for r in document.get("history", []):
            if r["contender"] != "convostore":
                points_by_label[f"{r['contender']} (sqlite)"].setdefault(r["rows"], r["p50_ms"])
    series = {label: sorted(points.items()) for label, points in points_by_label.items()}

    fig, ax = plt.subplots(figsize=(8, 5))
    for label, line in sorted(series.items()):
        style = "-" if label.startswith("convostore") else "--"
        ax.plot([q[0] for q in line], [q[1] for q in line], style, marker="o", label=label)
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
