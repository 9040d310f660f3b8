#!/usr/bin/env python3
"""Issue 17's benchmarks: the bridge on PostgreSQL vs SQLite, and 1, 2 and 3 replicas sharing one
PostgreSQL database. Every figure is a ratio to a baseline measured in the same run.

    scripts/with-postgres.sh bench/postgres.py [--quick] [--skip-build] [--out FILE]

It needs a server: scripts/with-postgres.sh starts a throwaway one and exports TEST_POSTGRES_URL.
It uses bench/bench.py's helpers and release build (CARGO_TARGET_DIR, default
/work/scratch/bench-target), and is not part of CI. Every bridge runs as in bench.py:
synchronous=FULL (PostgreSQL: synchronous_commit=on), signature auth, 2 HTTP workers.

ingest  Durable ingest at 32 and 256 connections in all, split evenly over the replicas (one
        wrk per replica at once, each with its own pre-signed events). Per configuration
        (sqlite, pg×1, pg×2, pg×3) and round: accepted events/s, p99, the bridges' CPU per
        accepted event and the PostgreSQL server's. Every 202 is checked to be a row.
drain   A backlog of DRAIN_EVENTS distinct emails (posted with delivery off, then copied for each
        configuration) drained to a zero-latency sandbox, delivery.concurrency 32 per bridge:
        guests/s, and one create per email.
scale   PostgreSQL with 1k and 1M delivered rows (SQL-seeded) beside 2,000 due rows: the drain of
        those 2,000 (each claim reads the due and in-flight indexes beside the whole table) and
        GET /status latency (wrk, one connection). Ratio 1M / 1k.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import bench as harness
from bench import BENCH, CLK_TCK, BenchFailed, Process, free_port, wait_200

QUICK = "--quick" in sys.argv


def server() -> str:
    url = os.environ.get("TEST_POSTGRES_URL", "").rstrip("/")
    if not url:
        raise SystemExit("TEST_POSTGRES_URL is not set: run under scripts/with-postgres.sh")
    return url


def psql(database: str, sql: str) -> str:
    run = subprocess.run(["psql", f"{server()}/{database}", "-v", "ON_ERROR_STOP=1", "-Atqc", sql],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise BenchFailed(f"psql on {database}: {run.stderr.strip()}")
    return run.stdout.strip()


def server_ticks() -> int:
    """CPU ticks (user + system) of every PostgreSQL server process: its share of the work."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text:
            fields = text.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks


def fresh_database(name: str, template: str | None = None) -> str:
    psql("postgres", f"DROP DATABASE IF EXISTS {name}")
    psql("postgres", f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    return f"{server()}/{name}"


class Config:
    """One backend configuration: a SQLite file, or `replicas` bridges on one PostgreSQL database."""

    def __init__(self, name: str, replicas: int, work: Path):
        self.name, self.replicas, self.work = name, replicas, work
        self.sqlite = work / f"{name}.sqlite" if replicas == 0 else None

    def env(self, b: harness.Bench, port: int, database: str | None, **settings: str) -> dict[str, str]:
        if self.sqlite is not None:
            return b.bridge_env(self.sqlite, port, **settings)
        return b.bridge_env(self.work / "unused.sqlite", port, database__url=f"{server()}/{database}", **settings)

    def start(self, b: harness.Bench, database: str | None, tag: str, **settings: str) -> list[tuple[Process, str]]:
        bridges = []
        for n in range(max(self.replicas, 1)):
            port = free_port()
            started = time.monotonic_ns()
            process = Process([b.bin.bridge, "serve"], b.results / f"{self.name}-{tag}-{n}.log",
                              self.env(b, port, database, **settings))
            base = f"http://127.0.0.1:{port}"
            wait_200(f"{base}/health/ready", started, process)
            bridges.append((process, base))
        return bridges

    def rows(self, database: str | None, where: str = "true") -> int:
        sql = f"SELECT count(*) FROM outbox WHERE {where}"
        return int(harness.query(self.sqlite, sql) if self.sqlite else psql(database, sql))


def configs(work: Path) -> list[Config]:
    return [Config("sqlite", 0, work), Config("pg1", 1, work), Config("pg2", 2, work), Config("pg3", 3, work)]


def stop(b: harness.Bench, bridges: list[tuple[Process, str]]) -> None:
    for process, _ in bridges:
        b.stop_cleanly(process)


# --- ingest -----------------------------------------------------------------------------------

def part_ingest(b: harness.Bench) -> dict:
    k, work, results = b.k, b.work, {}
    for conns in k.connections:
        for round_ in range(1, k.rounds + 1):
            for config in configs(work):
                database = None if config.sqlite else fresh_database(f"ingest_{config.name}").rsplit("/", 1)[1]
                if config.sqlite:
                    harness.remove_db(config.sqlite)
                bridges = config.start(b, database, f"ingest-c{conns}-r{round_}")
                per = max(conns // len(bridges), 1)
                outs, lines = [], [None] * len(bridges)
                for n, _ in enumerate(bridges):
                    events = work / f"{config.name}-{n}.tsv"
                    harness.gen_signed(events, k.events // len(bridges) + 1000, f"{config.name}{n}c{conns}r{round_}")
                    outs.append(events)
                before = [p.cpu_ticks() for p, _ in bridges]
                server_before = server_ticks()

                def load(n: int) -> None:
                    _, base = bridges[n]
                    lines[n] = harness.wrk(["wrk", "-t", str(k.threads), "-c", str(per), "-d", k.duration, "--latency",
                                            "-s", str(BENCH / "ingest.lua"), f"{base}/webhooks/contacts", "--",
                                            str(outs[n]), str(k.threads)],
                                           b.results / f"ingest-{config.name}-{n}-c{conns}-r{round_}.txt")

                threads = [threading.Thread(target=load, args=(n,)) for n in range(len(bridges))]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                if any(line is None for line in lines):
                    raise BenchFailed(f"a wrk run failed for {config.name}")
                ticks = sum(p.cpu_ticks() - t0 for (p, _), t0 in zip(bridges, before))
                server = server_ticks() - server_before if config.sqlite is None else 0
                accepted = sum(int(line["expected"]) for line in lines)
                bad = sum(int(line["other"]) for line in lines)
                if any(line["wrapped"] != "0" for line in lines):
                    raise BenchFailed(f"{config.name} c{conns}: the event list wrapped (duplicates sent); "
                                      "raise BENCH_EVENTS")
                rps = sum(float(line["rps"]) for line in lines)
                p99 = max(int(line["p99_us"]) for line in lines)
                time.sleep(0.5)
                rows = config.rows(database)
                stop(b, bridges)
                if rows < accepted:
                    raise BenchFailed(f"{config.name}: {rows} rows for {accepted} 202s")
                point = results.setdefault((config.name, conns),
                                           {"rps": [], "p99": [], "cpu_us": [], "server_us": [], "bad": 0})
                point["rps"].append(rps)
                point["p99"].append(p99)
                point["cpu_us"].append(ticks / CLK_TCK / max(accepted, 1) * 1e6)
                point["server_us"].append(server / CLK_TCK / max(accepted, 1) * 1e6)
                point["bad"] += bad
                harness.log(f"ingest {config.name:<6} c{conns:<3} r{round_}: {rps:>8.0f} events/s  p99 {p99 / 1000:.1f} ms  "
                            f"CPU {ticks / CLK_TCK / max(accepted, 1) * 1e6:.0f} us/event (PostgreSQL "
                            f"{server / CLK_TCK / max(accepted, 1) * 1e6:.0f})  rows {rows} >= 202s {accepted}")
                for events in outs:
                    events.unlink()
    return results


# --- drain ------------------------------------------------------------------------------------

def seed_backlog(b: harness.Bench, config: Config, database: str | None, events: Path) -> None:
    bridges = config.start(b, database, "seed")
    acked = harness.post_events(bridges[0][1], events)
    stop(b, bridges)
    if acked != int(events.read_text().count("\n")):
        raise BenchFailed(f"{config.name}: only {acked} events acknowledged while seeding")


def part_drain(b: harness.Bench) -> dict:
    n = 2000 if QUICK else int(os.environ.get("DRAIN_EVENTS", "10000"))
    events = b.work / "backlog.tsv"
    harness.gen_signed(events, n, "drain")
    sqlite_seed, pg_seed = Config("sqlite", 0, b.work), Config("pg1", 1, b.work)
    harness.remove_db(sqlite_seed.sqlite)
    seed_backlog(b, sqlite_seed, None, events)
    fresh_database("drain_seed")
    seed_backlog(b, pg_seed, "drain_seed", events)
    results = {}
    for config in configs(b.work):
        database = None
        if config.sqlite:
            harness.copy_db(sqlite_seed.sqlite, b.work / "drain-copy.sqlite")
            config.sqlite = b.work / "drain-copy.sqlite"
        else:
            database = fresh_database(f"drain_{config.name}", template="drain_seed").rsplit("/", 1)[1]
        sandbox, url = harness.start_sandbox(b, f"drain-{config.name}", 0)
        started = time.monotonic_ns()
        bridges = config.start(b, database, "drain", delivery__enabled="true", delivery__concurrency="32",
                               delivery__max_creates_per_hour="0", tallyfy__base_url=url,
                               tallyfy__org_id="demo-org", tallyfy__token="sandbox-token")
        drain_s = harness.wait_drained(f"{bridges[0][1]}/status", started, n)
        ticks = sum(p.cpu_ticks() for p, _ in bridges)
        check = harness.verify_sandbox(url, n)
        stop(b, bridges)
        sandbox.stop()
        results[config.name] = {"guests_s": n / drain_s, "cpu_us": ticks / CLK_TCK / n * 1e6, "check": check}
        harness.log(f"drain  {config.name:<6} {n / drain_s:>8.0f} guests/s ({drain_s:.1f} s)  "
                    f"CPU {ticks / CLK_TCK / n * 1e6:.0f} us/guest  {check}")
    events.unlink()
    return {"events": n, "points": results}


# --- scale ------------------------------------------------------------------------------------

SEED_DELIVERED = """INSERT INTO outbox (source, event_id, email, payload, state, attempts, next_attempt_at,
    received_at, updated_at, delivered_at, guest_id)
SELECT 'canonical', 'old-' || i, 'old' || i || '@example.com', '{{}}', 'delivered', 1, 0,
    {now} - i, {now} - i, {now} - i, 'g' || i
FROM generate_series(1, {size}) AS i"""


def part_scale(b: harness.Bench) -> dict:
    sizes = [1000, 100_000] if QUICK else [1000, 1_000_000]
    due = 2000
    events = b.work / "due.tsv"
    harness.gen_signed(events, due, "due")
    config, results = Config("pg1", 1, b.work), {}
    for size in sizes:
        name = f"scale_{size}"
        fresh_database(name)
        bridges = config.start(b, name, f"scale-{size}-migrate")  # migrates
        stop(b, bridges)
        started = time.monotonic()
        psql(name, SEED_DELIVERED.format(now=int(time.time() * 1000) - 86_400_000, size=size))
        psql(name, "SELECT compact_counts()")
        psql(name, "ANALYZE")
        harness.log(f"seeded {size} delivered rows in {time.monotonic() - started:.0f} s")
        seed_backlog(b, config, name, events)
        bridges = config.start(b, name, f"scale-{size}-status")
        status = harness.wrk(["wrk", "-t", "1", "-c", "1", "-d", "3s" if QUICK else "5s", "--latency",
                              "-s", str(BENCH / "hello.lua"), f"{bridges[0][1]}/status"],
                             b.results / f"status-{size}.txt")
        stop(b, bridges)
        sandbox, url = harness.start_sandbox(b, f"scale-{size}", 0)
        started_ns = time.monotonic_ns()
        bridges = config.start(b, name, f"scale-{size}-drain", delivery__enabled="true", delivery__concurrency="32",
                               delivery__max_creates_per_hour="0", tallyfy__base_url=url,
                               tallyfy__org_id="demo-org", tallyfy__token="sandbox-token")
        drain_s = harness.wait_drained(f"{bridges[0][1]}/status", started_ns, size + due)
        harness.verify_sandbox(url, due)
        stop(b, bridges)
        sandbox.stop()
        results[size] = {"status_p50_ms": int(status["p50_us"]) / 1000, "status_p99_ms": int(status["p99_us"]) / 1000,
                         "status_rps": float(status["rps"]), "drain_guests_s": due / drain_s}
        harness.log(f"scale  {size:>8} rows: /status p50 {results[size]['status_p50_ms']:.2f} ms, "
                    f"drain of {due}: {due / drain_s:.0f} guests/s")
    events.unlink()
    return {"due": due, "sizes": results}


# --- report -----------------------------------------------------------------------------------

def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def report(b: harness.Bench, r: dict, command: str, took_s: float) -> str:
    k = b.k
    out = ["## PostgreSQL: ingest, drain and scale vs SQLite, and 1-3 replicas", "",
           f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
           f"({harness.mmss(took_s)}); {len(os.sched_getaffinity(0))} CPUs shared by the server, the bridges and "
           "the clients; PostgreSQL 15 on loopback (`scripts/with-postgres.sh`: fsync on, synchronous_commit on). "
           "Ratios are to SQLite (one bridge) in the same run; medians of the rounds.", ""]
    ingest = r["ingest"]
    out += [f"### Durable ingest ({k.rounds} interleaved rounds of {k.duration}; connections split over the replicas)", "",
            "| backend | connections | events/s | vs SQLite | p99 (worst replica) | bridge CPU per event | "
            "PostgreSQL server CPU per event | non-2xx |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for conns in k.connections:
        base = median(ingest[("sqlite", conns)]["rps"])
        for config in configs(b.work):
            p = ingest[(config.name, conns)]
            out.append(f"| {config.name} | {conns} | {median(p['rps']):.0f} | {median(p['rps']) / base:.2f} | "
                       f"{median(p['p99']) / 1000:.1f} ms | {median(p['cpu_us']):.0f} µs | "
                       f"{median(p['server_us']):.0f} µs | {p['bad']} |")
    drain = r["drain"]
    base = drain["points"]["sqlite"]["guests_s"]
    out += ["", f"### Backlog drain ({drain['events']} events, zero-latency sandbox, concurrency 32 per bridge)", "",
            "| backend | guests/s | vs SQLite | bridge CPU per guest | sandbox check |", "|---|---:|---:|---:|---|"]
    for name, p in drain["points"].items():
        out.append(f"| {name} | {p['guests_s']:.0f} | {p['guests_s'] / base:.2f} | {p['cpu_us']:.0f} µs | {p['check']} |")
    scale = r["scale"]
    sizes = sorted(scale["sizes"])
    small, big = scale["sizes"][sizes[0]], scale["sizes"][sizes[-1]]
    out += ["", f"### Scale on PostgreSQL ({scale['due']} due rows beside N delivered ones)", "",
            "| delivered rows | `/status` p50 | `/status` p99 | drain of the due rows |", "|---:|---:|---:|---:|"]
    for size in sizes:
        p = scale["sizes"][size]
        out.append(f"| {size:,} | {p['status_p50_ms']:.2f} ms | {p['status_p99_ms']:.2f} ms | "
                   f"{p['drain_guests_s']:.0f} guests/s |")
    out += ["", f"Ratio {sizes[-1]:,} / {sizes[0]:,}: `/status` p50 ×{big['status_p50_ms'] / small['status_p50_ms']:.2f}, "
                f"drain rate ×{big['drain_guests_s'] / small['drain_guests_s']:.2f}."]
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one short round, small sizes: checks the harness")
    parser.add_argument("--skip-build", action="store_true", help="use the binaries already built")
    parser.add_argument("--out", type=Path, help="where to write the section (default: stdout)")
    args = parser.parse_args()
    server()
    command = " ".join(["bench/postgres.py", *sys.argv[1:]])
    started = time.monotonic()
    knobs = harness.Knobs(quick=args.quick)
    harness.ensure_tools()
    target = Path(os.environ.setdefault("CARGO_TARGET_DIR", "/work/scratch/bench-target"))
    binaries, _ = harness.build(target, args.skip_build, ["pacing"])  # the bridge alone
    work = Path(tempfile.mkdtemp(prefix="tallyfy-bench-pg."))
    b = harness.Bench(knobs, binaries, work)
    try:
        results = {"ingest": part_ingest(b), "drain": part_drain(b), "scale": part_scale(b)}
    except BenchFailed as failure:
        harness.log(f"FAILED: {failure}")
        return 1
    finally:
        Process.stop_all()
    text = report(b, results, command, time.monotonic() - started)
    if args.out:
        args.out.write_text(text)
        harness.log(f"wrote {args.out}; raw outputs in {b.results}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
