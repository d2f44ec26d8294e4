#!/usr/bin/env python3
"""POSTs every sample event in events/ to the locally running function and shows, for each, the
HTTP status, the error body (if any) and the metric lines the function printed for it. Then it
replays two recorded runs of real orchestrators (events/lifecycle/: a Mage.ai run and an Airflow 3
run, one change record per POST, in recorded order) and shows their lifecycle metrics.

The function must run with `make local-run`, which copies its stdout (the metric lines) to
.local/metrics.jsonl. An event with an `<name>.expect` file must get the status written there;
files named invalid_* must be rejected with a 4xx; every other event must get 204. Exits 1 when an answer differs, so it doubles as a smoke test.
Each replay gets a stream name of its own (`stream_name` is part of every lifecycle fact's
identity), so that running this again counts the recorded runs again instead of finding their
facts already written.
Usage: local_test.py [EVENT_FILE ...]   (default: all events/*.json except seed.json, then the
recorded runs)
"""
import glob
import json
import os
import sys
import time
import urllib.error
import urllib.request

from eventfiles import read_event

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PORT = os.environ.get("PORT", "8080")
URL = f"http://127.0.0.1:{PORT}/"
# the file `make local-run` has the function copy its metric lines to (one per port)
METRICS = os.path.join(ROOT, os.environ.get("METRICS_FILE") or os.path.join(".local", "metrics.jsonl"))


def metric_lines_after(offset):
    if not os.path.exists(METRICS):
        return []
    with open(METRICS, "rb") as f:
        f.seek(offset)
        return [l.decode() for l in f.read().splitlines() if l.strip()]


def size():
    return os.path.getsize(METRICS) if os.path.exists(METRICS) else 0


RECORDED = [
    ("a Mage.ai run: 3 blocks, COMPLETED", "events/lifecycle/mage/success.datastream.jsonl"),
    ("an Airflow 3 run: a task failing once, retried, then succeeding", "events/lifecycle/airflow3/retry.datastream.jsonl"),
]


def post(body, headers):
    req = urllib.request.Request(URL, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def show(line):
    try:
        m = json.loads(line)
        unit = f" {m['unit']}" if m.get("unit") else ""
        kind = "" if m.get("metric_type", "gauge") == "gauge" else f"{m['metric_type']} "
        print(f"    METRIC {kind}{m['name']} = {m['value']!r}{unit} {json.dumps(m['labels'], sort_keys=True)} @ {m['timestamp']}")
    except (ValueError, KeyError):
        print("    " + line)


def replay(title, path):
    """POSTs every change of a recorded run, in order; returns 1 when any was not answered 204."""
    stream = f"local-test-{time.time_ns()}"
    records = [json.loads(l) for l in open(os.path.join(ROOT, path)) if l.strip()]
    before = size()
    bad = 0
    for r in records:
        r["stream_name"] = stream
        status, text = post(json.dumps(r).encode(), {"content-type": "application/json"})
        if status != 204:
            bad += 1
            print(f"    HTTP {status} {text}")
    time.sleep(0.2)
    print(f"\n=== recorded {title}: {len(records)} change records ({path}), {len(records) - bad} answered 204")
    for line in metric_lines_after(before):
        show(line)
    return 1 if bad else 0


def main():
    explicit = sys.argv[1:]
    files = explicit or sorted(p for p in glob.glob(os.path.join(ROOT, "events", "*.json")) if not p.endswith("seed.json"))
    try:
        urllib.request.urlopen(URL + "healthz", timeout=2)
    except Exception:
        sys.exit(f"the function is not answering on {URL} - start it with 'make local-run' in another terminal")
    failures = 0
    for path in files:
        name = os.path.basename(path)
        body, headers = read_event(path)
        before = size()
        status, text = post(body, headers)
        time.sleep(0.1)  # let tee flush the lines the function wrote before answering
        expect_file = path[: -len(".json")] + ".expect"
        if os.path.exists(expect_file):
            expected = int(open(expect_file).read().split()[0])
            ok, want = status == expected, str(expected)
        elif name.startswith("invalid_"):
            ok, want = 400 <= status < 500, "4xx"
        else:
            ok, want = status == 204, "204"
        failures += 0 if ok else 1
        verdict = ("(expected)" if status >= 400 else "OK") if ok else f"UNEXPECTED (expected {want})"
        print(f"\n=== {name}: HTTP {status} {verdict}")
        if text:
            try:
                print("    body: " + json.dumps(json.loads(text)))
            except ValueError:
                print("    body: " + text)
        for line in metric_lines_after(before):
            show(line)
    checked = len(files)
    if not explicit:
        for title, path in RECORDED:
            failures += replay(title, path)
            checked += 1
    print(f"\n{checked - failures} as expected, {failures} unexpected")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
