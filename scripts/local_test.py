#!/usr/bin/env python3
"""POSTs every sample event in events/ to the locally running function and shows, for each, the
HTTP status, the error body (if any) and the metric lines the function printed for it.

The function must run with `make local-run`, which copies its stdout (the metric lines) to
.local/metrics.jsonl. An event with an `<name>.expect` file must get the status written there;
files named invalid_* must be rejected with a 4xx; every other event must get 204. Exits 1 when an answer differs, so it doubles as a smoke test.
Usage: local_test.py [EVENT_FILE ...]   (default: all events/*.json except seed.json)
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
METRICS = os.path.join(ROOT, ".local", "metrics.jsonl")


def metric_lines_after(offset):
    if not os.path.exists(METRICS):
        return []
    with open(METRICS, "rb") as f:
        f.seek(offset)
        return [l.decode() for l in f.read().splitlines() if l.strip()]


def size():
    return os.path.getsize(METRICS) if os.path.exists(METRICS) else 0


def main():
    files = sys.argv[1:] or sorted(p for p in glob.glob(os.path.join(ROOT, "events", "*.json")) if not p.endswith("seed.json"))
    try:
        urllib.request.urlopen(URL + "healthz", timeout=2)
    except Exception:
        sys.exit(f"the function is not answering on {URL} - start it with 'make local-run' in another terminal")
    failures = 0
    for path in files:
        name = os.path.basename(path)
        body, headers = read_event(path)
        before = size()
        req = urllib.request.Request(URL, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
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
        print(f"\n=== {name}: HTTP {status} {'OK' if ok else 'UNEXPECTED (expected ' + want + ')'}")
        if text:
            try:
                print("    body: " + json.dumps(json.loads(text)))
            except ValueError:
                print("    body: " + text)
        for line in metric_lines_after(before):
            try:
                m = json.loads(line)
                print(f"    METRIC {m['name']} = {m['value']!r} {json.dumps(m['labels'], sort_keys=True)} @ {m['timestamp']}")
            except (ValueError, KeyError):
                print("    " + line)
    print(f"\n{len(files) - failures} as expected, {failures} unexpected")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
