#!/usr/bin/env python3
"""Seeds the local BigQuery emulator from events/seed.json, idempotently.

Every dataset named in the seed file is deleted (with its contents) and created again, so
running the seed twice never doubles a sum. Uses only the standard library and the emulator's
REST API. Environment: BIGQUERY_EMULATOR_HOST (default 127.0.0.1:9050), BIGQUERY_PROJECT_ID
(default test-project).
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

HOST = os.environ.get("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9050").removeprefix("http://").rstrip("/")
PROJECT = os.environ.get("BIGQUERY_PROJECT_ID", "test-project")
BASE = f"http://{HOST}/bigquery/v2/projects/{PROJECT}"
SEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "events", "seed.json")


def call(method, path, body=None, ok_missing=False):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
            return json.loads(text) if text else {}
    except urllib.error.HTTPError as e:
        if ok_missing and e.code == 404:
            return {}
        sys.exit(f"seed: {method} {path} failed: HTTP {e.code} {e.read().decode()[:500]}")


def wait_ready():
    for _ in range(60):
        try:
            urllib.request.urlopen(f"http://{HOST}/readyz", timeout=2)
            return
        except Exception:
            time.sleep(0.5)
    sys.exit(f"seed: the emulator at {HOST} is not ready (start it with 'make local-up')")


def main():
    wait_ready()
    with open(SEED) as f:
        seed = json.load(f)
    datasets = sorted({t["dataset"] for t in seed["tables"]})
    for ds in datasets:
        call("DELETE", f"/datasets/{ds}?deleteContents=true", ok_missing=True)
        call("POST", "/datasets", {"datasetReference": {"projectId": PROJECT, "datasetId": ds}, "location": "US"})
    for t in seed["tables"]:
        fields = [{"name": n, "type": ty, "mode": "NULLABLE"} for n, ty in t["schema"].items()]
        call("POST", f"/datasets/{t['dataset']}/tables", {
            "tableReference": {"projectId": PROJECT, "datasetId": t["dataset"], "tableId": t["table"]},
            "schema": {"fields": fields},
        })
        if t["rows"]:
            r = call("POST", f"/datasets/{t['dataset']}/tables/{t['table']}/insertAll",
                     {"rows": [{"json": row} for row in t["rows"]]})
            if r.get("insertErrors"):
                sys.exit(f"seed: insert into {t['dataset']}.{t['table']} failed: {r['insertErrors']}")
    print(f"seeded {len(seed['tables'])} tables in {len(datasets)} datasets of {PROJECT} at {HOST}")


if __name__ == "__main__":
    main()
