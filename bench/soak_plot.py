"""Draws soak.png from a bench/soak.py results directory: the bridge's RSS, its open fds and the
ingest p99 per 10 s window over time. Run by soak.py with the venv's python (matplotlib).

    ~/.cache/tallyfy-bridge/soak-venv/bin/python bench/soak_plot.py RESULTS_DIR
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    results = Path(sys.argv[1])
    samples = [json.loads(line) for line in (results / "samples.jsonl").read_text().splitlines()]
    windows = [json.loads(line) for line in (results / "windows.jsonl").read_text().splitlines()]
    load = [s for s in samples if s["phase"] == "load"]
    drain = [s for s in samples if s["phase"] == "drain"]
    minutes = lambda rows, key="t_s": [r[key] / 60 for r in rows]
    fig, (rss, fds, p99) = plt.subplots(3, 1, sharex=True, figsize=(10, 8))
    for ax, key, scale, label in ((rss, "rss_kb", 1 / 1024, "bridge RSS (MiB)"), (fds, "fds", 1, "bridge open fds")):
        ax.plot(minutes(load), [s[key] * scale for s in load], label="under load")
        if drain:
            ax.plot(minutes(drain), [s[key] * scale for s in drain], label="draining", color="grey")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    rss.legend(loc="lower right")
    answered = [w for w in windows if w["answered"] and w["sent"]]  # not the tail after the last send
    p99.plot(minutes(answered), [w["p99_ms"] for w in answered], label="p99")
    p99.plot(minutes(answered), [w["p50_ms"] for w in answered], label="p50")
    p99.set_ylabel("ingest latency per 10 s (ms)")
    p99.set_yscale("log")
    p99.set_xlabel("minutes since the load started")
    p99.grid(alpha=0.3, which="both")
    p99.legend(loc="upper right")
    fig.suptitle(f"tallyfy-bridge soak ({results.name})")
    fig.tight_layout()
    fig.savefig(results / "soak.png", dpi=110)


if __name__ == "__main__":
    main()
