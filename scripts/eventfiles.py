"""The sample events of events/ and their headers files, for the scripts (standard library only).

An event `events/<name>.json` is POSTed with the headers of `events/<name>.headers` when that
file exists (one `name: value` per line, blank lines skipped, names lowercased), otherwise with
`content-type: application/json`. The tests and benches read these files with the same rules
(tests/common/fixtures.rs, `read_headers`).
"""
import os

DEFAULT_HEADERS = {"content-type": "application/json"}


def headers_for(path):
    """The headers to POST the event file `path` with."""
    side = os.path.splitext(path)[0] + ".headers"
    if not os.path.exists(side):
        return dict(DEFAULT_HEADERS)
    headers = {}
    with open(side) as f:
        for line in f:
            if not line.strip():
                continue
            if ":" not in line:
                raise ValueError(f"{side}: not `name: value`: {line.rstrip()}")
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return headers


def read_event(path):
    """The body (bytes) of the event file `path` and its headers."""
    with open(path, "rb") as f:
        return f.read(), headers_for(path)
