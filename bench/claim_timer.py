#!/usr/bin/env python3
"""Times the delivery worker's claim statement on a seeded database, for bench/run.sh.

usage: claim_timer.py DB DELIVERY_RS LIMIT REPS [SAMPLES_FILE]

Reads the `CLAIM` constant from src/outbox/delivery.rs (so it times the statement the bridge
runs now), binds it as `claim_due` does (?1 now, ?2 LIMIT, ?3 window = LIMIT * 8 + 64,
?4 lease end = now + 90 s) and runs `BEGIN; <claim>; ROLLBACK;` REPS times on one open
connection (after 5 warm-up runs), timing the statement with all its RETURNING rows fetched.
Nothing is changed. Prints one line:
`CLAIM limit=… reps=… rows=… median_us=… p90_us=… min_us=… max_us=… sqlite=…` and, on stderr,
the query plan. With SAMPLES_FILE, also writes every timing (µs) there, one per line.
"""
import re
import sqlite3
import statistics
import sys
import time


def main() -> None:
    db, source, limit, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    text = open(source, encoding="utf-8").read()
    found = re.search(r'const CLAIM: &str = "(.*?)";', text, re.S)
    if not found:
        sys.exit(f"no `const CLAIM: &str = \"...\";` in {source}")
    claim = found.group(1).replace('\\"', '"')
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    now = int(time.time() * 1000)
    params = (now, limit, limit * 8 + 64, now + 90_000)
    plan = conn.execute("EXPLAIN QUERY PLAN " + claim, params).fetchall()
    for row in plan:
        print("  plan:", row[-1], file=sys.stderr)
    samples, rows = [], 0
    for i in range(reps + 5):
        conn.execute("BEGIN")
        start = time.perf_counter_ns()
        rows = len(conn.execute(claim, params).fetchall())
        elapsed = time.perf_counter_ns() - start
        conn.execute("ROLLBACK")
        if i >= 5:
            samples.append(elapsed / 1000)
    if len(sys.argv) > 5:
        with open(sys.argv[5], "w", encoding="ascii") as f:
            f.writelines(f"{s:.1f}\n" for s in samples)
    samples.sort()
    p90 = samples[min(len(samples) - 1, int(round(0.9 * (len(samples) - 1))))]
    print(
        f"CLAIM limit={limit} reps={reps} rows={rows} median_us={statistics.median(samples):.0f} "
        f"p90_us={p90:.0f} min_us={samples[0]:.0f} max_us={samples[-1]:.0f} sqlite={sqlite3.sqlite_version}"
    )


if __name__ == "__main__":
    main()
