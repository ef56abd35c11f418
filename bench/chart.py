"""Draw BENCHMARKS.md's chart: throughput and p99 against concurrency, POS complete beside pgbench.

Run by ``bench.report.write_chart`` in the bench tools' own virtualenv (``.venv-bench``, made by
``make bench`` with the ``bench`` extra's matplotlib), not in the app's: matplotlib brings numpy,
and advanced-alchemy imports numpy whenever it is installed, which would put 17 MB into every
app worker that a production install does not have.

    .venv-bench/bin/python bench/chart.py chart.json docs/bench/throughput.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def draw(data: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clients: list[int] = data["clients"]  # type: ignore[assignment]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    left.plot(clients, data["per_second"], "o-", label="POS complete/s")
    right.plot(clients, data["p99_ms"], "o-", label="POS complete")
    if data["pgbench_clients"]:
        counts = data["pgbench_clients"]
        left.plot(counts, data["pgbench_tps"], "s--", label="pgbench TPC-B tps")
        right.plot(counts, data["pgbench_p99_ms"], "s--", label="pgbench TPC-B")
    for axis, title, unit in (
        (left, "Throughput", "per second"),
        (right, "p99 latency (log scale)", "ms"),
    ):
        axis.set_xscale("log", base=2)
        axis.set_xticks(clients, [str(c) for c in clients])
        axis.set_xlabel("concurrent clients (closed loop)")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, alpha=0.3, which="both")
        axis.legend()
    left.set_ylim(bottom=0)
    # POS and pgbench latencies can lie orders of magnitude apart.
    right.set_yscale("log")
    figure.suptitle(str(data["title"]), fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


if __name__ == "__main__":
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
