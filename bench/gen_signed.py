#!/usr/bin/env python3
"""Pre-generates signed Standard Webhooks contact events for bench/ingest.lua.

usage: gen_signed.py OUT COUNT PREFIX SECRET

One line per request, tab-separated: webhook-id, webhook-timestamp, webhook-signature, body.
Every event has its own webhook-id and its own email. The signature is the Standard Webhooks
v1 scheme: base64(HMAC-SHA256(base64decode(secret minus "whsec_"), f"{id}.{ts}.{body}")).
All timestamps are "now", so run this right before the load (the bridge allows 5 minutes).
"""
import base64
import hashlib
import hmac
import json
import sys
import time

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Linus"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Torvalds"]
ZONES = ["Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Sydney", "Europe/Berlin"]
COMPANIES = ["Acme Widgets Ltd", "Globex Corporation", "Initech", "Umbrella Health", "Stark Industries"]


def main() -> None:
    out, count, prefix, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    key = base64.b64decode(secret.removeprefix("whsec_"))
    ts = str(int(time.time()))
    with open(out, "w", encoding="ascii") as f:
        for n in range(count):
            first, last = FIRST[n % 10], LAST[(n // 10) % 10]
            company = COMPANIES[n % 5]
            event_id = f"msg_{prefix}_{n:07d}"
            body = json.dumps(
                {
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
                },
                separators=(",", ":"),
            )
            mac = hmac.new(key, f"{event_id}.{ts}.{body}".encode(), hashlib.sha256).digest()
            sig = base64.b64encode(mac).decode()
            f.write(f"{event_id}\t{ts}\tv1,{sig}\t{body}\n")


if __name__ == "__main__":
    main()
