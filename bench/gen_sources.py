#!/usr/bin/env python3
"""Pre-generates CRM webhook requests (Pipedrive, HubSpot, Salesforce) for bench/sources.lua.

usage: gen_sources.py KIND OUT COUNT BATCH TAG START CREDENTIAL...

  KIND        pipedrive   CREDENTIAL = USERNAME PASSWORD (HTTP Basic); BATCH must be 1
              hubspot     CREDENTIAL = CLIENT_SECRET WEBHOOK_URL (signature v3)
              salesforce  CREDENTIAL = ORGANIZATION_ID ENDPOINT_TOKEN (BATCH at most 100)
  COUNT       requests to write; BATCH events per request
  TAG         goes into every email, so two points never share one
  START       number of the first event: events are START .. START + COUNT * BATCH - 1, so
              calls with disjoint ranges never repeat a dedup key (Pipedrive person id, HubSpot
              portalId + objectId, Salesforce notification Id) within one bridge database

One request per line, tab-separated: path, then headers as "Name: value", the body last.
HubSpot requests carry "now" as X-HubSpot-Request-Timestamp and the bridge allows 5 minutes,
so run this right before the load.
"""
import base64
import hashlib
import hmac
import json
import sys
import time

PD_COMPANY_ID = 7654321
HS_PORTAL_ID = 62515
SF_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
    ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
    '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
    "<OrganizationId>{org}</OrganizationId><ActionId>04k5e000000XyZaAAK</ActionId>"
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


def compact(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def pipedrive(count, batch, tag, start, creds):
    username, password = creds
    if batch != 1:
        sys.exit("gen_sources.py: a Pipedrive webhook carries one event (BATCH must be 1)")
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    headers = ["Content-Type: application/json", f"Authorization: Basic {basic}"]
    for n in range(start, start + count):
        body = compact(
            {
                "v": 1,
                "event": "added.person",
                "retry": 0,
                "previous": None,
                "meta": {"v": 1, "action": "added", "object": "person", "id": n,
                         "company_id": PD_COMPANY_ID, "user_id": 1},
                "current": {
                    "id": n,
                    "name": "Grace Hopper",
                    "first_name": "Grace",
                    "last_name": "Hopper",
                    "email": [{"label": "work", "value": f"pd-{tag}-{n}@example.com", "primary": True}],
                    "phone": [{"value": "+1 415 555 0100", "primary": True}],
                    "org_id": 42,
                    "org_name": "Example Navy Labs",
                },
            }
        )
        yield "/webhooks/pipedrive", headers, body


def hubspot(count, batch, tag, start, creds):
    secret, url = creds
    ts = str(int(time.time() * 1000))
    for first in range(start, start + count * batch, batch):
        body = compact(
            [
                {"eventId": n, "subscriptionId": 1, "portalId": HS_PORTAL_ID, "appId": 1,
                 "occurredAt": 1767225600000, "subscriptionType": "contact.creation",
                 "attemptNumber": 0, "objectId": n, "changeFlag": "NEW", "changeSource": "CRM_UI"}
                for n in range(first, first + batch)
            ]
        )
        mac = hmac.new(secret.encode(), f"POST{url}{body}{ts}".encode(), hashlib.sha256).digest()
        headers = [
            "Content-Type: application/json",
            f"X-HubSpot-Request-Timestamp: {ts}",
            f"X-HubSpot-Signature-v3: {base64.b64encode(mac).decode()}",
        ]
        yield "/webhooks/hubspot", headers, body


def salesforce(count, batch, tag, start, creds):
    org, token = creds
    if not 1 <= batch <= 100:
        sys.exit("gen_sources.py: an outbound message carries 1 to 100 notifications")
    headers = ["Content-Type: text/xml; charset=utf-8"]
    head = SF_HEAD.format(org=org)
    for first in range(start, start + count * batch, batch):
        notes = "".join(SF_NOTIFICATION.format(n=n, tag=tag) for n in range(first, first + batch))
        yield f"/webhooks/salesforce/{token}", headers, head + notes + SF_TAIL


KINDS = {"pipedrive": (pipedrive, 2), "hubspot": (hubspot, 2), "salesforce": (salesforce, 2)}


def main() -> None:
    if len(sys.argv) < 7 or sys.argv[1] not in KINDS:
        sys.exit(__doc__)
    kind, out, count, batch, tag, start = sys.argv[1:7]
    make, ncreds = KINDS[kind]
    creds = sys.argv[7:]
    if len(creds) != ncreds:
        sys.exit(f"gen_sources.py: {kind} needs {ncreds} credential argument(s)")
    with open(out, "w", encoding="ascii") as f:
        for path, headers, body in make(int(count), int(batch), tag, int(start), creds):
            assert "\t" not in body and "\n" not in body
            f.write("\t".join([path, *headers, body]) + "\n")


if __name__ == "__main__":
    main()
