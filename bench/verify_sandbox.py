#!/usr/bin/env python3
"""Checks what a sandbox received after a delivery run, for bench/run.sh.

usage: verify_sandbox.py SANDBOX_URL EXPECTED

Reads /_sandbox/stats and /_sandbox/guests: exactly EXPECTED guests created, no create for an
email that already was a guest (`duplicate_create_attempts` = 0), and no guest with creates > 1
or duplicate_attempts > 0. Prints one line
`SANDBOX creates=… guests=… create_requests=… find_requests=… dup_attempts=… ok=1|0`
and exits 1 when a check fails.
"""
import json
import sys
import urllib.request


def get(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def main() -> None:
    base, expected = sys.argv[1].rstrip("/"), int(sys.argv[2])
    stats = get(f"{base}/_sandbox/stats")
    guests = get(f"{base}/_sandbox/guests")["data"]
    twice = sum(1 for g in guests if g.get("creates", 1) > 1 or g.get("duplicate_attempts", 0) > 0)
    requests = stats.get("requests", {})
    ok = (stats["creates"] == expected and len(guests) == expected and twice == 0
          and stats.get("duplicate_create_attempts", 0) == 0)
    print(f"SANDBOX creates={stats['creates']} guests={len(guests)} "
          f"create_requests={requests.get('create_guest', 0)} find_requests={requests.get('find_guest', 0)} "
          f"dup_attempts={stats.get('duplicate_create_attempts', 0)} guests_twice={twice} ok={int(ok)}")
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
