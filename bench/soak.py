#!/usr/bin/env python3
"""The one-hour soak (issue 18): a fixed rate of mixed webhooks, delivery to a slow, faulty sandbox.

    bench/soak.py                      # 60 minutes at 1,000 events/s (about 65-75 minutes in all)
    bench/soak.py --minutes 3 --rate 400
    bench/soak.py --help               # every knob

Not part of CI, nor of bench/bench.py (whose helpers it imports). Builds the bridge and
bench/soakload in release mode into $CARGO_TARGET_DIR (default /work/scratch/bench-target), then:

- a `tallyfy-bridge sandbox` with --latency-ms (50) on every guest API call and faults: 500s
  (--error-rate 0.03), hangs closed without an answer (--timeout-rate 0.005, after 2 s) and creates
  whose answer is dropped (--drop-after-create-rate 0.005: the guest exists, the bridge must find it);
- the bridge (fresh SQLite file, synchronous=FULL, signature auth, 2 HTTP workers, log level warn,
  delivery enabled with max_creates_per_hour=0 and --concurrency 128; Pipedrive and Salesforce
  configured as in bench.py);
- bench/soakload sending --rate events/s (open loop: request i at i / rate s, answered or not) of
  --mix canonical/Pipedrive/Salesforce events (Salesforce: --salesforce-batch notifications per
  message), the requests written just in time by this script (fresh signatures); it records every
  latency in an HDR histogram and writes one JSON line per 10 s window;
- every 10 s: the bridge's RSS (VmRSS), open fds (/proc/PID/fd), CPU and /status counts.

After --minutes: the load stops, the backlog drains (at most --drain-timeout-secs), then the
verdict: every email acknowledged (2xx) is one sandbox guest created once, no duplicate create
attempt, every outbox row delivered; RSS and fds at the end of the load within 10 % of the
baseline (medians of the samples in the minute around --baseline-minutes, default 5 or a third
of a shorter run, and in the load's last minute); p99 steady
(median window p99 over the last --steady-minutes of the load, default 10 or a third of a shorter
run, at most 1.5x the median over the same span right after the baseline). Writes into the results
directory (default /work/scratch/soak-<UTC timestamp>): windows.jsonl, samples.jsonl, acked.txt,
the logs, soak.json, soak.md (a section for BENCHMARKS.md) and soak.png (RSS, fds, p99 over time,
drawn by bench/soak_plot.py with matplotlib from a venv in ~/.cache/tallyfy-bridge/soak-venv,
created on first use). Exit status 1 if a check failed.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import bench as harness  # bench/bench.py: processes, ports, request generators
from bench import BENCH, CLK_TCK, ROOT, Process, compact, free_port, get_json, query, wait_200

WINDOW_SECS = 10
MATPLOTLIB = "matplotlib==3.9.2"
VENV = Path.home() / ".cache" / "tallyfy-bridge" / "soak-venv"
SOURCES = {  # name: the request generator (bench.py), how to read the emails back out of a body
    "canonical": (harness.canonical_requests, re.compile(r'"email":"([^"]+)"')),
    "pipedrive": (harness.pipedrive_requests, re.compile(r'"value":"([^"]+@[^"]+)"')),
    "salesforce": (harness.salesforce_requests, re.compile(r"<sf:Email>([^<]+)</sf:Email>")),
}


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60, help="load duration (default 60)")
    p.add_argument("--rate", type=float, default=1000, help="events per second, all sources (default 1000)")
    p.add_argument("--mix", default="canonical=5,pipedrive=3,salesforce=2",
                   help="share of the events per source (default canonical=5,pipedrive=3,salesforce=2)")
    p.add_argument("--salesforce-batch", type=int, default=10, help="notifications per Salesforce message (10)")
    p.add_argument("--concurrency", type=int, default=128, help="delivery.concurrency (128)")
    p.add_argument("--workers", type=int, default=2, help="the bridge's HTTP workers (2)")
    p.add_argument("--latency-ms", type=int, default=50, help="sandbox latency per guest API call (50)")
    p.add_argument("--error-rate", type=float, default=0.03, help="sandbox 500s (0.03)")
    p.add_argument("--timeout-rate", type=float, default=0.005, help="sandbox hangs, closed unanswered (0.005)")
    p.add_argument("--drop-after-create-rate", type=float, default=0.005,
                   help="sandbox creates whose answer is dropped (0.005)")
    p.add_argument("--baseline-minutes", type=float, help="RSS/fd baseline sample (5, or a third of a shorter run)")
    p.add_argument("--steady-minutes", type=float, help="p99 spans compared (10, or a third of a shorter run)")
    p.add_argument("--drain-timeout-secs", type=float, default=900, help="longest wait for the backlog (900)")
    p.add_argument("--results", type=Path, help="results directory (default /work/scratch/soak-<timestamp>)")
    p.add_argument("--skip-build", action="store_true", help="use the binaries already built")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG (and the venv)")
    args = p.parse_args()
    args.shares = {name: float(share) for name, share in (item.split("=") for item in args.mix.split(","))}
    unknown = set(args.shares) - set(SOURCES)
    if unknown:
        p.error(f"unknown source(s) in --mix: {' '.join(unknown)} (known: {' '.join(SOURCES)})")
    third = args.minutes / 3
    args.baseline_minutes = args.baseline_minutes or min(5.0, third)
    args.steady_minutes = args.steady_minutes or min(10.0, third)
    return args


def build(target: Path, skip: bool) -> tuple[Path, Path]:
    release = target / "release"
    bridge, load = release / "tallyfy-bridge", release / "bench-soakload"
    if not skip:
        log(f"building release binaries into {target}")
        cargo = ["cargo", "build", "--release", "--quiet"]
        subprocess.run([*cargo, "--bin", "tallyfy-bridge"], cwd=ROOT, check=True)
        subprocess.run([*cargo, "--manifest-path", str(BENCH / "soakload" / "Cargo.toml")], cwd=ROOT, check=True)
    for binary in (bridge, load):
        if not os.access(binary, os.X_OK):
            sys.exit(f"missing binary: {binary}")
    return bridge, load


# --- the load ---------------------------------------------------------------------------------

def request_rate(args) -> tuple[dict[str, float], float]:
    """Requests per second per source for --rate events/s; and their sum."""
    total_share = sum(args.shares.values())
    per = {name: args.rate * share / total_share / (args.salesforce_batch if name == "salesforce" else 1)
           for name, share in args.shares.items() if share > 0}
    return per, sum(per.values())


def feed(stdin, per_source: dict[str, float], count: int, batch: int) -> None:
    """Writes `count` requests to soakload, the sources interleaved evenly by their request
    rates (smooth weighted round robin), each made just before it is written."""
    generators = {name: SOURCES[name][0](count, batch if name == "salesforce" else 1, "soak", 1)
                  for name in per_source}
    total, credit = sum(per_source.values()), dict.fromkeys(per_source, 0.0)
    try:
        for _ in range(count):
            for name, weight in per_source.items():
                credit[name] += weight
            name = max(credit, key=credit.get)
            credit[name] -= total
            path, headers, body = next(generators[name])
            emails = ",".join(e.lower() for e in SOURCES[name][1].findall(body))
            stdin.write(("\t".join([emails, path, *headers, body]) + "\n").encode())
        stdin.close()
    except (BrokenPipeError, ValueError):
        pass  # soakload stopped early; its own output says why


# --- sampling ---------------------------------------------------------------------------------

def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def sample(bridge: Process, sandbox: Process, status_url: str, t_s: float, phase: str) -> dict:
    counts = {}
    try:
        counts = get_json(status_url)["outbox"]["counts"]
    except (OSError, ValueError, KeyError) as error:
        counts = {"error": str(error)}
    return {"t_s": round(t_s, 1), "phase": phase, "rss_kb": proc_status(bridge.pid, "VmRSS"),
            "hwm_kb": proc_status(bridge.pid, "VmHWM"), "rss_anon_kb": proc_status(bridge.pid, "RssAnon"),
            "rss_file_kb": proc_status(bridge.pid, "RssFile"), "rss_shmem_kb": proc_status(bridge.pid, "RssShmem"), "fds": len(os.listdir(f"/proc/{bridge.pid}/fd")),
            "cpu_s": round(bridge.cpu_ticks() / CLK_TCK, 2), "sandbox_rss_kb": proc_status(sandbox.pid, "VmRSS"),
            "sandbox_cpu_s": round(sandbox.cpu_ticks() / CLK_TCK, 2), "counts": counts}


def waiting(counts: dict) -> int:
    return counts.get("queued", 0) + counts.get("retrying", 0) + counts.get("in_flight", 0)


# --- the verdict ------------------------------------------------------------------------------

# One guest: a flat JSON object (its keys come in any order).
GUEST = re.compile(rb"\{[^{}]*\}")
FIELDS = {key: re.compile(rb'"%s":(?:"((?:[^"\\]|\\.)*)"|(\d+))' % key.encode())
          for key in ("email", "creates", "duplicate_attempts")}


def guest_fields(obj: bytes) -> tuple[str, int, int]:
    found = {key: pattern.search(obj) for key, pattern in FIELDS.items()}
    email, creates, dup = (found[key] for key in ("email", "creates", "duplicate_attempts"))
    return email[1].decode().lower(), int(creates[2]) if creates else 1, int(dup[2]) if dup else 0


def sandbox_guests(url: str) -> dict[str, tuple[int, int]]:
    """email -> (creates, duplicate_attempts), read by pattern rather than json.loads: an hour's
    list holds millions of guests."""
    with urllib.request.urlopen(f"{url}/_sandbox/guests", timeout=600) as response:
        raw = response.read()
    guests = {}
    for obj in GUEST.finditer(raw):
        email, creates, dup = guest_fields(obj[0])
        old = guests.get(email, (0, 0))
        guests[email] = (old[0] + creates, old[1] + dup)  # one email listed twice counts as created twice
    return guests


def deliveries(db: Path) -> dict:
    rows = lambda sql: query(db, sql)
    return {
        "rows": rows("SELECT count(*) FROM outbox"),
        "by_state": dict(json.loads(rows("SELECT json_group_array(json_array(state, n)) FROM "
                                         "(SELECT state, count(*) n FROM outbox GROUP BY state)"))),
        "by_source": dict(json.loads(rows("SELECT json_group_array(json_array(source, n)) FROM "
                                          "(SELECT source, count(*) n FROM outbox GROUP BY source)"))),
        "distinct_emails": rows("SELECT count(DISTINCT email) FROM outbox"),
        "emails_in_two_rows": rows("SELECT count(*) FROM (SELECT email FROM outbox GROUP BY email HAVING count(*) > 1)"),
        "attempted_more_than_once": rows("SELECT count(*) FROM outbox WHERE attempts > 1"),
        "attempts_logged": rows("SELECT count(*) FROM delivery_attempts"),
    }


def median_p99(windows: list[dict], lo_s: float, hi_s: float) -> float | None:
    values = [w["p99_ms"] for w in windows if lo_s < w["t_s"] <= hi_s and w["answered"]]
    return round(statistics.median(values), 2) if values else None


def minute(samples: list[dict], lo_s: float, hi_s: float) -> dict:
    """Median RSS and fds over the samples in (lo_s, hi_s]: one sample is one moment's connections."""
    inside = [s for s in samples if lo_s < s["t_s"] <= hi_s] or samples[-1:]
    return {"t_s": inside[-1]["t_s"], "rss_kb": round(statistics.median(s["rss_kb"] for s in inside)),
            "fds": round(statistics.median(s["fds"] for s in inside))}


def within(end: float, base: float, limit: float = 0.10) -> bool:
    return base > 0 and abs(end - base) / base <= limit


def verdict(args, windows: list[dict], samples: list[dict], summary: dict, acked: set[str],
            guests: dict[str, tuple[int, int]], stats: dict, outbox: dict, drained: bool) -> dict:
    load_s = args.minutes * 60
    loaded = [s for s in samples if s["phase"] == "load"]
    at = args.baseline_minutes * 60
    base, end = minute(loaded, at - 30, at + 30), minute(loaded, loaded[-1]["t_s"] - 60, loaded[-1]["t_s"])
    span = args.steady_minutes * 60
    first = median_p99(windows, args.baseline_minutes * 60, args.baseline_minutes * 60 + span)
    last = median_p99(windows, load_s - span, load_s)
    missing = [e for e in acked if e not in guests]
    twice = sum(1 for creates, dup in guests.values() if creates > 1 or dup > 0)
    checks = {
        "rss": within(end["rss_kb"], base["rss_kb"]),
        "fds": within(end["fds"], base["fds"]),
        "p99_steady": first is not None and last is not None and last <= 1.5 * first,
        "drained": drained,
        "every_ack_delivered": not missing,
        "no_duplicates": twice == 0 and stats.get("duplicate_create_attempts", 0) == 0,
        "no_failed_rows": outbox["by_state"].get("failed", 0) == 0,
    }
    return {
        "checks": checks, "ok": all(checks.values()),
        "rss_kb": {"baseline": base["rss_kb"], "baseline_t_s": base["t_s"], "end": end["rss_kb"],
                   "end_t_s": end["t_s"], "after_drain": samples[-1]["rss_kb"], "peak_hwm": samples[-1]["hwm_kb"],
                   # VmRSS's parts at the end: heap (anon), mapped files, the WAL index (shmem)
                   "end_parts": {k: loaded[-1][f"rss_{k}_kb"] for k in ("anon", "file", "shmem")}},
        "fds": {"baseline": base["fds"], "end": end["fds"], "after_drain": samples[-1]["fds"]},
        "p99_ms": {"first_span": first, "last_span": last, "span_s": span,
                   "worst_window": max((w["p99_ms"] for w in windows if w["answered"]), default=None)},
        "backlog": {"max_waiting": max((waiting(s["counts"]) for s in loaded), default=0),
                    "at_load_end": waiting(loaded[-1]["counts"]),
                    "delivered_per_s_under_load": round(loaded[-1]["counts"].get("delivered", 0) / loaded[-1]["t_s"], 1)},
        "events_acknowledged": len(acked), "delivered_acknowledged": len(acked) - len(missing),
        "missing_examples": missing[:10], "sandbox_guests": len(guests), "guests_created_twice": twice,
        "sandbox_stats": stats, "outbox": outbox, "load": summary,
    }


# --- report -----------------------------------------------------------------------------------

def markdown(args, v: dict, per_source: dict[str, float], elapsed_s: float, drain_s: float) -> str:
    mib = lambda kb: f"{kb / 1024:.1f} MiB"
    pct = lambda end, base: f"{100 * (end - base) / base:+.1f} %" if base else "–"
    ok = lambda name: "ok" if v["checks"][name] else "**FAILED**"
    s, load, p99 = v["sandbox_stats"], v["load"], v["p99_ms"]
    faults = ", ".join(f"{k} {n}" for k, n in sorted(s.get("faults", {}).items()) if k != "latency")
    mix = ", ".join(f"{name} {rate:.0f} req/s" for name, rate in per_source.items())
    return "\n".join([
        f"## Soak: {args.minutes:g} minutes at {args.rate:g} events/s", "",
        f"`bench/soak.py --minutes {args.minutes:g} --rate {args.rate:g}` ({time.strftime('%Y-%m-%d', time.gmtime())}, "
        f"{os.cpu_count()} cores, {elapsed_s / 60:.0f} min in all). Mixed sources ({mix}; Salesforce "
        f"{args.salesforce_batch} notifications per message), open loop; bridge: synchronous=FULL, signature auth, "
        f"{args.workers} HTTP workers, delivery concurrency {args.concurrency}, no create budget; sandbox: "
        f"{args.latency_ms} ms per call, error rate {args.error_rate}, timeouts {args.timeout_rate}, "
        f"dropped answers after create {args.drop_after_create_rate}.", "",
        "| figure | value | check |", "|---|---:|---|",
        f"| load held | {load['rate_held']:.0f} req/s of {load['target_rate']:.0f} target ({load['sent']} sent, "
        f"{load['skipped']} skipped) | |",
        f"| ingest answers | {load['ok']} 2xx, {load['non_2xx']} non-2xx{' ' + str(load['statuses']) if load['statuses'] else ''}, "
        f"{load['errors']} errors | |",
        f"| ingest latency, whole run | p50 {load['p50_ms']} ms, p99 {load['p99_ms']} ms, max {load['max_ms']} ms | |",
        f"| p99 per 10 s window, median | {p99['first_span']} ms after warm-up → {p99['last_span']} ms at the end "
        f"({p99['span_s'] / 60:g} min spans; worst window {p99['worst_window']} ms) | {ok('p99_steady')} (≤ 1.5×) |",
        f"| bridge RSS (median of a minute's samples) | {mib(v['rss_kb']['baseline'])} around "
        f"{args.baseline_minutes:g} min → {mib(v['rss_kb']['end'])} in the last minute ({pct(v['rss_kb']['end'], v['rss_kb']['baseline'])}); peak "
        f"{mib(v['rss_kb']['peak_hwm'])} | {ok('rss')} (±10 %) |",
        f"| bridge open fds | {v['fds']['baseline']} → {v['fds']['end']} ({pct(v['fds']['end'], v['fds']['baseline'])}) "
        f"| {ok('fds')} (±10 %) |",
        f"| delivery under load | {v['backlog']['delivered_per_s_under_load']} guests/s; backlog (queued + "
        f"retrying + in flight) at most {v['backlog']['max_waiting']}, {v['backlog']['at_load_end']} when the load "
        "stopped | |",
        f"| events acknowledged | {v['events_acknowledged']} | |",
        f"| delivered (acknowledged emails that are sandbox guests) | {v['delivered_acknowledged']} "
        f"(backlog drained {drain_s:.0f} s after the load) | {ok('every_ack_delivered')} |",
        f"| duplicates (guests created twice, duplicate create attempts) | {v['guests_created_twice']}, "
        f"{s.get('duplicate_create_attempts', 0)} | {ok('no_duplicates')} |",
        f"| sandbox | {s.get('creates', 0)} creates, {s.get('requests', {}).get('create_guest', 0)} create requests, "
        f"{s.get('requests', {}).get('find_guest', 0)} look-ups; faults: {faults} | |",
        f"| outbox | {v['outbox']['rows']} rows, {v['outbox']['by_state']}, "
        f"{v['outbox']['attempted_more_than_once']} attempted more than once | {ok('no_failed_rows')} |",
        "", "![RSS, fds and p99 ingest latency over the soak](soak.png)", ""])


def plot(results: Path) -> bool:
    python = VENV / "bin" / "python"
    version = MATPLOTLIB.split("==")[1]
    probe = [python, "-c", f"import matplotlib, sys; sys.exit(matplotlib.__version__ != {version!r})"]
    if not python.exists() or subprocess.run(probe, capture_output=True).returncode != 0:
        log(f"installing {MATPLOTLIB} into {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", MATPLOTLIB], check=True)
    run = subprocess.run([python, BENCH / "soak_plot.py", results], capture_output=True, text=True)
    if run.returncode != 0:
        log(f"plot failed: {run.stderr.strip()}")
    return run.returncode == 0


# --- main -------------------------------------------------------------------------------------

def main() -> int:
    args = parse_args()
    started = time.monotonic()
    target = Path(os.environ.setdefault("CARGO_TARGET_DIR", "/work/scratch/bench-target"))
    bridge_bin, load_bin = build(target, args.skip_build)
    results = args.results or Path(f"/work/scratch/soak-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    results.mkdir(parents=True, exist_ok=True)
    per_source, req_rate = request_rate(args)
    count = round(req_rate * args.minutes * 60)
    log(f"results in {results}; {args.rate:g} events/s = {req_rate:.1f} req/s "
        f"({', '.join(f'{n} {r:.1f}' for n, r in per_source.items())}) for {args.minutes:g} min")
    try:
        faults = {"latency_ms": args.latency_ms, "error_rate": args.error_rate, "timeout_rate": args.timeout_rate,
                  "hang_ms": 2000, "drop_after_create_rate": args.drop_after_create_rate}
        port = free_port()
        sandbox = Process([bridge_bin, "sandbox", "--addr", f"127.0.0.1:{port}", "--config",
                           compact({"faults": faults, "seed": 18})], results / "sandbox.log",
                          {**os.environ, "RUST_LOG": "warn"})
        sandbox_url = f"http://127.0.0.1:{port}"
        wait_200(f"{sandbox_url}/_sandbox/stats", time.monotonic_ns(), sandbox)
        db, port = results / "soak.sqlite", free_port()
        harness.remove_db(db)
        bridge = Process([bridge_bin, "serve"], results / "bridge.log", harness.bridge_env(
            db, port, args.workers, "warn", delivery__enabled="true", delivery__concurrency=str(args.concurrency),
            delivery__max_creates_per_hour="0", delivery__retry_cap_ms="60000",
            tallyfy__base_url=sandbox_url, tallyfy__org_id="demo-org", tallyfy__token="sandbox-token",
            sources__pipedrive__username=harness.PIPEDRIVE["user"],
            sources__pipedrive__password=harness.PIPEDRIVE["password"],
            sources__salesforce__organization_id=harness.SALESFORCE["org"],
            sources__salesforce__endpoint_token=harness.SALESFORCE["token"]))
        base = f"http://127.0.0.1:{port}"
        wait_200(f"{base}/health/ready", time.monotonic_ns(), bridge)
        log(f"bridge pid {bridge.pid} on {base}; sandbox pid {sandbox.pid} on {sandbox_url}")

        load = Process([load_bin, base, f"{req_rate:.3f}", f"{args.minutes * 60:g}", results / "windows.jsonl",
                        results / "acked.txt", str(WINDOW_SECS)], results / "soakload.out", stdin=subprocess.PIPE)
        feeder = threading.Thread(target=feed, args=(load.popen.stdin, per_source, count, args.salesforce_batch),
                                  daemon=True)
        feeder.start()
        load_started, samples = time.monotonic(), []
        status_url = f"{base}/status"
        with open(results / "samples.jsonl", "w") as out:
            def take(phase: str) -> dict:
                s = sample(bridge, sandbox, status_url, time.monotonic() - load_started, phase)
                samples.append(s)
                out.write(json.dumps(s) + "\n")
                out.flush()
                return s

            tick = 1
            while load.alive():
                time.sleep(max(0.0, load_started + tick * WINDOW_SECS - time.monotonic()))
                tick += 1
                if not load.alive():
                    break
                # soakload waits for the last answers after its last send: that tail is no longer load.
                s = take("load" if time.monotonic() - load_started <= args.minutes * 60 + 1 else "drain")
                if tick % 6 == 1:  # a line a minute
                    log(f"t={s['t_s']:.0f}s rss {s['rss_kb'] // 1024} MiB fds {s['fds']} waiting "
                        f"{waiting(s['counts'])} delivered {s['counts'].get('delivered')}")
            if load.wait() != 0:
                log(f"soakload failed; see {load.log_path}")
                return 1
            load_done = time.monotonic()
            log("load stopped; waiting for the backlog to drain")
            drained = False
            while time.monotonic() - load_done < args.drain_timeout_secs:
                s = take("drain")
                if "error" not in s["counts"] and waiting(s["counts"]) == 0:
                    drained = True
                    break
                time.sleep(2)
            drain_s = time.monotonic() - load_done
        log(f"{'drained' if drained else 'NOT drained'} after {drain_s:.0f} s; checking")
        summary = json.loads((results / "soakload.out").read_text().strip().splitlines()[-1])
        windows = [json.loads(line) for line in (results / "windows.jsonl").read_text().splitlines()]
        acked = {line for line in (results / "acked.txt").read_text().splitlines() if line}
        guests, stats = sandbox_guests(sandbox_url), get_json(f"{sandbox_url}/_sandbox/stats")
        outbox = deliveries(db)
        v = verdict(args, windows, samples, summary, acked, guests, stats, outbox, drained)
        bridge.stop()
        sandbox.stop()
    finally:
        Process.stop_all()
    elapsed = time.monotonic() - started
    report = {"args": {k: (str(x) if isinstance(x, Path) else x) for k, x in vars(args).items()},
              "per_source_req_s": per_source, "drain_s": drain_s, **v}
    (results / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    (results / "soak.md").write_text(markdown(args, v, per_source, elapsed, drain_s))
    harness.remove_db(db)
    if not args.no_plot and plot(results):
        log(f"plot: {results / 'soak.png'}")
    for name, passed in v["checks"].items():
        log(f"{'ok    ' if passed else 'FAILED'} {name}")
    log(f"RSS {v['rss_kb']['baseline']} -> {v['rss_kb']['end']} kB; fds {v['fds']['baseline']} -> {v['fds']['end']}; "
        f"p99 {v['p99_ms']['first_span']} -> {v['p99_ms']['last_span']} ms; acknowledged {v['events_acknowledged']}, "
        f"delivered {v['delivered_acknowledged']}, created twice {v['guests_created_twice']}; "
        f"load held {summary['rate_held']} of {summary['target_rate']} req/s")
    log(f"results: {results} (soak.md, soak.json, soak.png)")
    return 0 if v["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
