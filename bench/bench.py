#!/usr/bin/env python3
"""The bridge's benchmarks, each figure a ratio to a baseline measured in the same run.

    bench/bench.py                    # every part, from anywhere (it finds the repository root)
    bench/bench.py ingest delivery    # only some parts: ingest sources delivery scale startup xml
    bench/bench.py --quick            # one short round per scenario: checks the harness, not the
                                      # bridge (writes its BENCHMARKS.md into the results directory)

About 12-16 minutes with the defaults on a busy 2-core machine, build not included. Only ratios
are meaningful: the machine is shared and noisy, so every scenario runs in interleaved rounds (a
noisy neighbour slows all scenarios alike) against a baseline measured in the same run.

ingest    Durable ingest vs an HTTP ceiling (about 3 minutes).
    bench/hello (a standalone actix-web 4 binary, same features as the bridge, one route
    GET/POST /hello) and the bridge, both with 2 HTTP workers. The bridge gets a fresh SQLite file,
    synchronous=FULL, Standard Webhooks signature auth, log level warn, delivery disabled;
    start-to-ready is spawn to the first 200 on /health/ready. Per connection count (32, 256),
    3 interleaved rounds of 6 s each of: hello (GET /hello, hello.lua), live (GET /health/live on
    the bridge: its middleware, no database), ingest (POST /webhooks/contacts, ingest.lua, events
    pre-signed right before each round: distinct webhook-id and email per request), nometrics (the
    same against a second bridge with metrics.enabled=false: the cost of metrics). req/s = all
    requests / all time over the rounds; p50/p99 = median of the rounds; ratio = ingest req/s /
    hello req/s (per-round range shown). Then durability: outbox rows after the load and after
    SIGTERM against the 202s wrk saw; the bridge's peak RSS (VmHWM); each server's CPU per point.

sources   CRM webhooks vs canonical ingest, in events/s (about 2.5 minutes).
    One bridge as above with Pipedrive (HTTP Basic), HubSpot (signature v3) and Salesforce
    (organization id, endpoint token) configured; 32 connections, 3 interleaved rounds of 6 s of:
    canonical (POST /webhooks/contacts, the baseline), pipedrive (one `added.person` per
    request), hubspot10 and hubspot100 (JSON arrays of 10 / 100 `contact.creation`),
    salesforce100 (a SOAP outbound message of 100 Contacts), replayed by sources.lua. Requests
    are generated right before each point (signatures must be fresh), with a dedup key and email
    distinct per event across the run; per point: duration x 1.5 x the fastest req/s seen so far
    for the scenario (first round: a generous bound); a list that wraps is reported and its
    repeats left out of the durability check. events/s = req/s x events per request; ratio =
    events/s / canonical's. Durability per source: outbox rows >= events acknowledged; rows per
    group commit (rows per distinct received_at); bridge CPU per event; peak RSS.

delivery  Draining a backlog vs a raw reqwest loop (about 8-9 minutes).
    One backlog of 20,000 queued rows (seed.sql.in through the `outbox` table, by
    examples/claim_bench); each bridge run drains its own copy. Per added latency (0, 50 ms) and
    concurrency (4, 32): raw = bench/rawclient (reqwest, same headers and body shape, N in
    flight) posting the same number of creates to a fresh `tallyfy-bridge sandbox` with that
    latency, req/s by its own clock; bridge = a fresh sandbox and the bridge with delivery
    enabled, guests/s = events / (spawn -> /status shows nothing queued, retrying or in flight,
    polled every 100 ms). Each sandbox is then checked: creates = events, no guest created
    twice, no duplicate create attempt. ratio = bridge / raw. Points whose ideal rate
    (N / latency) is at most 1000/s are mostly waits: raw and bridge run side by side, each
    against its own sandbox; the others one after the other. Last, the cost of one
    synchronous=FULL WAL commit on this disk (200 one-row commits).

scale     /status, claim and admin list page latency at 1k, 100k and 1M outbox rows (about 1.5 minutes).
    One database per size, ~320 rows queued (spread over the history, all due), the rest
    delivered, so every size has the same due work. /status: one bridge per database, 3
    interleaved rounds of wrk with 1 connection, 3 s per size; ratio to 1k. Claim:
    examples/claim_bench calls the worker's own `claim_due` on the bundled SQLite inside
    BEGIN ... ROLLBACK, 50 times per round, size and claim limit (4, 32), 3 interleaved rounds;
    median/p90 over all calls; ratio to 1k. Admin list page: `claim_bench pages` calls the
    crate's `list_deliveries` (GET /deliveries, limit 50) 50 times per round, size and filter
    (none, state, source, email, none from a cursor half way down); median/p90; ratio to 1k.

startup   Start to ready (spawn -> first 200 on /health/ready, polled every ~5 ms), 5 times each on
          a fresh empty database (migrations included) and on the 1M-row database. Median.

retention Ingest while retention prunes ~1M old rows vs ingest alone (about 5 minutes + seeding).
    The scale part's biggest database (all but ~320 rows delivered, over ~11 days), each
    delivered row given one attempt log line, copied afresh per round. Per round, on that copy:
    "off" = a bridge with every retention age 0 (nothing pruned) under ingest (ingest.lua, 32
    connections); then "on" = a bridge on the same file with retention.delivered_secs = 1 and
    every_secs = 1, so its prune of every delivered row starts ~1 s after start, under the same
    ingest; then the prune is let finish. Ratio = on req/s / off req/s (per-round range). The
    prune's rows/s: rows deleted while ingest ran (delivered count before/after the round) over
    the round, and over its whole run (its INFO line: rows, elapsed_ms); the WAL file at its
    largest before a TRUNCATE checkpoint (every 100,000 rows and at the end) and after the last
    one (same line), and the database file before and after (free pages stay in it).

pacing    Draining a backlog within Tallyfy's hourly guest cap (about 3 minutes).
    Two bridges side by side, each with its own fresh sandbox whose `faults.hourly_cap` allows N
    creates per `cap_window_secs` W (a fixed window opened by its first create, 429
    RATE_LIMIT_EXCEEDED "hourly limit for Guest Invite" with Retry-After once spent): "unpaced"
    with `delivery.max_creates_per_hour` 0 (pacing learned from 429s only, the behaviour before
    the budget) and "paced" with the same N and W. Each gets the same backlog of signed canonical
    webhooks (posted right after start-up) and is timed from the first post until /status shows
    nothing waiting (both polled every 100 ms). Per bridge: POSTs and 429s the sandbox saw, rows
    failed, attempts consumed beyond one per delivered row, paced attempts logged, drain time vs
    the ideal rows / N x W. Each sandbox is checked: one create per email, none twice.

xml       Salesforce's XML parse (about 10 s): examples/salesforce_xml_bench times the parser on
          the worst bodies it builds at the 4 MiB body limit against a normal 100-notification
          message of the same size, 9 interleaved rounds; ratios of the medians.

Tools: installs wrk from Debian's packages if missing (needs root); needs python3 (stdlib only).
Builds the bridge, its two bench examples, bench/hello and bench/rawclient in release mode into
$CARGO_TARGET_DIR (default /work/scratch/bench-target). Writes BENCHMARKS.md at the repository
root with the figures of the parts that ran; raw outputs stay in the printed results directory.

Knobs (environment, defaults in brackets): BENCH_SKIP_BUILD=1 (use the binaries already built),
CARGO_TARGET_DIR, BENCH_ROUNDS (3), BENCH_THREADS (wrk threads, 2), BENCH_WORKERS (HTTP workers
per server, 2), BENCH_LOG_LEVEL (warn); ingest: BENCH_DURATION (per point, 6s), BENCH_CONNECTIONS
("32 256"), BENCH_EVENTS (events pre-signed per ingest point, 200000); sources:
BENCH_SOURCES_CONNECTIONS (32), BENCH_SOURCES_HEADROOM (1.5), BENCH_SOURCES_FIRST_RPS (canonical's
first-round bound, 30000); delivery: BENCH_DELIVERY_EVENTS (20000), BENCH_DELIVERY_LATENCIES (ms,
"0 50"), BENCH_DELIVERY_CONCURRENCY ("4 32"), BENCH_DELIVERY_SIDE_BY_SIDE_MAX_RPS (1000; 0 =
never); scale: BENCH_SCALE_SIZES ("1000 100000 1000000"), BENCH_SCALE_DURATION (3s),
BENCH_CLAIM_REPS (50), BENCH_CLAIM_LIMITS ("4 32"); startup: BENCH_STARTUP_REPS (5); retention:
BENCH_RETENTION_CONNECTIONS (32), BENCH_RETENTION_BATCH_ROWS (the bridge's default if unset); xml:
BENCH_XML_ROUNDS (9); pacing: BENCH_PACING_ROWS (150), BENCH_PACING_CAP (N, 10),
BENCH_PACING_WINDOW_SECS (W, 10), BENCH_PACING_CONCURRENCY (4).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PARTS = ["ingest", "sources", "delivery", "scale", "startup", "retention", "xml", "pacing"]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MAX_BAD_FRACTION = 0.001
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Every scale size holds the same number of due rows (the claim's widest look-ahead window,
# 32 x 8 + 64 = 320), so claim timings compare outbox sizes, not amounts of due work.
DUE_ROWS = 320


class BenchFailed(Exception):
    """A check failed or a tool broke: the run stops, BENCHMARKS.md is left as it was."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- knobs ------------------------------------------------------------------------------------

def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def seconds(duration: str) -> float:
    """wrk's duration syntax: 6s, 2m, 1h (a bare number is seconds)."""
    unit = duration[-1]
    scale = {"s": 1, "m": 60, "h": 3600}.get(unit)
    return float(duration[:-1]) * scale if scale else float(duration)


@dataclass
class Knobs:
    quick: bool
    rounds: int = int(env("BENCH_ROUNDS", "3"))
    threads: int = int(env("BENCH_THREADS", "2"))
    workers: int = int(env("BENCH_WORKERS", "2"))
    log_level: str = env("BENCH_LOG_LEVEL", "warn")
    duration: str = env("BENCH_DURATION", "6s")
    connections: list[int] = field(default_factory=lambda: ints(env("BENCH_CONNECTIONS", "32 256")))
    events: int = int(env("BENCH_EVENTS", "200000"))
    sources_connections: int = int(env("BENCH_SOURCES_CONNECTIONS", "32"))
    sources_headroom: float = float(env("BENCH_SOURCES_HEADROOM", "1.5"))
    sources_first_rps: float = float(env("BENCH_SOURCES_FIRST_RPS", "30000"))
    delivery_events: int = int(env("BENCH_DELIVERY_EVENTS", "20000"))
    delivery_latencies: list[int] = field(default_factory=lambda: ints(env("BENCH_DELIVERY_LATENCIES", "0 50")))
    delivery_concurrency: list[int] = field(default_factory=lambda: ints(env("BENCH_DELIVERY_CONCURRENCY", "4 32")))
    side_by_side_max_rps: int = int(env("BENCH_DELIVERY_SIDE_BY_SIDE_MAX_RPS", "1000"))
    scale_sizes: list[int] = field(default_factory=lambda: ints(env("BENCH_SCALE_SIZES", "1000 100000 1000000")))
    scale_duration: str = env("BENCH_SCALE_DURATION", "3s")
    claim_reps: int = int(env("BENCH_CLAIM_REPS", "50"))
    claim_limits: list[int] = field(default_factory=lambda: ints(env("BENCH_CLAIM_LIMITS", "4 32")))
    startup_reps: int = int(env("BENCH_STARTUP_REPS", "5"))
    retention_connections: int = int(env("BENCH_RETENTION_CONNECTIONS", "32"))
    retention_batch_rows: str = env("BENCH_RETENTION_BATCH_ROWS", "")
    xml_rounds: int = int(env("BENCH_XML_ROUNDS", "9"))
    pacing_rows: int = int(env("BENCH_PACING_ROWS", "150"))
    pacing_cap: int = int(env("BENCH_PACING_CAP", "10"))
    pacing_window_secs: int = int(env("BENCH_PACING_WINDOW_SECS", "10"))
    pacing_concurrency: int = int(env("BENCH_PACING_CONCURRENCY", "4"))

    def __post_init__(self) -> None:
        if self.quick:  # one short round of every scenario, small databases
            self.rounds, self.duration, self.connections, self.events = 1, "2s", [32], 60000
            self.delivery_events, self.scale_sizes, self.scale_duration = 400, [1000, 100000], "1s"
            self.claim_reps, self.startup_reps, self.xml_rounds = 10, 1, 1
            self.pacing_rows, self.pacing_window_secs = 30, 3


def ints(text: str) -> list[int]:
    return [int(word) for word in text.split()]


# --- tools and binaries -----------------------------------------------------------------------

@dataclass
class Binaries:
    bridge: Path
    hello: Path
    rawclient: Path
    claim_bench: Path
    xml_bench: Path


def ensure_tools() -> None:
    if shutil.which("wrk"):
        return
    log("installing wrk")
    install = ["apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, check=True)
        subprocess.run(install, capture_output=True, check=True)


# Parts that need only the bridge binary (the others need every binary).
BRIDGE_ONLY = {"pacing"}


def build(target: Path, skip: bool, parts: list[str]) -> tuple[Binaries, float]:
    release = target / "release"
    binaries = Binaries(release / "tallyfy-bridge", release / "bench-hello", release / "bench-rawclient",
                        release / "examples" / "claim_bench", release / "examples" / "salesforce_xml_bench")
    started = time.monotonic()
    bridge_only = set(parts) <= BRIDGE_ONLY
    if not skip:
        log(f"building release binaries into {target}")
        cargo = ["cargo", "build", "--release", "--quiet"]
        examples = [] if bridge_only else ["--example", "salesforce_xml_bench", "--example", "claim_bench"]
        subprocess.run([*cargo, "--bin", "tallyfy-bridge", *examples], cwd=ROOT, check=True)
        for baseline in () if bridge_only else ("hello", "rawclient"):
            subprocess.run([*cargo, "--manifest-path", str(BENCH / baseline / "Cargo.toml")], cwd=ROOT, check=True)
    needed = [binaries.bridge] if bridge_only else vars(binaries).values()
    missing = [str(p) for p in needed if not os.access(p, os.X_OK)]
    if missing:
        raise BenchFailed(f"missing binaries: {', '.join(missing)}")
    return binaries, time.monotonic() - started


# --- processes --------------------------------------------------------------------------------

class Process:
    """A process this run started; every one still running is stopped when the run ends."""

    running: list[Process] = []

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None, append: bool = False,
                 stdin: int | None = None):
        self.log_path = log_path
        with open(log_path, "a" if append else "w") as out:
            self.popen = subprocess.Popen([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT,
                                          env=env, cwd=ROOT, stdin=stdin)
        self.pid = self.popen.pid
        Process.running.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_ticks(self) -> int:
        """utime + stime, in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12])

    def peak_rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> int:
        """SIGTERM, then the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(60)
        finally:
            if self in Process.running:
                Process.running.remove(self)

    @classmethod
    def stop_all(cls) -> None:
        for process in list(cls.running):
            try:
                process.stop()
            except subprocess.TimeoutExpired:
                process.popen.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def wait_200(url: str, since_ns: int, process: Process) -> int:
    """Waits until URL answers 200; the milliseconds since `since_ns` (a monotonic_ns value)."""
    deadline = time.monotonic() + 30
    while http_status(url) != 200:
        if not process.alive():
            raise BenchFailed(f"the server for {url} exited; see {process.log_path}")
        if time.monotonic() > deadline:
            raise BenchFailed(f"{url} not ready after 30 s")
        time.sleep(0.005)
    return round((time.monotonic_ns() - since_ns) / 1e6)


def bridge_env(db: Path, port: int, workers: int, log_level: str, **settings: str) -> dict[str, str]:
    """The bridge's environment for every run: signature auth (config needs a secret), synchronous=FULL,
    delivery off; `settings` override, `delivery__enabled="true"` as BRIDGE__DELIVERY__ENABLED."""
    environment = {key: value for key, value in os.environ.items() if key != "RUST_LOG"}
    environment.update({
        "BRIDGE__HTTP__WORKERS": str(workers),
        "BRIDGE__HTTP__PORT": str(port),
        "BRIDGE__DATABASE__PATH": str(db),
        "BRIDGE__DATABASE__SYNCHRONOUS": "full",
        "BRIDGE__INGEST__AUTH__MODE": "signature",
        "BRIDGE__INGEST__AUTH__SIGNING_SECRET": SECRET,
        "BRIDGE__LOG__LEVEL": log_level,
        "BRIDGE__DELIVERY__ENABLED": "false",
    })
    environment.update({f"BRIDGE__{key.upper()}": value for key, value in settings.items()})
    return environment


def db_files(path: Path) -> list[Path]:
    """The database, its WAL and shared memory, and the bridge's marker beside it."""
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm"), path.with_name(f".{path.name}.id")]


def remove_db(path: Path) -> None:
    for p in db_files(path):
        p.unlink(missing_ok=True)


def copy_db(source: Path, target: Path) -> None:
    """A file copy of a closed database (main file and, if any, its WAL)."""
    remove_db(target)
    shutil.copy(source, target)
    if Path(f"{source}-wal").exists():
        shutil.copy(f"{source}-wal", f"{target}-wal")


def query(db: Path, sql: str):
    """One value from the bridge's database (read-only, beside the running bridge)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchone()[0]


# --- the run's shared state -------------------------------------------------------------------

@dataclass
class Point:
    """One scenario at one connection count, summed over the rounds."""
    requests: int = 0
    duration_us: int = 0
    ticks: int = 0
    bad: int = 0
    expected: int = 0
    wrapped: int = 0
    p50s: list[int] = field(default_factory=list)
    p99s: list[int] = field(default_factory=list)
    round_rps: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def cpu(self) -> float:
        """Cores the server used while wrk ran."""
        return self.ticks / CLK_TCK / (self.duration_us / 1e6)


class Bench:
    def __init__(self, knobs: Knobs, binaries: Binaries, work: Path):
        self.k, self.bin, self.work = knobs, binaries, work
        self.results = work / "results"
        self.results.mkdir()
        self.points: dict[tuple[str, int], Point] = defaultdict(Point)
        self.big_size = knobs.scale_sizes[-1]
        self.big_db = work / f"scale-{self.big_size}.sqlite"

    def bridge_env(self, db: Path, port: int, **settings: str) -> dict[str, str]:
        return bridge_env(db, port, self.k.workers, self.k.log_level, **settings)

    def start_bridge(self, db: Path, log_name: str, append: bool = False, **settings: str) -> tuple[Process, str, int]:
        """Spawns `tallyfy-bridge serve`; returns it, its base URL and its start-to-ready ms."""
        port = free_port()
        started = time.monotonic_ns()
        bridge = Process([self.bin.bridge, "serve"], self.results / log_name,
                         self.bridge_env(db, port, **settings), append)
        base = f"http://127.0.0.1:{port}"
        return bridge, base, wait_200(f"{base}/health/ready", started, bridge)

    def stop_cleanly(self, process: Process) -> None:
        code = process.stop()
        if code != 0:
            raise BenchFailed(f"a bridge did not stop cleanly (exit {code}); see {process.log_path}")

    def seed(self, db: Path, count: int, prefix: str, queued_every: int, spacing_ms: int) -> float:
        """A migrated database of `count` rows, seeded through `outbox`; the seconds it took."""
        started = time.monotonic()
        remove_db(db)
        run = subprocess.run([self.bin.claim_bench, "seed", db, str(count), prefix, str(queued_every),
                              str(spacing_ms)], capture_output=True, text=True, cwd=ROOT)
        if run.returncode != 0:
            raise BenchFailed(f"seeding {db} failed: {run.stderr.strip()}")
        took = time.monotonic() - started
        log(f"seeded {count} rows into {db.name} in {took:.0f} s")
        return took

    def scale_db(self, size: int, db: Path) -> float:
        return self.seed(db, size, f"s{size}", max(size // DUE_ROWS, 1), 1000)

    def ensure_big_db(self) -> None:
        if not self.big_db.exists():
            self.scale_db(self.big_size, self.big_db)

    def run_point(self, name: str, conns: int, round_: int, server: Process, url: str, script: str,
                  *script_args: str, hint: str = "raise BENCH_EVENTS") -> dict[str, str]:
        """One wrk run of a scenario, added to its Point; fails the run on too many non-2xx."""
        out = self.results / f"{name}-c{conns}-r{round_}.txt"
        args = ["wrk", "-t", str(self.k.threads), "-c", str(conns), "-d", self.k.duration, "--latency",
                "-s", str(BENCH / script), url]
        if script_args:
            args += ["--", *script_args]
        before = server.cpu_ticks()
        line = wrk(args, out)
        ticks = server.cpu_ticks() - before
        requests, duration = int(line["requests"]), int(line["duration_us"])
        # Non-2xx among the unexpected statuses (a 200 "duplicate" from ingest would be 2xx).
        codes = [c.split(":") for c in line["other_codes"].split(",") if ":" in c]
        bad = sum(int(n) for code, n in codes if not code.startswith("2"))
        point = self.points[(name, conns)]
        point.requests += requests
        point.duration_us += duration
        point.ticks += ticks
        point.bad += bad
        point.expected += int(line["expected"])
        point.wrapped += int(line["wrapped"])
        point.p50s.append(int(line["p50_us"]))
        point.p99s.append(int(line["p99_us"]))
        point.round_rps.append(float(line["rps"]))
        log(f"{name:<6} c{conns:<3} r{round_}: {line['rps']:>8} req/s  p50 {line['p50_us']:>6} us  "
            f"p99 {line['p99_us']:>7} us  server CPU {ticks / CLK_TCK / (duration / 1e6):.2f} cores  "
            f"unexpected {line['other']} ({line['other_codes']})  non-2xx {bad}  socket errors r/w/t "
            f"{line['sock_read']}/{line['sock_write']}/{line['sock_timeout']}")
        if line["wrapped"] != "0":
            log(f"  WARNING: the event list wrapped (duplicates sent); {hint}")
        if not (requests > 0 and bad <= requests * MAX_BAD_FRACTION):
            raise BenchFailed(f"{name} c{conns} r{round_}: {bad} of {requests} responses were non-2xx "
                              f"(limit {MAX_BAD_FRACTION})")
        return line


def wrk(args: list[str], out: Path) -> dict[str, str]:
    """Runs wrk with one of our lua scripts; the fields of the `BENCH` line it prints."""
    run = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "BENCH_DIR": str(BENCH)})
    out.write_text(run.stdout + run.stderr)
    if run.returncode != 0:
        raise BenchFailed(f"wrk failed; see {out}")
    for line in run.stdout.splitlines():
        if line.startswith("BENCH "):
            return dict(word.split("=", 1) for word in line.split()[1:])
    raise BenchFailed(f"no BENCH line in {out}")


# --- request generators (wrk only replays them) -----------------------------------------------

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Linus"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Torvalds"]
ZONES = ["Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "Europe/Berlin"]
COMPANIES = ["Acme Widgets Ltd", "Globex Corporation", "Initech", "Umbrella Health", "Stark Industries"]


def compact(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def canonical_body(n: int, prefix: str) -> tuple[str, str]:
    """Canonical contact event n: its webhook-id and its body (the contacts seed.sql.in and
    bench/rawclient use; webhook-id and email distinct per n and prefix)."""
    first, last, company = FIRST[n % 10], LAST[(n // 10) % 10], COMPANIES[n % 5]
    event_id = f"msg_{prefix}_{n:07d}"
    return event_id, compact({
        "event_id": event_id,
        "email": f"{first.lower()}.{last.lower()}.{prefix}{n}@example-{n % 97}.com",
        "first_name": first,
        "last_name": last,
        "company_name": company,
        "phone_1": f"+1 415 555 {n % 10000:04d}",
        "timezone": ZONES[n % 5],
        "company_url": f"https://{company.split()[0].lower()}.example.com",
        "contact_url": f"https://crm.example.com/contacts/{prefix}-{n}",
        "opportunity_name": f"{company} renewal {2026 + n % 3}",
    })


def sign(event_id: str, ts: str, body: str) -> str:
    """Standard Webhooks v1: base64(HMAC-SHA256(base64decode(secret minus "whsec_"), "{id}.{ts}.{body}"))."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, f"{event_id}.{ts}.{body}".encode(), hashlib.sha256).digest()
    return f"v1,{base64.b64encode(mac).decode()}"


def gen_signed(out: Path, count: int, prefix: str) -> None:
    """Canonical contact events for ingest.lua, one per line: webhook-id, timestamp, signature, body.

    All timestamps are now (the bridge allows 5 minutes).
    """
    ts = str(int(time.time()))
    with open(out, "w", encoding="ascii") as f:
        for n in range(count):
            event_id, body = canonical_body(n, prefix)
            f.write(f"{event_id}\t{ts}\t{sign(event_id, ts, body)}\t{body}\n")


def canonical_requests(count: int, batch: int, tag: str, start: int):
    """Canonical events start .. start + count - 1 as (path, headers, body), like the CRM
    generators below, each signed with the time it is made (for senders that run for long)."""
    assert batch == 1, "a canonical webhook carries one event"
    for n in range(start, start + count):
        event_id, body = canonical_body(n, tag)
        ts = str(int(time.time()))
        yield "/webhooks/contacts", ["Content-Type: application/json", f"webhook-id: {event_id}",
                                     f"webhook-timestamp: {ts}", f"webhook-signature: {sign(event_id, ts, body)}"], body


PIPEDRIVE = {"user": "bench", "password": "bench-password-0123"}
HUBSPOT = {"secret": "bench-hubspot-secret", "url": "https://bridge.example.com/webhooks/hubspot"}
SALESFORCE = {"org": "00D5e000000AbCdEAF", "token": "bench-salesforce-endpoint-token-0123456789"}
SF_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
    '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
    f"<OrganizationId>{SALESFORCE['org']}</OrganizationId><ActionId>04k5e000000XyZaAAK</ActionId>"
    '<SessionId xsi:nil="true"/>'
    "<EnterpriseUrl>https://x.my.salesforce.com/services/Soap/c/62.0</EnterpriseUrl>"
    "<PartnerUrl>https://x.my.salesforce.com/services/Soap/u/62.0</PartnerUrl>"
)
SF_NOTIFICATION = (
    "<Notification><Id>04l{n:012d}AAA</Id>"
    '<sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
    "<sf:Id>003{n:012d}AAA</sf:Id><sf:Email>sf-{tag}-{n}@example.com</sf:Email>"
    "<sf:FirstName>Ada</sf:FirstName><sf:LastName>Lovelace</sf:LastName>"
    "<sf:Phone>+44 20 7946 0000</sf:Phone></sObject></Notification>"
)
SF_TAIL = "</notifications></soapenv:Body></soapenv:Envelope>"


def pipedrive_requests(count: int, batch: int, tag: str, start: int):
    assert batch == 1, "a Pipedrive webhook carries one event"
    basic = base64.b64encode(f"{PIPEDRIVE['user']}:{PIPEDRIVE['password']}".encode()).decode()
    headers = ["Content-Type: application/json", f"Authorization: Basic {basic}"]
    for n in range(start, start + count):
        yield "/webhooks/pipedrive", headers, compact({
            "v": 1, "event": "added.person", "retry": 0, "previous": None,
            "meta": {"v": 1, "action": "added", "object": "person", "id": n, "company_id": 7654321, "user_id": 1},
            "current": {
                "id": n, "name": "Grace Hopper", "first_name": "Grace", "last_name": "Hopper",
                "email": [{"label": "work", "value": f"pd-{tag}-{n}@example.com", "primary": True}],
                "phone": [{"value": "+1 415 555 0100", "primary": True}],
                "org_id": 42, "org_name": "Example Navy Labs",
            },
        })


def hubspot_requests(count: int, batch: int, tag: str, start: int):
    ts = str(int(time.time() * 1000))
    for first in range(start, start + count * batch, batch):
        body = compact([
            {"eventId": n, "subscriptionId": 1, "portalId": 62515, "appId": 1, "occurredAt": 1767225600000,
             "subscriptionType": "contact.creation", "attemptNumber": 0, "objectId": n, "changeFlag": "NEW",
             "changeSource": "CRM_UI"}
            for n in range(first, first + batch)
        ])
        mac = hmac.new(HUBSPOT["secret"].encode(), f"POST{HUBSPOT['url']}{body}{ts}".encode(), hashlib.sha256).digest()
        yield "/webhooks/hubspot", ["Content-Type: application/json", f"X-HubSpot-Request-Timestamp: {ts}",
                                    f"X-HubSpot-Signature-v3: {base64.b64encode(mac).decode()}"], body


def salesforce_requests(count: int, batch: int, tag: str, start: int):
    assert 1 <= batch <= 100, "an outbound message carries 1 to 100 notifications"
    for first in range(start, start + count * batch, batch):
        notes = "".join(SF_NOTIFICATION.format(n=n, tag=tag) for n in range(first, first + batch))
        yield f"/webhooks/salesforce/{SALESFORCE['token']}", ["Content-Type: text/xml; charset=utf-8"], \
            SF_HEAD + notes + SF_TAIL


def gen_sources(make, out: Path, count: int, batch: int, tag: str, start: int) -> None:
    """CRM requests for sources.lua, one per line: path, headers as "Name: value", the body last.

    Events are start .. start + count x batch - 1, so disjoint ranges never repeat a dedup key
    (Pipedrive person id, HubSpot portalId + objectId, Salesforce notification Id).
    """
    with open(out, "w", encoding="ascii") as f:
        for path, headers, body in make(count, batch, tag, start):
            f.write("\t".join([path, *headers, body]) + "\n")


@dataclass
class Scenario:
    label: str
    kind: str  # the webhook path and the outbox `source`
    batch: int  # events per request
    make: object = None  # request generator; None: canonical
    max_ratio: float = 0.0  # first-round bound: about twice the ratio to canonical measured so far


SOURCES = {
    "canonical": Scenario("canonical (`POST /webhooks/contacts`, Standard Webhooks signature)", "canonical", 1),
    "pipedrive": Scenario("Pipedrive (`POST /webhooks/pipedrive`, HTTP Basic)", "pipedrive", 1, pipedrive_requests, 2.5),
    "hubspot10": Scenario("HubSpot (`POST /webhooks/hubspot`, signature v3), 10 per request", "hubspot", 10,
                          hubspot_requests, 6),
    "hubspot100": Scenario("HubSpot, 100 per request", "hubspot", 100, hubspot_requests, 8),
    "salesforce100": Scenario("Salesforce (`POST /webhooks/salesforce`, SOAP), 100 per message", "salesforce", 100,
                              salesforce_requests, 8),
}
KINDS = ["canonical", "pipedrive", "hubspot", "salesforce"]


# --- part: ingest -----------------------------------------------------------------------------

def part_ingest(b: Bench) -> dict:
    k, r = b.k, {}
    port = free_port()
    started = time.monotonic_ns()
    hello = Process([b.bin.hello, str(port), str(k.workers)], b.results / "hello.log")
    wait_200(f"http://127.0.0.1:{port}/hello", started, hello)
    db = b.work / "bench.sqlite"
    bridge, base, r["ready_ms"] = b.start_bridge(db, "bridge.log")
    log(f"bridge ready in {r['ready_ms']} ms (pid {bridge.pid}); hello on {port}")
    # The same bridge with metrics.enabled=false, idle while the others run: the cost of metrics.
    db_off = b.work / "bench-nometrics.sqlite"
    bridge_off, base_off, _ = b.start_bridge(db_off, "bridge-nometrics.log", metrics__enabled="false")
    r["ratios"], r["metrics_ratios"] = defaultdict(list), defaultdict(list)
    for conns in k.connections:
        for round_ in range(1, k.rounds + 1):
            events = b.work / f"events-c{conns}-r{round_}.tsv"
            gen_signed(events, k.events, f"c{conns}r{round_}")
            events_off = b.work / f"events-off-c{conns}-r{round_}.tsv"
            gen_signed(events_off, k.events, f"off-c{conns}r{round_}")
            h = b.run_point("hello", conns, round_, hello, f"http://127.0.0.1:{port}/hello", "hello.lua")
            b.run_point("live", conns, round_, bridge, f"{base}/health/live", "hello.lua")
            with_metrics = lambda: b.run_point("ingest", conns, round_, bridge, f"{base}/webhooks/contacts",
                                               "ingest.lua", str(events), str(k.threads))
            without = lambda: b.run_point("nometrics", conns, round_, bridge_off,
                                          f"{base_off}/webhooks/contacts", "ingest.lua", str(events_off),
                                          str(k.threads))
            # Alternating which goes first, so neither always follows the same neighbour.
            if round_ % 2:
                i, o = with_metrics(), without()
            else:
                o, i = without(), with_metrics()
            events.unlink()
            events_off.unlink()
            r["ratios"][conns].append(f"{100 * float(i['rps']) / float(h['rps']):.1f}")
            r["metrics_ratios"][conns].append(f"{100 * float(i['rps']) / float(o['rps']):.1f}")
    b.stop_cleanly(bridge_off)
    remove_db(db_off)

    # Durability: every 202 is a row, after the load and after SIGTERM.
    r["peak_rss_kb"] = bridge.peak_rss_kb()
    time.sleep(0.5)  # let the writer commit what was in flight when wrk stopped
    r["accepted"] = sum(b.points[("ingest", c)].expected for c in k.connections)
    r["rows"] = query(db, "SELECT count(*) FROM outbox")
    log(f"outbox rows: {r['rows']}; 202 responses seen by wrk: {r['accepted']}; "
        f"bridge peak RSS {r['peak_rss_kb'] // 1024} MiB")
    if r["rows"] < r["accepted"]:
        raise BenchFailed(f"the outbox holds fewer rows ({r['rows']}) than 202s were sent ({r['accepted']})")
    # Rows of one group commit share received_at (one clock read per batch), so rows per distinct
    # received_at millisecond approximates the batch size (over-estimated if two commits share a ms).
    r["batch"] = {c: query(db, "SELECT printf('%.1f', 1.0 * count(*) / count(DISTINCT received_at)) "
                               f"FROM outbox WHERE event_id LIKE 'msg_c{c}r%'") for c in k.connections}
    b.stop_cleanly(bridge)
    r["rows_after_stop"] = query(db, "SELECT count(*) FROM outbox")
    hello.stop()
    remove_db(db)
    return r


# --- part: sources ----------------------------------------------------------------------------

def part_sources(b: Bench) -> dict:
    k, conns, r = b.k, b.k.sources_connections, {}
    log(f"part sources: {' '.join(SOURCES)} at {conns} connections")
    db = b.work / "sources.sqlite"
    bridge, base, ms = b.start_bridge(
        db, "bridge-sources.log",
        sources__pipedrive__username=PIPEDRIVE["user"], sources__pipedrive__password=PIPEDRIVE["password"],
        sources__hubspot__client_secret=HUBSPOT["secret"], sources__hubspot__webhook_url=HUBSPOT["url"],
        sources__hubspot__api_token="bench-token",
        sources__salesforce__organization_id=SALESFORCE["org"],
        sources__salesforce__endpoint_token=SALESFORCE["token"])
    log(f"bridge ready in {ms} ms (pid {bridge.pid})")

    def max_id() -> int:
        return query(db, "SELECT coalesce(max(id), 0) FROM outbox")

    fastest: dict[str, float] = {}
    r["planned"], r["ranges"], r["ratios"] = defaultdict(list), defaultdict(list), defaultdict(list)
    next_event = 1  # HubSpot objectIds, Pipedrive person ids, Salesforce notification Ids: never reused
    for round_ in range(1, k.rounds + 1):
        for name, s in SOURCES.items():
            # Requests to pre-generate: duration x headroom x the fastest req/s seen so far; first
            # round: a generous bound (canonical's knob; the others scale from canonical's rate).
            if name in fastest:
                bound = fastest[name] * k.sources_headroom
            elif s.make is None:
                bound = k.sources_first_rps
            else:
                bound = b.points[("canonical", conns)].round_rps[-1] * s.max_ratio / s.batch
            count = max(int(bound * seconds(k.duration)) + 1, 1000)
            r["planned"][name].append(count)
            requests = b.work / f"events-sources-{name}-r{round_}.tsv"
            if s.make is None:
                gen_signed(requests, count, f"src{round_}")
                script, path = "ingest.lua", "/webhooks/contacts"
            else:
                gen_sources(s.make, requests, count, s.batch, f"r{round_}", next_event)
                next_event += count * s.batch
                script, path = "sources.lua", f"/webhooks/{s.kind}"
            before = max_id()
            line = b.run_point(name, conns, round_, bridge, base + path, script, str(requests), str(k.threads),
                               hint="raise BENCH_SOURCES_HEADROOM")
            r["ranges"][name].append((before, max_id()))
            requests.unlink()
            fastest[name] = max(fastest.get(name, 0.0), float(line["rps"]))
        canonical = b.points[("canonical", conns)].round_rps[-1]
        for name, s in SOURCES.items():
            r["ratios"][name].append(f"{100 * b.points[(name, conns)].round_rps[-1] * s.batch / canonical:.1f}")
        log(f"sources r{round_} events/s ratio to canonical (%): "
            + " ".join(f"{name} {ratios[-1]}" for name, ratios in r["ratios"].items()))

    # Durability: every acknowledged event is a row. A 200 to a repeated request (the list
    # wrapped) stores nothing, so only first sends count; canonical counts its 202s (a repeat
    # gets 200 "duplicate").
    r["rss_kb"] = bridge.peak_rss_kb()
    time.sleep(0.5)  # let the writer commit what was in flight when wrk stopped
    r["acked"], r["rows"], r["commit_rows"] = dict.fromkeys(KINDS, 0), {}, {}
    for name, s in SOURCES.items():
        point = b.points[(name, conns)]
        acked = point.expected if s.make is None else max((point.expected - point.wrapped) * s.batch, 0)
        r["acked"][s.kind] += acked
        # Rows per group commit (see the ingest part), over the outbox ids this scenario added.
        where = " OR ".join(f"(id > {lo} AND id <= {hi})" for lo, hi in r["ranges"][name])
        r["commit_rows"][name] = query(db, "SELECT printf('%.1f', 1.0 * count(*) / "
                                           f"max(count(DISTINCT received_at), 1)) FROM outbox WHERE {where}")
    for kind in KINDS:
        r["rows"][kind] = query(db, f"SELECT count(*) FROM outbox WHERE source = '{kind}'")
        log(f"outbox rows from {kind}: {r['rows'][kind]}; events acknowledged: {r['acked'][kind]}")
        if r["rows"][kind] < r["acked"][kind]:
            raise BenchFailed(f"the outbox holds fewer {kind} rows ({r['rows'][kind]}) than events were "
                              f"acknowledged ({r['acked'][kind]})")
    r["acked_all"], r["rows_all"] = sum(r["acked"].values()), query(db, "SELECT count(*) FROM outbox")
    log(f"outbox rows: {r['rows_all']}; events acknowledged: {r['acked_all']}; "
        f"bridge peak RSS {r['rss_kb'] // 1024} MiB")
    if r["rows_all"] < r["acked_all"]:
        raise BenchFailed(f"the outbox holds fewer rows ({r['rows_all']}) than events were acknowledged")
    b.stop_cleanly(bridge)
    r["rows_after_stop"] = query(db, "SELECT count(*) FROM outbox")
    remove_db(db)
    return r


# --- part: delivery ---------------------------------------------------------------------------

@dataclass
class DeliveryPoint:
    latency: int
    conc: int
    side_by_side: bool
    raw_rps: float = 0.0
    drain_s: float = 0.0
    bridge_ticks: int = 0
    bridge_rss_kb: int = 0
    checks: str = ""

    @property
    def key(self) -> str:
        return f"{self.latency}ms-c{self.conc}"


def start_sandbox(b: Bench, name: str, latency: int) -> tuple[Process, str]:
    port = free_port()
    environment = {**os.environ, "RUST_LOG": "warn"}
    started = time.monotonic_ns()
    sandbox = Process([b.bin.bridge, "sandbox", "--addr", f"127.0.0.1:{port}", "--config",
                       compact({"faults": {"latency_ms": latency}})], b.results / f"sandbox-{name}.log", environment)
    url = f"http://127.0.0.1:{port}"
    wait_200(f"{url}/_sandbox/stats", started, sandbox)
    return sandbox, url


def verify_sandbox(url: str, expected: int) -> str:
    """Exactly `expected` guests created, none twice, no create for an email already a guest."""
    stats = get_json(f"{url}/_sandbox/stats")
    guests = get_json(f"{url}/_sandbox/guests")["data"]
    twice = sum(1 for g in guests if g.get("creates", 1) > 1 or g.get("duplicate_attempts", 0) > 0)
    requests, dup = stats.get("requests", {}), stats.get("duplicate_create_attempts", 0)
    ok = stats["creates"] == expected and len(guests) == expected and twice == 0 and dup == 0
    summary = (f"creates={stats['creates']} guests={len(guests)} create_requests={requests.get('create_guest', 0)} "
               f"find_requests={requests.get('find_guest', 0)} dup_attempts={dup} guests_twice={twice} ok={int(ok)}")
    if not ok:
        raise BenchFailed(f"the sandbox at {url} did not get exactly one create per email: {summary}")
    return summary


def wait_drained(status_url: str, started_ns: int, expected: int, timeout_s: float = 900) -> float:
    """Seconds from `started_ns` until /status shows nothing waiting and every row finished (so a
    bridge still starting is not taken for a drained one); polled every 100 ms."""
    deadline, counts = time.monotonic() + timeout_s, {}
    while time.monotonic() < deadline:
        try:
            counts = get_json(status_url)["outbox"]["counts"]
            waiting = counts["queued"] + counts["retrying"] + counts["in_flight"]
            if waiting == 0 and counts["delivered"] + counts["failed"] >= expected:
                if counts["failed"]:
                    raise BenchFailed(f"{counts['failed']} rows failed: {counts}")
                return (time.monotonic_ns() - started_ns) / 1e9
        except (OSError, ValueError, KeyError):
            pass  # not listening yet
        time.sleep(0.1)
    raise BenchFailed(f"not drained after {timeout_s} s: {counts}")


def part_delivery(b: Bench) -> dict:
    k, events = b.k, b.k.delivery_events
    log(f"part delivery: {events} events; latencies {k.delivery_latencies} ms; concurrency {k.delivery_concurrency}")
    backlog = b.work / "backlog.sqlite"
    b.seed(backlog, events, "dlv", 1, 1)

    def raw_start(p: DeliveryPoint):
        sandbox, url = start_sandbox(b, f"raw-{p.key}", p.latency)
        client = Process([b.bin.rawclient, f"{url}/organizations/demo-org/guests", str(events), str(p.conc),
                          f"raw{p.key}"], b.results / f"raw-{p.key}.txt")
        return sandbox, url, client

    def raw_finish(p: DeliveryPoint, sandbox: Process, url: str, client: Process) -> None:
        if client.wait() != 0:
            raise BenchFailed(f"rawclient failed for {p.key}; see {client.log_path}")
        verify_sandbox(url, events)
        sandbox.stop()
        line = next(l for l in client.log_path.read_text().splitlines() if l.startswith("RAW "))
        fields = dict(word.split("=", 1) for word in line.split()[1:])
        p.raw_rps = float(fields["rps"])
        log(f"raw    {p.key:<8} {p.raw_rps:>8} req/s     ({fields['elapsed_s']} s)")

    def bridge_run(p: DeliveryPoint) -> None:
        sandbox, url = start_sandbox(b, f"bridge-{p.key}", p.latency)
        db = b.work / f"delivery-{p.key}.sqlite"
        copy_db(backlog, db)
        port = free_port()
        started = time.monotonic_ns()
        bridge = Process([b.bin.bridge, "serve"], b.results / f"bridge-{p.key}.log", b.bridge_env(
            db, port, delivery__enabled="true", delivery__concurrency=str(p.conc),
            delivery__max_creates_per_hour="0", tallyfy__base_url=url, tallyfy__org_id="demo-org",
            tallyfy__token="sandbox-token"))
        p.drain_s = wait_drained(f"http://127.0.0.1:{port}/status", started, events)
        p.bridge_ticks, p.bridge_rss_kb = bridge.cpu_ticks(), bridge.peak_rss_kb()
        sandbox_check = verify_sandbox(url, events)
        b.stop_cleanly(bridge)
        sandbox.stop()
        rows = query(db, "SELECT (SELECT count(*) FROM outbox WHERE state = 'delivered') || ' delivered, ' || "
                         "(SELECT count(*) FROM outbox WHERE attempts > 1) || ' attempted twice, ' || "
                         "(SELECT count(*) FROM delivery_attempts) || ' attempts logged'")
        remove_db(db)
        p.checks = f"{rows}; sandbox: {sandbox_check}"
        log(f"bridge {p.key:<8} {events / p.drain_s:>8.1f} guests/s ({p.drain_s:.3f} s)  {rows}")

    points = []
    for latency in k.delivery_latencies:
        for conc in k.delivery_concurrency:
            # Latency-bound points mostly wait, so raw and bridge run at the same time.
            side = latency > 0 and 0 < k.side_by_side_max_rps and conc * 1000 <= k.side_by_side_max_rps * latency
            p = DeliveryPoint(latency, conc, side)
            raw = raw_start(p)
            if side:
                log(f"delivery {p.key}: raw and bridge side by side")
                bridge_run(p)
                raw_finish(p, *raw)
            else:
                raw_finish(p, *raw)
                bridge_run(p)
            points.append(p)
    remove_db(backlog)
    commit_ms = commit_probe(b.work / "commit-probe.sqlite")
    log(f"one synchronous=FULL WAL commit on this disk: {commit_ms:.2f} ms")
    return {"points": points, "commit_ms": commit_ms}


# --- pacing -----------------------------------------------------------------------------------

@dataclass
class PacingRun:
    name: str
    paced: bool
    drain_s: float = 0.0
    posts: int = 0
    finds: int = 0
    rate_limited: int = 0
    failed: int = 0
    extra_attempts: int = 0
    paced_logged: int = 0
    checks: str = ""


def post_events(base: str, events: Path) -> int:
    """Posts every signed event of `events` (gen_signed's lines) in order; how many got a 2xx."""
    acked = 0
    for line in events.read_text(encoding="ascii").splitlines():
        event_id, ts, signature, body = line.split("\t", 3)
        request = urllib.request.Request(f"{base}/webhooks/contacts", data=body.encode(), method="POST", headers={
            "content-type": "application/json", "webhook-id": event_id, "webhook-timestamp": ts,
            "webhook-signature": signature})
        with urllib.request.urlopen(request, timeout=10) as response:
            acked += 200 <= response.status < 300
    return acked


def part_pacing(b: Bench) -> dict:
    k = b.k
    n, cap, window = k.pacing_rows, k.pacing_cap, k.pacing_window_secs
    ideal = n / cap * window
    log(f"part pacing: {n} rows, sandbox and bridge capped at {cap} creates per {window} s (ideal {ideal:.0f} s)")
    runs, live = [PacingRun("unpaced", False), PacingRun("paced", True)], {}
    for run in runs:
        port = free_port()
        environment = {**os.environ, "RUST_LOG": "warn"}
        faults = {"faults": {"hourly_cap": cap, "cap_window_secs": window}}
        sandbox = Process([b.bin.bridge, "sandbox", "--addr", f"127.0.0.1:{port}", "--config", compact(faults)],
                          b.results / f"sandbox-pacing-{run.name}.log", environment)
        url = f"http://127.0.0.1:{port}"
        wait_200(f"{url}/_sandbox/stats", time.monotonic_ns(), sandbox)
        db = b.work / f"pacing-{run.name}.sqlite"
        remove_db(db)
        bridge, base, _ = b.start_bridge(
            db, f"bridge-pacing-{run.name}.log", delivery__enabled="true",
            delivery__concurrency=str(k.pacing_concurrency),
            delivery__max_creates_per_hour=str(cap if run.paced else 0), delivery__create_window_secs=str(window),
            tallyfy__base_url=url, tallyfy__org_id="demo-org", tallyfy__token="sandbox-token")
        events = b.results / f"pacing-{run.name}.events"
        gen_signed(events, n, f"pc{run.name}")
        live[run.name] = (sandbox, url, db, bridge, base, events)
    started = {}
    for run in runs:
        _, _, _, _, base, events = live[run.name]
        started[run.name] = time.monotonic_ns()
        acked = post_events(base, events)
        if acked != n:
            raise BenchFailed(f"pacing {run.name}: {acked} of {n} events acknowledged")
    # Both drains are watched in one loop, so neither is timed late for waiting on the other.
    deadline = time.monotonic() + 4 * ideal + 120
    while any(not run.drain_s for run in runs):
        if time.monotonic() > deadline:
            raise BenchFailed(f"pacing: not drained after {4 * ideal + 120:.0f} s")
        for run in (r for r in runs if not r.drain_s):
            try:
                counts = get_json(f"{live[run.name][4]}/status")["outbox"]["counts"]
            except (OSError, ValueError, KeyError):
                continue
            if counts["queued"] + counts["retrying"] + counts["in_flight"] == 0 and \
                    counts["delivered"] + counts["failed"] >= n:
                run.drain_s = (time.monotonic_ns() - started[run.name]) / 1e9
                log(f"pacing {run.name}: drained in {run.drain_s:.1f} s")
        time.sleep(0.1)
    for run in runs:
        sandbox, url, db, bridge, _, _ = live[run.name]
        stats = get_json(f"{url}/_sandbox/stats")
        run.posts = stats.get("requests", {}).get("create_guest", 0)
        run.finds = stats.get("requests", {}).get("find_guest", 0)
        run.rate_limited = stats.get("rate_limited", 0)
        run.checks = verify_sandbox(url, n)
        b.stop_cleanly(bridge)
        sandbox.stop()
        run.failed = query(db, "SELECT count(*) FROM outbox WHERE state = 'failed'")
        run.extra_attempts = query(db, "SELECT coalesce(sum(attempts), 0) - count(*) FROM outbox WHERE state = 'delivered'")
        run.paced_logged = query(db, "SELECT count(*) FROM delivery_attempts WHERE outcome = 'paced'")
        remove_db(db)
        log(f"pacing {run.name}: {run.posts} POSTs, {run.rate_limited} 429s, {run.failed} failed, "
            f"{run.extra_attempts} extra attempts, {run.paced_logged} paced attempts; {run.checks}")
        if run.failed:
            raise BenchFailed(f"pacing {run.name}: {run.failed} rows failed")
    return {"runs": runs, "ideal_s": ideal}


def commit_probe(path: Path) -> float:
    """Milliseconds per one-row synchronous=FULL WAL commit on this disk (200 of them)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE t (x)")
    started = time.perf_counter()
    for i in range(200):
        db.execute("BEGIN")
        db.execute("INSERT INTO t VALUES (?)", (i,))
        db.execute("COMMIT")
    took = (time.perf_counter() - started) / 200 * 1000
    db.close()
    remove_db(path)
    return took


# --- part: scale ------------------------------------------------------------------------------

def part_scale(b: Bench) -> dict:
    k, r = b.k, {"seed_s": {}, "status": defaultdict(Point), "claims": defaultdict(list), "rss_kb": {},
                 "pages": defaultdict(list)}
    log(f"part scale: sizes {k.scale_sizes}")
    dbs = {}
    for size in k.scale_sizes:
        started = time.monotonic()
        dbs[size] = b.big_db if size == b.big_size else b.work / f"scale-{size}.sqlite"
        if size == b.big_size:
            b.ensure_big_db()
        else:
            b.scale_db(size, dbs[size])
        r["seed_s"][size] = time.monotonic() - started
    bridges = {size: b.start_bridge(dbs[size], f"bridge-scale-{size}.log")[:2] for size in k.scale_sizes}
    big_status = get_json(f"{bridges[b.big_size][1]}/status")
    (b.results / f"status-{b.big_size}.json").write_text(json.dumps(big_status, indent=2))
    for round_ in range(1, k.rounds + 1):
        for size in k.scale_sizes:
            line = wrk(["wrk", "-t", "1", "-c", "1", "-d", k.scale_duration, "--latency", "-s",
                        str(BENCH / "hello.lua"), f"{bridges[size][1]}/status"],
                       b.results / f"status-{size}-r{round_}.txt")
            point = r["status"][size]
            point.p50s.append(int(line["p50_us"]))
            point.p99s.append(int(line["p99_us"]))
            point.requests += int(line["requests"])
            point.duration_us += int(line["duration_us"])
            point.bad += int(line["other"])
            log(f"/status {size:>8} rows r{round_}: {line['rps']:>7} req/s  p50 {line['p50_us']:>5} us  "
                f"p99 {line['p99_us']:>6} us  non-200 {line['other']}")
        for size in k.scale_sizes:
            for limit in k.claim_limits:
                samples = b.results / f"claim-{size}-l{limit}-r{round_}.txt"
                run = subprocess.run([b.bin.claim_bench, "time", dbs[size], str(limit), str(k.claim_reps), samples],
                                     capture_output=True, text=True, cwd=ROOT)
                (b.results / f"claim-plan-{size}.txt").write_text(run.stderr)
                if run.returncode != 0:
                    raise BenchFailed(f"claim timing failed at {size}: {run.stderr.strip()}")
                r["claims"][(size, limit)] += [float(s) for s in samples.read_text().split()]
                r["sqlite"] = run.stdout.split("sqlite=")[-1].strip()
                log(f"claim   {size:>8} rows r{round_} limit {limit}: {run.stdout.strip().removeprefix('CLAIM ')}")
        for size in k.scale_sizes:
            prefix = b.results / f"page-{size}-r{round_}"
            run = subprocess.run([b.bin.claim_bench, "pages", dbs[size], str(k.claim_reps), prefix],
                                 capture_output=True, text=True, cwd=ROOT)
            if run.returncode != 0:
                raise BenchFailed(f"page timing failed at {size}: {run.stderr.strip()}")
            for line in run.stdout.splitlines():
                name = line.split("filter=")[1].split()[0]
                r["pages"][(size, name)] += [float(x) for x in Path(f"{prefix}-{name}.txt").read_text().split()]
                log(f"page    {size:>8} rows r{round_}: {line.removeprefix('PAGE ')}")
    r["plan"] = [line.removeprefix("  plan: ") for line in
                 (b.results / f"claim-plan-{b.big_size}.txt").read_text().splitlines() if line.startswith("  plan: ")]
    for size, (bridge, _) in bridges.items():
        r["rss_kb"][size] = bridge.peak_rss_kb()
        bridge.stop()
        if size != b.big_size:
            remove_db(dbs[size])
    return r


# --- part: startup ----------------------------------------------------------------------------

def part_startup(b: Bench) -> dict:
    k = b.k
    log(f"part startup: {k.startup_reps} x empty database, {k.startup_reps} x {b.big_size} rows")
    b.ensure_big_db()

    def start_ready(db: Path) -> int:
        """Spawn -> first 200 on /health/ready, in ms; then stops the bridge."""
        bridge, _, ms = b.start_bridge(db, "bridge-startup.log", append=True)
        b.stop_cleanly(bridge)
        return ms

    empty, big = [], []
    for rep in range(1, k.startup_reps + 1):
        db = b.work / f"startup-empty-{rep}.sqlite"
        empty.append(start_ready(db))
        remove_db(db)
        big.append(start_ready(b.big_db))
    log(f"start to ready (ms): empty: {empty}; {b.big_size} rows: {big}")
    return {"empty": empty, "big": big}


# --- part: retention --------------------------------------------------------------------------

def prune_line(log_path: Path) -> dict | None:
    """The last `Pruned old rows` INFO line of a JSON-logging bridge, as its fields."""
    found = None
    for line in log_path.read_text().splitlines():
        if "Pruned old rows" in line:
            entry = json.loads(line)
            found = {**entry.get("fields", {}), **entry}
    return found


def part_retention(b: Bench) -> dict:
    k, conns = b.k, b.k.retention_connections
    r = {"on": [], "ratios": [], "prunes": [], "seed_s": 0.0}
    log(f"part retention: ingest at {conns} connections with and without pruning the {b.big_size}-row database")
    started = time.monotonic()
    b.ensure_big_db()
    seed = b.work / "retention-seed.sqlite"
    copy_db(b.big_db, seed)
    with sqlite3.connect(seed) as conn:  # every delivered row has its attempt logged, as in production
        conn.execute("INSERT INTO delivery_attempts (outbox_id, attempt, started_at, duration_ms, outcome) "
                     "SELECT id, 1, updated_at - 150, 150, 'delivered' FROM outbox WHERE state = 'delivered'")
    r["seed_s"] = time.monotonic() - started
    keep = {f"retention__{age}_secs": "0" for age in ("delivered", "failed", "cancelled", "refused", "audit")}
    prune = {**keep, "retention__delivered_secs": "1", "retention__every_secs": "1", "log__format": "json",
             "log__level": f"{k.log_level},tallyfy_bridge::startup::retention=info"}
    if k.retention_batch_rows:
        prune["retention__batch_rows"] = k.retention_batch_rows
    db = b.work / "retention.sqlite"
    delivered = "SELECT n FROM outbox_counts WHERE state = 'delivered'"
    for round_ in range(1, k.rounds + 1):
        copy_db(seed, db)
        lines = {}
        for name, settings in (("off", keep), ("on", prune)):
            events = b.work / f"retention-{name}-r{round_}.tsv"
            gen_signed(events, k.events, f"ret{name}r{round_}")
            db_bytes = db.stat().st_size  # the last bridge truncated the WAL into it when it stopped
            bridge, base, _ = b.start_bridge(db, f"bridge-retention-{name}-r{round_}.log", **settings)
            before = query(db, delivered)
            line = b.run_point(f"ret-{name}", conns, round_, bridge, f"{base}/webhooks/contacts", "ingest.lua",
                               str(events), str(k.threads))
            lines[name] = line
            events.unlink()
            if name == "on":
                duration_s = int(line["duration_us"]) / 1e6
                during = before - query(db, delivered)
                r["on"].append(during / duration_s)
                deadline = time.monotonic() + 1800
                while prune_line(bridge.log_path) is None:
                    if time.monotonic() > deadline or not bridge.alive():
                        raise BenchFailed(f"the prune did not finish; see {bridge.log_path}")
                    time.sleep(0.5)
                pruned = prune_line(bridge.log_path)
                pruned["db_bytes_before"] = db_bytes
                pruned["db_bytes_after"] = get_json(f"{base}/status")["database"]["size_bytes"]
                pruned["left"] = query(db, delivered)
                r["prunes"].append(pruned)
                log(f"prune r{round_}: {during} rows while ingest ran ({during / duration_s:.0f} rows/s); whole run "
                    f"{pruned['outbox_rows']} rows in {pruned['elapsed_ms']} ms; WAL {pruned.get('wal_bytes_before')} -> "
                    f"{pruned.get('wal_bytes_after')} bytes")
            b.stop_cleanly(bridge)
        r["ratios"].append(f"{100 * float(lines['on']['rps']) / float(lines['off']['rps']):.1f}")
    remove_db(db)
    remove_db(seed)
    return r


# --- part: xml --------------------------------------------------------------------------------

def part_xml(b: Bench) -> dict:
    log("part xml: Salesforce parse, worst bodies at the size limit vs a normal message")
    run = subprocess.run([b.bin.xml_bench, str(b.k.xml_rounds)], capture_output=True, text=True, cwd=ROOT)
    if run.returncode != 0:
        raise BenchFailed(f"salesforce_xml_bench failed: {run.stderr.strip()}")
    (b.results / "salesforce-xml.md").write_text(run.stdout)
    return {"table": run.stdout}


# --- BENCHMARKS.md ----------------------------------------------------------------------------

def ms(us: float) -> str:
    return f"{us / 1000:.2f} ms"


def pct(a: float, b: float) -> str:
    return f"{100 * a / b:.1f} %"


def times(a: float, b: float) -> str:
    return f"{a / b:.2f}×"


def span(values: list[str]) -> str:
    """The per-round range of ratios, e.g. 22.0–30.8 %."""
    numbers = sorted(values, key=float)
    return f"{numbers[0]}–{numbers[-1]} %"


def quantile(q: float, values: list[float]) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1) + 0.5)]


def mmss(secs: float) -> str:
    return f"{int(secs) // 60} min {int(secs) % 60:02d} s"


def header(b: Bench, command: str, parts: list[str], measure_s: float, total_s: float, build_s: float,
           skipped: bool) -> list[str]:
    k = b.k
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "unknown CPU")
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "src", "Cargo.toml", "migrations"]).returncode
    return [
        "# Benchmarks", "",
        "Generated by `bench/bench.py` (`bench/bench.py --help` says what it measures and how). This machine is",
        "shared and noisy: compare **ratios** measured in the same run, not absolute figures.", "",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Machine: {len(os.sched_getaffinity(0))} CPUs, {cpu_model}, Linux {platform.release()}; load average at the end "
        f"{load} (the machine is shared; a load near 2 or above means other work was running)",
        f"- Toolchain: {rustc}",
        f"- Commit: {commit or 'unknown'}{' plus uncommitted changes' if dirty else ''}",
        f"- Command: `{command}` (parts: {' '.join(parts)}) — wrk with {k.threads} threads; {k.rounds} interleaved "
        f"rounds; {k.workers} HTTP workers per server; every client and server shares the same {len(os.sched_getaffinity(0))} CPUs.",
        f"- Run time: {mmss(measure_s)} measuring, {mmss(total_s)} in all (build: {mmss(build_s)}"
        f"{', skipped' if skipped else ''}).",
    ]


def report_ingest(b: Bench, r: dict) -> list[str]:
    k, p = b.k, b.points
    out = [f"req/s over all rounds; p50/p99: median of the rounds; ratio: to hello at the same connection count "
           f"(per-round range in brackets); server CPU: cores used by the server process. {k.rounds} rounds of "
           f"{k.duration} per scenario and connection count.", "",
           "| scenario | connections | req/s | p50 | p99 | ratio to hello | server CPU |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for c in k.connections:
        h, l, i, o = p[("hello", c)], p[("live", c)], p[("ingest", c)], p[("nometrics", c)]
        row = lambda x: f"{x.rps:.0f} | {ms(statistics.median(x.p50s))} | {ms(statistics.median(x.p99s))}"
        out += [f"| hello (`GET /hello`, bench/hello) | {c} | {row(h)} | 100 % | {h.cpu:.2f} |",
                f"| bridge `GET /health/live` (its middleware, no DB) | {c} | {row(l)} | {pct(l.rps, h.rps)} | {l.cpu:.2f} |",
                f"| **durable ingest** (`POST /webhooks/contacts`) | {c} | {row(i)} | **{pct(i.rps, h.rps)}** "
                f"({span(r['ratios'][c])}) | {i.cpu:.2f} |",
                f"| durable ingest, `metrics.enabled=false` (second bridge) | {c} | {row(o)} | {pct(o.rps, h.rps)} | "
                f"{o.cpu:.2f} |"]
    bad = "; ".join(", ".join(f"{n}/{c} {p[(n, c)].bad}" for n in ("hello", "live", "ingest", "nometrics"))
                    for c in k.connections)
    cost = "; ".join(f"**{pct(p[('ingest', c)].rps, p[('nometrics', c)].rps)}** ({span(r['metrics_ratios'][c])}) "
                     f"at {c} connections" for c in k.connections)
    batch = "; ".join(f"{r['batch'][c]} at {c} connections" for c in k.connections)
    return out + [
        "", "Targets (issue 18): durable ingest ≥ 25 % of hello at 32 connections and ≥ 35 % at 256; p99 ≤ 10 ms at 32; bridge CPU per event ≤ 4× hello's per request.", "",
        f"- Non-2xx responses: {bad} (the run fails above 0.1 %).",
        f"- Durability: wrk saw {r['accepted']} × 202; `SELECT count(*) FROM outbox` = {r['rows']} after the load and "
        f"{r['rows_after_stop']} after SIGTERM (rows beyond the 202s are requests in flight when wrk stopped: "
        "committed, answer unread).",
        f"- Group commit, approximate rows per commit: {batch}.",
        f"- Metrics: ingest req/s with metrics (the bridge above) / without (a second bridge, "
        f"`metrics.enabled=false`, same settings, its own database, rounds interleaved, order alternating): {cost}.",
        "",
        "Ingest events are pre-signed by `bench/bench.py` just before each round (Standard Webhooks",
        "v1, distinct `webhook-id` and email per request, ~330-byte contact bodies) and replayed by",
        "`bench/ingest.lua`. Bridge settings: `database.synchronous=full`, signature auth, `log.level=warn`,",
        "`delivery.enabled=false` (ingest only), the rest at their defaults (`ingest.max_batch` 512,",
        "`ingest.queue_capacity` 8192)."]


def report_sources(b: Bench, r: dict) -> list[str]:
    k, c = b.k, b.k.sources_connections
    point = {name: b.points[(name, c)] for name in SOURCES}
    eps = {name: point[name].rps * s.batch for name, s in SOURCES.items()}
    out = ["One bridge with the three CRM sources configured (otherwise as for durable ingest: `synchronous=full`, "
           "`log.level=warn`,",
           f"delivery disabled), {c} connections, {k.rounds} interleaved rounds of {k.duration} per scenario. "
           "events/s = req/s × events per request,",
           "over all rounds; p50/p99: request latency, median of the rounds; ratio: events/s to canonical's "
           "(per-round range in",
           "brackets); bridge CPU: cores used by the bridge. Each answer waits until all its events are committed.", "",
           "| scenario | events/request | req/s | **events/s** | **ratio to canonical** | p50 | p99 | bridge CPU |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in SOURCES.items():
        x = point[name]
        ratio = "100 %" if s.make is None else f"**{pct(eps[name], eps['canonical'])}** ({span(r['ratios'][name])})"
        out.append(f"| {s.label} | {s.batch} | {x.rps:.0f} | **{eps[name]:.0f}** | {ratio} | "
                   f"{ms(statistics.median(x.p50s))} | {ms(statistics.median(x.p99s))} | {x.cpu:.2f} |")
    per_kind = "".join(f"{kind} {r['acked'][kind]} ≤ {r['rows'][kind]}; " for kind in KINDS)
    cpu = "; ".join(f"{name} {point[name].ticks / CLK_TCK / (point[name].requests * s.batch) * 1e6:.0f} ms"
                    for name, s in SOURCES.items())
    planned = "; ".join(f"{name} {'/'.join(map(str, counts))}" for name, counts in r["planned"].items())
    wrapped = "; ".join(
        f"{name} {point[name].wrapped} "
        f"{'restarts of a thread' + chr(39) + 's list' if s.make is None else 'requests repeated'}"
        for name, s in SOURCES.items() if point[name].wrapped) or "none"
    return out + [
        "",
        f"- Non-2xx responses: {', '.join(f'{name} {point[name].bad}' for name in SOURCES)} (the run fails above 0.1 %).",
        f"- Durability, events acknowledged (200s × events per request; canonical: 202s) ≤ outbox rows, per source: "
        f"{per_kind}all {r['acked_all']} ≤ {r['rows_all']} after the load, {r['rows_after_stop']} after SIGTERM.",
        f"- Group commit, approximate rows per commit: {'; '.join(f'{n} {v}' for n, v in r['commit_rows'].items())}.",
        f"- Bridge CPU per 1000 events: {cpu}; bridge peak RSS {r['rss_kb'] // 1024} MiB.",
        f"- Requests pre-generated per point, by round: {planned}; lists that wrapped: {wrapped}.", "",
        "Requests are generated right before each point (HubSpot signatures and canonical timestamps must be fresh) by",
        "`bench/bench.py`, with a distinct dedup key and email per event across the run,",
        "and replayed by `bench/sources.lua` (canonical: `bench/ingest.lua`). Pipedrive: one v1 `added.person` per "
        "request, HTTP Basic.",
        "HubSpot: a signature-v3 JSON array of `contact.creation` events; each stores only a reference to the contact "
        "(the",
        "delivery worker fetches its fields). Salesforce: one SOAP outbound message of Contact notifications, "
        "answered `<Ack>true</Ack>`."]


def report_delivery(b: Bench, r: dict) -> list[str]:
    n, points = b.k.delivery_events, r["points"]
    out = [f"A backlog of {n} queued events (distinct emails), drained by the bridge into a fresh sandbox",
           "(`tallyfy-bridge sandbox`, its own process, `faults.latency_ms` added to every guest call);",
           "baseline: `bench/rawclient` (reqwest, the same headers and body shape, the same number in flight)",
           f"posting {n} creates to another fresh sandbox with the same latency. Bridge: guests/s =",
           "events / (spawn → `/status` shows nothing queued, retrying or in flight; polled every 100 ms),",
           "`synchronous=full`, `log.level=warn`. Ideal = concurrency / latency (latency-bound ceiling).", "",
           "| added latency | concurrency | raw client req/s | **bridge guests/s** | **bridge / raw** | ideal | "
           "bridge drain time | bridge CPU per 1000 guests | run |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for p in points:
        gps = n / p.drain_s
        ideal = f"{p.conc * 1000 // p.latency}/s" if p.latency else "–"
        out.append(f"| {p.latency} ms | {p.conc} | {p.raw_rps} | **{gps:.1f}** | **{pct(gps, p.raw_rps)}** | {ideal} | "
                   f"{p.drain_s:.3f} s | {p.bridge_ticks / CLK_TCK / n * 1000:.2f} CPU s | "
                   f"{'side by side' if p.side_by_side else 'raw, then bridge'} |")
    out += ["", "Target: bridge ≥ 80 % of the raw client's rate.", "",
            "Per point: wall time per guest (1 / guests/s), bridge CPU per guest, and the time each slot spends per "
            "guest beyond the",
            "added latency (concurrency / guests/s − latency). For scale: one `synchronous=FULL` WAL commit (one-row "
            "transaction)",
            f"on this disk cost **{r['commit_ms']:.2f} ms** when probed right after the delivery runs (the disk is "
            "shared: this varies a lot).", ""]
    for p in points:
        wall = 1000 * p.drain_s / n
        out.append(f"- {p.key}: {wall:.2f} ms wall per guest, {p.bridge_ticks / CLK_TCK / n * 1000:.2f} ms bridge CPU "
                   f"per guest, {p.conc * wall - p.latency:.1f} ms per slot beyond the added latency.")
    out += ["", f"Checks (each run fails the benchmark if wrong): every sandbox got exactly {n} creates, one per email,",
            "no `duplicate_create_attempts`, no guest with `creates` > 1; no bridge row failed.", ""]
    out += [f"- {p.key}: {p.checks}; bridge peak RSS {p.bridge_rss_kb // 1024} MiB." for p in points]
    return out + [
        "", "The backlog is inserted by `bench/sql/seed.sql.in` through the `outbox` table (the triggers keep",
        "`outbox_counts`) with the payload the bridge stores for the benchmark's contacts; each bridge",
        f"run drains its own copy. Points whose ideal rate is ≤ {b.k.side_by_side_max_rps}/s only wait on the sandbox's",
        "sleep, so their raw and bridge runs go side by side (each against its own sandbox) to keep the run short."]


def report_scale(b: Bench, r: dict) -> list[str]:
    k, first = b.k, b.k.scale_sizes[0]
    seeded = "; ".join(f"{size} rows {secs:.0f} s" for size, secs in r["seed_s"].items())
    out = [f"Databases seeded through the `outbox` table (`bench/sql/seed.sql.in`, by `examples/claim_bench`): "
           f"~{DUE_ROWS} rows `queued` at every size",
           f"(spread over the whole history, all due), the rest `delivered`. Seeding time: {seeded}.", "",
           f"`GET /status`: one bridge per database (delivery disabled), wrk with 1 connection, {k.rounds} "
           "interleaved rounds of",
           f"{k.scale_duration} per size; p50/p99: median of the rounds; ratio to {first} rows.", "",
           "| outbox rows | req/s | p50 | p99 | **p50 ratio** | p99 ratio | non-200 | bridge peak RSS |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    status = r["status"]
    base50, base99 = statistics.median(status[first].p50s), statistics.median(status[first].p99s)
    for size in k.scale_sizes:
        s = status[size]
        m50, m99 = statistics.median(s.p50s), statistics.median(s.p99s)
        out.append(f"| {size} | {s.rps:.0f} | {ms(m50)} | {ms(m99)} | **{times(m50, base50)}** | {times(m99, base99)} | "
                   f"{s.bad} | {r['rss_kb'][size] // 1024} MiB |")
    out += ["", "Claim: `claim_due`, the delivery worker's own claim (window = limit × 8 + 64, every queued row due), "
            "called by `examples/claim_bench`",
            f"inside `BEGIN … ROLLBACK` on one pooled connection, {k.claim_reps} times per round × {k.rounds} "
            "interleaved rounds per size and limit",
            f"(ns clock around the call, RETURNING rows decoded; the bridge's bundled SQLite {r['sqlite']}). Ratio: "
            f"median to the median at {first} rows.", "",
            "| outbox rows | claim limit | median | p90 | **median ratio** | p90 ratio |",
            "|---:|---:|---:|---:|---:|---:|"]
    claims = r["claims"]
    for limit in k.claim_limits:
        b50, b90 = quantile(0.5, claims[(first, limit)]), quantile(0.9, claims[(first, limit)])
        for size in k.scale_sizes:
            c50, c90 = quantile(0.5, claims[(size, limit)]), quantile(0.9, claims[(size, limit)])
            out.append(f"| {size} | {limit} | {c50:.0f} µs | {c90:.0f} µs | **{times(c50, b50)}** | {times(c90, b90)} |")
    out += ["", "Admin list page (`GET /deliveries`, limit 50): the crate's own `list_deliveries`, called by "
            f"`examples/claim_bench pages` {k.claim_reps} times per round × {k.rounds} rounds per size and filter",
            "(state = delivered, source = canonical, the middle row's email, and no filter from a cursor half way "
            "down the list). Ratio: median to the median at "
            f"{first} rows.", "",
            "| outbox rows | filter | median | p90 | **median ratio** | p90 ratio |",
            "|---:|---|---:|---:|---:|---:|"]
    pages = r["pages"]
    for name in sorted({name for (_, name) in pages}, key=["none", "state", "source", "email", "none_deep"].index):
        b50, b90 = quantile(0.5, pages[(first, name)]), quantile(0.9, pages[(first, name)])
        for size in k.scale_sizes:
            c50, c90 = quantile(0.5, pages[(size, name)]), quantile(0.9, pages[(size, name)])
            out.append(f"| {size} | {name} | {c50:.0f} µs | {c90:.0f} µs | **{times(c50, b50)}** | {times(c90, b90)} |")
    return out + [
        "", "Targets: `/status`, claim and an admin list page at 1M rows within 2× of 1k.", "",
        f"Every size holds the same ~{DUE_ROWS} due rows (the claim's widest look-ahead window), the rest",
        "delivered, so the ratios compare outbox size alone.", "",
        f"Claim query plan at {b.big_size} rows:", "", "```", *r["plan"], "```"]


def report_memory(b: Bench, results: dict, not_run: str) -> list[str]:
    out = []
    if "ingest" in results:
        r = results["ingest"]
        out += [f"- Bridge peak RSS (VmHWM over the whole ingest part, its load included): {r['peak_rss_kb'] // 1024} MiB "
                f"({r['peak_rss_kb']} kB); target ≤ 64 MB.",
                "- Start to ready of the ingest bridge (spawn → first 200 on `/health/ready`, fresh database, migrations "
                f"included): {r['ready_ms']} ms."]
    if "delivery" in results:
        rss = "; ".join(f"{p.key} {p.bridge_rss_kb // 1024} MiB" for p in results["delivery"]["points"])
        out.append(f"- Bridge peak RSS while delivering: {rss}.")
    if "startup" in results:
        r, reps = results["startup"], b.k.startup_reps
        out += ["- Start to ready (spawn → first 200 on `/health/ready`, polled every ~5 ms, delivery disabled), "
                f"median of {reps}:",
                f"  **{statistics.median(r['empty']):.0f} ms** on a fresh empty database (migrations applied at start; "
                f"runs: {' '.join(map(str, r['empty']))} ms),",
                f"  **{statistics.median(r['big']):.0f} ms** on the {b.big_size}-row database (already migrated, file in "
                f"the page cache; runs: {' '.join(map(str, r['big']))} ms)."]
    else:
        out.append(f"- Start-up on the 1M-row database: {not_run}")
    return out


def report_retention(b: Bench, r: dict) -> list[str]:
    k, c, p = b.k, b.k.retention_connections, b.points
    off, on = p[("ret-off", c)], p[("ret-on", c)]
    row = lambda x: f"{x.rps:.0f} | {ms(statistics.median(x.p50s))} | {ms(statistics.median(x.p99s))} | {x.cpu:.2f}"
    whole = [1000 * q["outbox_rows"] / q["elapsed_ms"] for q in r["prunes"]]
    mib = lambda n: f"{(n or 0) / 2**20:.1f} MiB"
    out = [f"Durable ingest (`POST /webhooks/contacts`, {c} connections) on a copy of the {b.big_size}-row database, "
           f"{k.rounds} interleaved rounds of {k.duration}:",
           "retention off (every age 0), then on the same file retention on (`delivered_secs` 1, `every_secs` 1: "
           "the prune of every delivered row",
           f"runs while wrk does). Seeding the attempt logs and first copy: {r['seed_s']:.0f} s.", "",
           "| scenario | req/s | p50 | p99 | server CPU |", "|---|---:|---:|---:|---:|",
           f"| ingest, no prune | {row(off)} |", f"| ingest while pruning | {row(on)} |", "",
           f"- **Ingest with prune / without: {pct(on.rps, off.rps)}** (per round {span(r['ratios'])}); "
           f"non-2xx {off.bad} / {on.bad}.",
           f"- Prune rate while ingest ran (rows deleted during the round over the whole round, the first ~1 s "
           f"of which it had not started): {statistics.median(r['on']):.0f} rows/s (median of rounds); over its whole "
           f"run: {statistics.median(whole):.0f} rows/s ({r['prunes'][0]['outbox_rows']} rows and "
           f"{r['prunes'][0]['attempt_logs']} attempt log lines, {r['prunes'][0]['batches']} batches, {r['prunes'][0]['elapsed_ms'] / 1000:.0f} s in round 1).",
           "- WAL file at its largest before a TRUNCATE checkpoint → after the last one, per round: " +
           "; ".join(f"{mib(q.get('wal_bytes_before'))} → {mib(q.get('wal_bytes_after'))}" for q in r["prunes"]) + ".",
           f"- Database file: {mib(r['prunes'][0]['db_bytes_before'])} before, {mib(r['prunes'][0]['db_bytes_after'])} "
           "after (the freed pages stay in the file for new rows; `VACUUM` is the operator's choice)."]
    return out


def report_xml(b: Bench, r: dict) -> list[str]:
    return ["`salesforce_xml::parse` (the shape check, then the tree and the notifications) timed in-process by",
            "`examples/salesforce_xml_bench` (`cargo run --release --example salesforce_xml_bench [rounds]`) on bodies",
            "built at `sources.salesforce.max_body_bytes` (4 MiB), each as close to one of the shape limits",
            "(`xml_shape::LIMITS`) as it can get; ratio: to the first row, a legitimate message of the same size.", "",
            r["table"].rstrip("\n")]


def report_pacing(b: Bench, r: dict) -> list[str]:
    k, ideal = b.k, r["ideal_s"]
    n, cap, window = k.pacing_rows, k.pacing_cap, k.pacing_window_secs
    last_batch = (-(-n // cap) - 1) * window

    def floor_ratio(drain_s: float) -> str:
        return f"{drain_s / last_batch:.2f}" if last_batch else "–"

    out = [f"A backlog of {n} signed canonical webhooks (distinct emails) posted to a bridge whose sandbox allows "
           f"{cap} creates per {window} s",
           "(`faults.hourly_cap` / `cap_window_secs`: a fixed window opened by its first create, then 429 "
           "RATE_LIMIT_EXCEEDED with Retry-After);",
           f"`delivery.concurrency` {k.pacing_concurrency}. unpaced: `delivery.max_creates_per_hour` 0 (the cap "
           "learned from 429s only, as before the budget);",
           f"paced: `max_creates_per_hour` {cap}, `create_window_secs` {window}. Drain: first post → `/status` "
           f"shows nothing waiting. Ideal = rows / N × W = {ideal:.0f} s",
           f"(the first {cap} go at once, so the last batch can start at {last_batch} s: the floor).", "",
           "| run | POSTs | 429s | **429s / POSTs** | rows failed | attempts consumed beyond one per row | "
           "paced attempts logged | look-ups | **drain** | drain / ideal | drain / floor |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in r["runs"]:
        share = f"{100 * run.rate_limited / run.posts:.1f} %" if run.posts else "–"
        out.append(f"| {run.name} | {run.posts} | {run.rate_limited} | **{share}** | {run.failed} | "
                   f"{run.extra_attempts} | {run.paced_logged} | {run.finds} | **{run.drain_s:.1f} s** | "
                   f"{run.drain_s / ideal:.2f} | {floor_ratio(run.drain_s)} |")
    out += ["", "Target: 429s ≤ 5 % of POSTs, no row failed, no attempt consumed by pacing.", ""]
    out += [f"- {run.name}: sandbox {run.checks}." for run in r["runs"]]
    return out


SECTIONS = [
    ("ingest", "HTTP ceiling and durable ingest", report_ingest),
    ("sources", "CRM webhooks: events/s per source vs canonical ingest", report_sources),
    ("delivery", "Delivery: draining a backlog vs a raw client", report_delivery),
    ("scale", "Scale: `/status` and claim latency vs outbox size", report_scale),
    (None, "Memory and start-up", None),
    ("retention", "Retention: ingest while pruning 1M old rows", report_retention),
    ("xml", "Salesforce XML: the worst bodies at the body limit vs a normal message", report_xml),
    ("pacing", "Pacing: a backlog within Tallyfy's hourly guest cap", report_pacing),
]


def report(b: Bench, results: dict, command: str, parts: list[str], **run_times) -> str:
    lines = header(b, command, parts, **run_times)
    not_run = f"Not run in this invocation (`{command}`)."
    for part, title, render in SECTIONS:
        lines += ["", f"## {title}", ""]
        if part is None:
            lines += report_memory(b, results, not_run)
        elif part in results:
            lines += render(b, results[part])
        else:
            lines.append(not_run)
    return "\n".join(lines) + "\n"


# --- main -------------------------------------------------------------------------------------

RUNNERS = {"ingest": part_ingest, "sources": part_sources, "delivery": part_delivery, "scale": part_scale,
           "startup": part_startup, "retention": part_retention, "xml": part_xml, "pacing": part_pacing}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="bench/bench.py [--quick] [--skip-build] [--out FILE] [PART ...]")
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"any of {' '.join(PARTS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="one short round per scenario, small databases")
    parser.add_argument("--skip-build", action="store_true", help="use the binaries already built")
    parser.add_argument("--out", type=Path, help="where to write the report (default: BENCHMARKS.md at the root; "
                                                 "with --quick: the results directory)")
    args = parser.parse_args()
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s): {' '.join(unknown)}")
    parts = [p for p in PARTS if p in args.parts] if args.parts else PARTS
    command = " ".join(["bench/bench.py", *sys.argv[1:]])
    started = time.monotonic()
    knobs = Knobs(quick=args.quick)
    if not set(parts) <= BRIDGE_ONLY:
        ensure_tools()
    target = Path(os.environ.setdefault("CARGO_TARGET_DIR", "/work/scratch/bench-target"))
    skip = args.skip_build or os.environ.get("BENCH_SKIP_BUILD") == "1"
    binaries, build_s = build(target, skip, parts)
    measuring = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="tallyfy-bench."))
    bench = Bench(knobs, binaries, work)
    results = {}
    try:
        for part in parts:
            log(f"part {part}")
            results[part] = RUNNERS[part](bench)
    except BenchFailed as failure:
        log(f"FAILED: {failure}")
        return 1
    finally:
        Process.stop_all()
        for db in work.glob("*.sqlite*"):
            db.unlink()
        for db in work.glob(".*.sqlite.id"):
            db.unlink()
    now = time.monotonic()
    out = args.out or (bench.results / "BENCHMARKS.md" if args.quick else ROOT / "BENCHMARKS.md")
    out.write_text(report(bench, results, command, parts, measure_s=now - measuring, total_s=now - started,
                          build_s=build_s, skipped=skip))
    log(f"wrote {out} in {mmss(now - started)} ({mmss(now - measuring)} measuring); raw outputs in {bench.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
