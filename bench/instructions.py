#!/usr/bin/env python3
"""Instructions per accepted event and per delivered guest, counted by callgrind (issue 18).

    bench/instructions.py                  # hello, ingest and delivery; about 10 minutes
    bench/instructions.py ingest --events 1000
    bench/instructions.py --skip-build delivery --concurrency 4 32

Wall time on this shared 2-core machine moves by tens of per cent between runs; instructions do
not. Each server runs under `valgrind --tool=callgrind` twice, with N and 3N units of work
(requests, events or guests), and the figure is (Ir(3N) - Ir(N)) / 2N: start-up, migrations and
shutdown cancel out. Parts:

hello     bench/hello (actix-web, one route), GET /hello over --connections keep-alive
          connections: the HTTP ceiling's cost per request, the baseline of the ingest ratio.
ingest    `tallyfy-bridge serve` (fresh SQLite file, synchronous=FULL, signature auth, log level
          warn, delivery off, 2 HTTP workers), POST /webhooks/contacts of distinct pre-signed
          canonical events over --connections connections; every answer must be 202.
delivery  the bridge with delivery on against a native `tallyfy-bridge sandbox` (no latency),
          draining a seeded backlog (bench/sql/seed.sql.in via examples/claim_bench) at each
          --concurrency; every sandbox must end with one create per email.

Valgrind runs a process's threads one at a time, so group commits and claims batch differently
than natively: compare these counts with each other (before/after a change), not with wall time.
Writes instructions.json, instructions.md and each run's callgrind profile (callgrind_annotate's
top functions in *.top.txt) into the results directory (default /work/scratch/instr-<UTC time>).
Builds like bench/bench.py, into $CARGO_TARGET_DIR (default /work/scratch/bench-target).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import bench as harness
from bench import ROOT, Process, bridge_env, free_port, http_status

PARTS = ["hello", "ingest", "delivery"]


def log(message: str) -> None:
    print(f"[instr {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def callgrind(out: Path, *args) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--quiet", *map(str, args)]


def total_ir(out: Path) -> int:
    """The run's instruction total, over every thread (the `totals:` line callgrind writes)."""
    for path in [out, *sorted(out.parent.glob(f"{out.name}-*"))]:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith(("totals:", "summary:")):
                    return int(line.split()[1])
    raise harness.BenchFailed(f"no instruction total in {out}")


def top_functions(out: Path, lines: int = 40) -> None:
    run = subprocess.run(["callgrind_annotate", "--inclusive=no", str(out)], capture_output=True, text=True)
    out.with_suffix(".top.txt").write_text("\n".join(run.stdout.splitlines()[: lines + 20]))


def wait_ready(url: str, process: Process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while http_status(url) != 200:
        if not process.alive():
            raise harness.BenchFailed(f"{url}: the server exited; see {process.log_path}")
        if time.monotonic() > deadline:
            raise harness.BenchFailed(f"{url} not ready after {timeout} s")
        time.sleep(0.05)


def send_all(port: int, requests: list[tuple[str, str, dict, str | None]], connections: int, ok: int) -> None:
    """Sends `requests` (method, path, headers, body) over `connections` keep-alive connections,
    each request in one write as wrk does; fails unless every answer has status `ok`."""
    chunks = [requests[i::connections] for i in range(connections)]
    bad: list[str] = []

    def worker(chunk):
        with socket.create_connection(("127.0.0.1", port), timeout=600) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader = conn.makefile("rb")
            for method, path, headers, body in chunk:
                data = (body or "").encode()
                head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
                conn.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
                             f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
                status = int(reader.readline().split()[1])
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                reader.read(length)
                if status != ok:
                    bad.append(f"{method} {path}: {status}")

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks if c]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if bad:
        raise harness.BenchFailed(f"{len(bad)} unexpected answers, e.g. {bad[0]}")


def wait_delivered(db: Path, expected: int, bridge: Process, timeout: float = 1800) -> None:
    """Waits until `expected` rows are delivered, reading the database file from this process:
    polling `/status` would count the bridge's snapshot queries as delivery work."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not bridge.alive():
            raise harness.BenchFailed(f"the bridge exited; see {bridge.log_path}")
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
                counts = dict(conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
        except sqlite3.Error:
            counts = {}  # not migrated yet, or busy
        if counts.get("failed"):
            raise harness.BenchFailed(f"{counts['failed']} rows failed")
        if counts.get("delivered", 0) >= expected:
            return
        time.sleep(0.5)
    raise harness.BenchFailed(f"{expected} rows not delivered after {timeout} s")


def canonical(count: int, tag: str) -> list[tuple[str, str, dict, str | None]]:
    ts = str(int(time.time()))
    requests = []
    for n in range(count):
        event_id, body = harness.canonical_body(n, tag)
        requests.append(("POST", "/webhooks/contacts", {
            "Content-Type": "application/json", "webhook-id": event_id, "webhook-timestamp": ts,
            "webhook-signature": harness.sign(event_id, ts, body)}, body))
    return requests


class Run:
    def __init__(self, results: Path, bins: harness.Binaries, args: argparse.Namespace):
        self.results, self.bin, self.args = results, bins, args
        self.settings = dict(pair.split("=", 1) for pair in args.set)

    def measure(self, name: str, once) -> dict:
        """`once(n, out)` does n units of work under callgrind writing `out`; the per-unit figure."""
        n = self.args.events
        irs = {}
        for units in (n, 3 * n):
            out = self.results / f"{name}-{units}.callgrind"
            started = time.monotonic()
            once(units, out)
            irs[units] = total_ir(out)
            log(f"{name:<16} {units:>6} units: {irs[units]:>15,} Ir ({time.monotonic() - started:.0f} s)")
        top_functions(self.results / f"{name}-{3 * n}.callgrind")
        per_unit = (irs[3 * n] - irs[n]) / (2 * n)
        log(f"{name:<16} {per_unit:>12,.0f} Ir per unit")
        return {"name": name, "units": [n, 3 * n], "ir": [irs[n], irs[3 * n]], "per_unit": round(per_unit)}

    def hello(self) -> dict:
        def once(units: int, out: Path) -> None:
            port = free_port()
            server = Process(callgrind(out, self.bin.hello, port, 2), self.results / "hello.log", append=True)
            wait_ready(f"http://127.0.0.1:{port}/hello", server)
            send_all(port, [("GET", "/hello", {}, None)] * units, self.args.connections, 200)
            server.stop()
        return self.measure("hello", once)

    def ingest(self) -> dict:
        def once(units: int, out: Path) -> None:
            db = self.results / f"ingest-{units}.sqlite"
            harness.remove_db(db)
            port = free_port()
            bridge = Process(callgrind(out, self.bin.bridge, "serve"), self.results / "ingest.log",
                             bridge_env(db, port, 2, "warn", **self.settings), append=True)
            wait_ready(f"http://127.0.0.1:{port}/health/ready", bridge)
            send_all(port, canonical(units, f"i{units}"), self.args.connections, 202)
            if bridge.stop() != 0:
                raise harness.BenchFailed(f"the bridge did not stop cleanly; see {bridge.log_path}")
            rows = int(harness.query(db, "SELECT count(*) FROM outbox"))
            if rows != units:
                raise harness.BenchFailed(f"{rows} outbox rows for {units} accepted events")
            harness.remove_db(db)
        return self.measure("ingest", once)

    def delivery(self, concurrency: int) -> dict:
        def once(units: int, out: Path) -> None:
            db = self.results / f"delivery-{units}.sqlite"
            harness.remove_db(db)
            seed = subprocess.run([self.bin.claim_bench, "seed", db, str(units), f"d{units}", "1", "1"],
                                  capture_output=True, text=True, cwd=ROOT)
            if seed.returncode != 0:
                raise harness.BenchFailed(f"seeding failed: {seed.stderr.strip()}")
            sandbox_port = free_port()
            sandbox = Process([self.bin.bridge, "sandbox", "--addr", f"127.0.0.1:{sandbox_port}"],
                              self.results / "sandbox.log", {**os.environ, "RUST_LOG": "warn"}, append=True)
            sandbox_url = f"http://127.0.0.1:{sandbox_port}"
            wait_ready(f"{sandbox_url}/_sandbox/stats", sandbox)
            port = free_port()
            bridge = Process(callgrind(out, self.bin.bridge, "serve"), self.results / "delivery.log",
                             bridge_env(db, port, 2, "warn", **self.settings, delivery__enabled="true",
                                        delivery__concurrency=str(concurrency), delivery__max_creates_per_hour="0",
                                        tallyfy__base_url=sandbox_url,
                                        tallyfy__org_id="demo-org", tallyfy__token="sandbox-token"), append=True)
            wait_delivered(db, units, bridge)
            if bridge.stop() != 0:
                raise harness.BenchFailed(f"the bridge did not stop cleanly; see {bridge.log_path}")
            harness.verify_sandbox(sandbox_url, units)
            sandbox.stop()
            harness.remove_db(db)
        return self.measure(f"delivery-c{concurrency}", once)


def report(results: dict, commit: str) -> str:
    rows = {r["name"]: r for r in results["runs"]}
    lines = [f"Instructions per unit of work, `bench/instructions.py` at {commit} "
             f"({results['date']}; N = {results['events']}, {results['connections']} connections):", "",
             "| run | Ir per unit | ratio to hello |", "|---|---:|---:|"]
    hello = rows.get("hello", {}).get("per_unit")
    for name, r in rows.items():
        ratio = f"{r['per_unit'] / hello:.1f}×" if hello and name.startswith("ingest") else ""
        lines.append(f"| {name} | {r['per_unit']:,} | {ratio} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"any of {' '.join(PARTS)} (default: all)")
    parser.add_argument("--events", type=int, default=1000, help="N: units of work in the first run (1000)")
    parser.add_argument("--connections", type=int, default=32, help="client connections for hello/ingest (32)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 32], help="delivery.concurrency (4 32)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a bridge setting for every run, as in BRIDGE__KEY (e.g. database__max_connections=1)")
    parser.add_argument("--skip-build", action="store_true", help="use the binaries already built")
    parser.add_argument("--out", type=Path, help="results directory")
    args = parser.parse_args()
    parts = args.parts or PARTS
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts: {' '.join(sorted(unknown))}")
    target = Path(os.environ.get("CARGO_TARGET_DIR", "/work/scratch/bench-target"))
    os.environ["CARGO_TARGET_DIR"] = str(target)
    bins, _ = harness.build(target, args.skip_build, ["ingest"])
    results_dir = args.out or Path(f"/work/scratch/instr-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    results_dir.mkdir(parents=True, exist_ok=True)
    log(f"results in {results_dir}")
    run = Run(results_dir, bins, args)
    runs = []
    try:
        if "hello" in parts:
            runs.append(run.hello())
        if "ingest" in parts:
            runs.append(run.ingest())
        if "delivery" in parts:
            runs += [run.delivery(c) for c in args.concurrency]
    finally:
        Process.stop_all()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True, cwd=ROOT).stdout.strip()
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit + ("+" if dirty else ""),
               "events": args.events, "connections": args.connections, "runs": runs}
    (results_dir / "instructions.json").write_text(json.dumps(results, indent=2))
    markdown = report(results, results["commit"])
    (results_dir / "instructions.md").write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except harness.BenchFailed as failure:
        log(f"FAILED: {failure}")
        Process.stop_all()
        sys.exit(1)
