#!/usr/bin/env python3
"""Checks generated JSON files against the Google Cloud API resources they are meant to be.

Usage: check_gcp_resources.py KIND FILE...   (KIND: dashboard, alert-policy, log-metric)

Each file is parsed, with the proto3 JSON mapping the REST APIs use, into the message of
Google's own client library: google.monitoring.dashboard.v1.Dashboard
(google-cloud-monitoring-dashboards), google.monitoring.v3.AlertPolicy
(google-cloud-monitoring), google.logging.v2.LogMetric (google-cloud-logging). An unknown
field, an enum value the API does not define or a value of the wrong type is an error
(ignore_unknown_fields=False). scripts/install-tools.sh installs the pinned libraries into
.venv-tools; tests/ops.rs runs this with .venv-tools/bin/python.
"""
import sys

from google.cloud.logging_v2.types import LogMetric
from google.cloud.monitoring_dashboard_v1.types import Dashboard
from google.cloud.monitoring_v3.types import AlertPolicy

KINDS = {"dashboard": Dashboard, "alert-policy": AlertPolicy, "log-metric": LogMetric}


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] not in KINDS:
        print(__doc__, file=sys.stderr)
        return 2
    message = KINDS[sys.argv[1]]
    failed = 0
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            message.from_json(text, ignore_unknown_fields=False)
        except Exception as e:  # json_format.ParseError and friends
            print(f"{path}: not a valid {message.__name__}: {e}", file=sys.stderr)
            failed += 1
        else:
            print(f"{path}: valid {message.__name__}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
