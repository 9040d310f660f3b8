#!/usr/bin/env python3
"""Waits until a bridge has drained its outbox, for bench/run.sh.

usage: drain.py STATUS_URL START_NS EXPECTED TIMEOUT_S

Polls STATUS_URL (the bridge's /status) every 100 ms until outbox.counts shows
queued + retrying + in_flight = 0 and delivered + failed >= EXPECTED (so a bridge that is still
starting is not taken for a drained one). START_NS is `date +%s%N` taken just before the bridge
was spawned. Prints one line:
`DRAIN elapsed_s=… delivered=… failed=… polls=…`; exits 1 on timeout.
"""
import json
import sys
import time
import urllib.request


def main() -> None:
    url, start_ns, expected, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    deadline = time.time() + timeout
    polls, counts = 0, {}
    while time.time() < deadline:
        polls += 1
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                counts = json.load(response)["outbox"]["counts"]
            waiting = counts["queued"] + counts["retrying"] + counts["in_flight"]
            if waiting == 0 and counts["delivered"] + counts["failed"] >= expected:
                elapsed = (time.time_ns() - start_ns) / 1e9
                print(f"DRAIN elapsed_s={elapsed:.3f} delivered={counts['delivered']} "
                      f"failed={counts['failed']} polls={polls}")
                return
        except (OSError, ValueError, KeyError):
            pass  # not listening yet
        time.sleep(0.1)
    sys.exit(f"not drained after {timeout} s: {counts}")


if __name__ == "__main__":
    main()
