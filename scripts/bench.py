#!/usr/bin/env python3
"""Runs every benchmark and writes BENCHMARKS.md (issue 6). Standard library only.

    python3 scripts/bench.py            # what `make bench` runs: full runs, about 10 minutes
    python3 scripts/bench.py --quick    # harness check only: few iterations, figures not meaningful
    python3 scripts/bench.py --render-only   # rewrite BENCHMARKS.md from the last results
    python3 scripts/bench.py --replay-only   # the replay benchmark alone; its section rewritten
    python3 scripts/bench.py --replay-only --render-only   # that section again from the last results

Steps: BigQuery emulator started if none answers on 127.0.0.1:$BQEMU_PORT (and stopped again at
the end), seeded; criterion micro-benchmarks (benches/decode_dispatch.rs, and decode plus lifecycle
fact derivation in benches/lifecycle_derive.rs); the Cloud Storage emulator installed
(scripts/install-gcs-emulator.sh); the whole-process benchmarks built, then the release binary
(`cargo build --locked --release`, as `make release`), then the whole-process benchmarks run against
that binary (benches/whole_process.rs; lifecycle-only events, memory after 1,000,000 records and
Datastream files in the Cloud Storage emulator in benches/lifecycle_process.rs); BENCHMARKS.md
rendered from their result files (target/criterion/**/estimates.json, target/bench/whole_process.json,
target/bench/lifecycle_process.json, under $CARGO_TARGET_DIR or target/); then the replay benchmark
(benches/replay.rs: the release binary replaying lifecycle records from a JSONL.gz file, issue 13)
and its section "## Replay" from target/bench/replay.json. Nothing in BENCHMARKS.md is typed by hand.
"""

import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = os.environ.get("BQEMU_PORT", "9050")
EMULATOR = f"127.0.0.1:{PORT}"
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
CRITERION = os.path.join(TARGET, "criterion")
RESULTS = os.path.join(TARGET, "bench", "whole_process.json")
REPLAY_RESULTS = os.path.join(TARGET, "bench", "replay.json")
BINARY = os.path.join(TARGET, "release", "pipeline-run-metrics")
# Target of issue 13: lifecycle-only records replayed per second on one core.
T_REPLAY = 100_000
OUT = os.path.join(ROOT, "BENCHMARKS.md")
GROUPS = ["decode_dispatch", "decode_only", "prepare_only", "decode_dispatch_emit"]

# Targets of issue 6 (2-core machine) and the Python reference's figures.
T_DISPATCH_US = 20.0
T_COLD_MS = 20.0
T_RSS_MIB = 20.0
T_EPS = 20_000
T_LATENCY_RATIO = 1.2
T_SERIES = 200
REFERENCE = {
    "cold": "about 0.8–1.2 s",
    "rss": "about 150 MB (two processes)",
    "eps": "about 530 events/s (one connection)",
}


def run(cmd, env=None, timeout=3600):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, timeout=timeout)


def out(cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def bench_executable(name):
    """Builds a benchmark target without running it; returns its executable."""
    cmd = ["cargo", "bench", "--locked", "--no-run", "--bench", name, "--message-format=json"]
    print("+", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True, timeout=3600)
    for line in r.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == name \
                and msg.get("executable"):
            return msg["executable"]
    raise SystemExit(f"cargo did not report an executable for the {name} benchmark")


def emulator_ready():
    try:
        with urllib.request.urlopen(f"http://{EMULATOR}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def machine():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    os_name = platform.system()
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    bqemu = out([os.path.join(ROOT, ".venv-bqemu", "bin", "python"), "-c",
                 "import importlib.metadata as m; print(m.version('bqemulator'))"])
    commit = out(["git", "rev-parse", "--short", "HEAD"])
    dirty = bool(out(["git", "status", "--porcelain", "--untracked-files=no"]))
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gib": mem_kib / 1024 / 1024,
        "kernel": platform.release(),
        "os": os_name,
        "rustc": out(["rustc", "-V"]),
        "bqemulator": bqemu or "unknown",
        "commit": (commit + (" + uncommitted changes" if dirty else "")) or "unknown",
    }


def criterion_estimate(group, bench_id):
    path = os.path.join(CRITERION, group, bench_id, "new", "estimates.json")
    try:
        with open(path) as f:
            e = json.load(f)
    except OSError:
        return None
    return {
        "median_us": e["median"]["point_estimate"] / 1000,
        "lo_us": e["median"]["confidence_interval"]["lower_bound"] / 1000,
        "hi_us": e["median"]["confidence_interval"]["upper_bound"] / 1000,
    }


def fmt_us(e):
    return "–" if e is None else f"{e['median_us']:.1f} µs"


def mib(kib):
    return kib / 1024


def status(ok):
    return "**met**" if ok else "**missed**"


def render(m, micro, w, started, duration, quick, load_before, load_after, lc=None):
    L = []
    a = L.append
    date = started.strftime("%Y-%m-%d %H:%M UTC")
    a("# Benchmarks")
    a("")
    took = "" if duration is None else f"; it took {duration / 60:.1f} min"
    a(f"Generated by `make bench` (`scripts/bench.py`) on {date}{took}. Do not edit by hand: run "
      "`make bench` again.")
    if quick:
        a("")
        a("> **Quick run** (`--quick`): few iterations, only to check the harness. The figures are not "
          "meaningful; run `make bench` for the published ones.")
    a("")

    # ----------------------------------------------------------------------------- figures
    cs = w["cold_start"]
    bo = w["builtin_only"]
    ec = w["emulator_cases"]["cases"]
    ql = w["query_latency"]
    sc = w["sink_calls"]
    dd = {k: v for k, v in micro["decode_dispatch"].items() if v}
    formats = ["pubsub_push_wrapped", "pubsub_push_unwrapped", "cloudevent_binary", "cloudevent_structured"]
    worst_id = max(dd, key=lambda k: dd[k]["median_us"])
    dd_ok = all(v["median_us"] <= T_DISPATCH_US for v in dd.values())
    cold = cs["first_204_ms_median"]
    rss10k = mib(bo["memory_after_10000"]["rss_kib"])
    eps16 = bo["c16"]["events_per_s"]
    eps1 = bo["c1"]["events_per_s"]
    c_http_ms = ec["c_approval_complete"]["c1"]["p50_us"] / 1000
    slowest = ql["slowest_query_alone_ms"]
    ratio_http = c_http_ms / slowest if slowest else float("inf")
    ratio_inproc = ql["event_inprocess_over_slowest_query"]
    inj = ql["injected"]
    series = sc["series"]
    upto200 = [s for s in series if s["series"] <= T_SERIES]
    sink_ok = all(s["stdout_write_calls"] == 1 and s["stdout_delivered_calls"] == 1 and s["gcm_calls"] == 1
                  for s in upto200)
    traced = sc.get("traced", {})
    if traced:
        sink_ok = sink_ok and all(t["stdout_writes_per_event"] == 1.0 for t in traced.values())

    a("## Targets")
    a("")
    a("| target (2-core machine) | measured | |")
    a("|---|---|---|")
    per_format = ", ".join(f"{k} {dd[k]['median_us']:.1f}" for k in formats if k in dd)
    a(f"| decode + dispatch ≤ {T_DISPATCH_US:.0f} µs per event | built-in only "
      f"{dd['builtin_only_running']['median_us']:.1f} µs; complete wrangling record per format (µs): {per_format}; "
      f"approval with all handlers {dd['approval_all_handlers']['median_us']:.1f} µs | "
      + ("**met**" if dd_ok else f"**missed** for events that run catalogue handlers (worst {worst_id}: "
         f"{dd[worst_id]['median_us'] / T_DISPATCH_US:.1f} × the target); met for the built-in handler alone"
         if dd["builtin_only_running"]["median_us"] <= T_DISPATCH_US else "**missed**") + " |")
    a(f"| cold start ≤ {T_COLD_MS:.0f} ms (exec → first 204, median of {cs['runs']}) | {cold:.1f} ms | "
      f"{status(cold <= T_COLD_MS)} |")
    a(f"| RSS ≤ {T_RSS_MIB:.0f} MiB after 10,000 events | {rss10k:.1f} MiB | {status(rss10k <= T_RSS_MIB)} |")
    eps_note = status(eps16 >= T_EPS) + " at concurrency 16"
    if eps1 < T_EPS:
        eps_note += f"; at concurrency 1: {eps1:,.0f}/s ({eps1 / T_EPS:.2f} × the target)"
    a(f"| ≥ {T_EPS:,} events/s for case (a) | {eps16:,.0f}/s at concurrency 16, {eps1:,.0f}/s at concurrency 1 | "
      f"{eps_note} |")
    a(f"| event latency ≤ {T_LATENCY_RATIO} × its slowest query (case c) | against the emulator: "
      f"{ratio_http:.2f} × over HTTP ({c_http_ms:.0f} ms / {slowest:.0f} ms), {ratio_inproc:.2f} × in-process; "
      f"against a warehouse that answers in parallel (injected latencies): {inj['event_over_slowest_query']:.2f} × | "
      + ("**met**" if ratio_http <= T_LATENCY_RATIO else
         f"**missed** against the emulator ({ratio_http:.2f} against {T_LATENCY_RATIO}); "
         + status(inj["event_over_slowest_query"] <= T_LATENCY_RATIO) + " with parallel query execution (see notes)")
      + " |")
    def calls_by_series(key):
        return ", ".join(f"{s['series']} → {s[key]}" for s in series)

    a(f"| exactly one sink call per event for up to {T_SERIES} series | stdout sink, write calls per event for "
      f"N series: {calls_by_series('stdout_write_calls')}; Cloud Monitoring sink, planned calls: "
      f"{calls_by_series('gcm_calls')}; real binary (strace), stdout writes per event: "
      + (", ".join(f"case {k} {t['stdout_writes_per_event']:.0f}" for k, t in sorted(traced.items())) or "not measured")
      + " | " + status(sink_ok) + " |")
    if lc is not None:
        L.extend(lifecycle_target_rows(lc))
    a("")
    a("Compared with the Python reference service (`mageai-monitoring`, its own figures on the same kind of "
      "machine):")
    a("")
    a("| | Python reference | this function |")
    a("|---|---|---|")
    a(f"| cold start | {REFERENCE['cold']} | {cold:.1f} ms |")
    a(f"| RSS | {REFERENCE['rss']} | {mib(bo['memory_at_start']['rss_kib']):.1f} MiB after start, "
      f"{rss10k:.1f} MiB after 10,000 events (one process) |")
    a(f"| events/s, case (a), one connection | {REFERENCE['eps']} | {eps1:,.0f} |")
    a("")

    # ----------------------------------------------------------------------------- machine, method
    a("## Machine")
    a("")
    a(f"* CPU: {m['cpu']}, {m['cores']} cores; memory {m['mem_gib']:.1f} GiB")
    a(f"* OS: {m['os']}, kernel {m['kernel']}; {m['rustc']}")
    a(f"* Code: commit {m['commit']}; release profile; binary {w['binary_bytes'] / 1e6:.1f} MB")
    a(f"* BigQuery emulator: bqemulator {m['bqemulator']} on {w['emulator_cases']['emulator']} (Python, same machine)")
    a(f"* Load average (1 min) before / after the run: {load_before} / {load_after}")
    a("")
    a("## Method")
    a("")
    a("* **Micro-benchmarks** (`benches/decode_dispatch.rs`, criterion; median of 50 samples, 3 s per "
      "benchmark): `envelope::decode` + `record::decode` + `Dispatcher::dispatch` with every handler of the "
      "catalogue, per delivery format (the complete wrangling record in each of the four formats), for the "
      "built-in handler alone (`nonmatching_running.json`) and for the approval event with all its handlers. "
      "BigQuery is an in-memory warehouse (every table present, one canned row per query), so no network I/O "
      "is timed. Breakdown: decode alone; `prepare` of the matching handlers alone (inputs validated, SQL and "
      "parameters built); and dispatch plus rendering through the stdout sink into `io::sink()`.")
    a("* **Whole process** (`benches/whole_process.rs`): the release binary as `make release` builds it "
      "(`cargo build --locked --release`), started with `HOST=127.0.0.1`, a "
      "free port, `BIGQUERY_EMULATOR_HOST`, `METRICS_BACKEND=stdout`. Load comes from a generator in the same "
      "bench binary: one thread, one keep-alive HTTP/1.1 connection per concurrent client, raw sockets, every "
      "latency kept (request written → response parsed). Client and server share the 2 cores. The environment "
      "is cleared, so every other setting keeps its default. Every request carries a distinct Datastream `uuid` "
      "(the last 12 hex digits replaced by a counter), so the function's de-duplication window never answers "
      "from memory and every event is processed.")
    a(f"  * cold start: clock started just before exec; the event `{cs['event']}` is sent in a loop (new "
      "connection after each refusal, 100 µs pause) until the first 204; median of "
      f"{cs['runs']} runs (page cache warm). Also exec → first 200 from `GET /healthz`.")
    a("  * memory: `VmRSS` / `VmHWM` of `/proc/<pid>/status`: after start (ready, no event yet), after "
      "10,000 events of case (a) at concurrency 16, at the end of the throughput runs.")
    a("  * case (a): `nonmatching_running.json` (a RUNNING run: only the built-in count handler matches; one "
      "point; no BigQuery call); stdout into `/dev/null`; `LOG_LEVEL=warn` (one JSON log line per event "
      "skipped), then the same at the default `info`.")
    a("  * case (b): against the seeded emulator, the reference's seed example `pre_filtered_payload.json` as "
      "is (it answers 400 by design: four entity handlers need historical-table variables it lacks; the other "
      "points are still written), and `wrangling_complete.json` (the same record with those variables; 204).")
    a("  * case (c): `approval_complete.json`, all ten matching handlers, against the emulator.")
    a("  * BigQuery requests per event = `tables_checked` + `queries` of the binary's own log line for the "
      "event (`LOG_LEVEL=info`); sink calls per event = `sink_calls` of the same line, and write syscalls on "
      "fd 1 counted with `strace -f -e trace=write,writev` on the release binary "
      + ("(done)" if sc.get("strace") else "(strace not installed: not done)")
      + "; for 1 to 400 series, in-process: write calls of the stdout sink (a counting writer) and the "
      "number of `projects.timeSeries.create` calls the Cloud Monitoring sink plans (`sink::gcm::plan_calls`).")
    a("  * event latency against its slowest query: every warehouse call of the approval event recorded "
      "in-process; each query then re-run alone against the emulator (median); ratio of the event latency "
      "(HTTP, concurrency 1, p50; and in-process dispatch, median) to the slowest query alone. The same event "
      "against a warehouse that only sleeps (existence checks 5 ms, each query 20–80 ms) shows the function's "
      "own concurrency without the emulator.")
    a("")

    # ----------------------------------------------------------------------------- results
    a("## Results")
    a("")
    a("### Decode plus dispatch, per event (criterion, median)")
    a("")
    a("| event | decode only | prepare only | decode + dispatch | decode + dispatch + stdout rendering |")
    a("|---|---|---|---|---|")
    for bid in formats + ["builtin_only_running", "approval_all_handlers"]:
        prep_id = "wrangling_complete" if bid in formats else bid
        a(f"| {bid} | {fmt_us(micro['decode_only'].get(bid))} | {fmt_us(micro['prepare_only'].get(prep_id))} | "
          f"{fmt_us(micro['decode_dispatch'].get(bid))} | {fmt_us(micro['decode_dispatch_emit'].get(bid))} |")
    a("")
    a("### Cold start and memory")
    a("")
    a(f"* exec → first 204: median **{cold:.2f} ms** (min {cs['first_204_ms_min']:.2f}, max "
      f"{cs['first_204_ms_max']:.2f}, {cs['runs']} runs); exec → `/healthz` 200: median "
      f"{cs['healthz_ms_median']:.2f} ms")
    a(f"* runs (ms): {', '.join(f'{x:.2f}' for x in cs['first_204_ms_runs'])}")
    a(f"* RSS after start: {mib(bo['memory_at_start']['rss_kib']):.1f} MiB (idle, ready); "
      f"{mib(cs['rss_after_first_event_kib_median']):.1f} MiB right after the first event (median)")
    a(f"* RSS after 10,000 events: **{rss10k:.1f} MiB** (peak {mib(bo['memory_after_10000']['hwm_kib']):.1f} MiB); "
      f"after {bo['events_at_end']:,} events: {mib(bo['memory_at_end']['rss_kib']):.1f} MiB "
      f"(peak {mib(bo['memory_at_end']['hwm_kib']):.1f} MiB)")
    nd = bo.get("no_dedup")
    if nd:
        a(f"* with the de-duplication window off (`{nd['env']}`), same load: "
          f"{mib(nd['memory_at_start']['rss_kib']):.1f} MiB after start, "
          f"{mib(nd['memory_after_10000']['rss_kib']):.1f} MiB after 10,000 events, "
          f"{mib(nd['memory_at_end']['rss_kib']):.1f} MiB after {nd['events_at_end']:,} events "
          f"(peak {mib(nd['memory_at_end']['hwm_kib']):.1f} MiB)")
    em = w["emulator_cases"]
    a(f"* cases (b) and (c) against the emulator, with up to 16 events in flight: RSS "
      f"{mib(em['memory_at_start']['rss_kib']):.1f} MiB at start, {mib(em['memory_at_end']['rss_kib']):.1f} MiB "
      f"at the end (peak {mib(em['memory_at_end']['hwm_kib']):.1f} MiB)")
    a("")
    a("### Throughput and latency")
    a("")
    a("| case | event | log level | concurrency | events | answers | events/s | p50 | p99 | max |")
    a("|---|---|---|---|---|---|---|---|---|---|")

    def lat(us):
        return f"{us / 1000:.1f} ms" if us >= 10_000 else f"{us:.0f} µs"

    def row(case, event, level, r):
        answers = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
        if r["errors"]:
            answers += f", errors: {r['errors']}"
        if r.get("time_limited"):
            answers += " (time limit reached)"
        a(f"| {case} | `{event}` | {level} | {r['concurrency']} | {r['events']:,} | {answers} | "
          f"{r['events_per_s']:,.0f} | {lat(r['p50_us'])} | {lat(r['p99_us'])} | {lat(r['max_us'])} |")

    row("a", bo["event"], "warn", bo["c1"])
    row("a", bo["event"], "warn", bo["c16"])
    row("a", bo["event"], "info", bo["info_c1"])
    row("a", bo["event"], "info", bo["info_c16"])
    for key, case in [("b_pre_filtered_seed", "b"), ("b_wrangling_complete", "b"), ("c_approval_complete", "c")]:
        row(case, ec[key]["event"], "info", ec[key]["c1"])
        row(case, ec[key]["event"], "info", ec[key]["c16"])
    a("")
    a("### BigQuery requests and sink calls per event")
    a("")
    a("| case | event | answer | handlers | points | existence checks | queries | BigQuery requests | "
      "sink calls (log) | stdout writes (strace) |")
    a("|---|---|---|---|---|---|---|---|---|---|")

    def one(vals):
        return "/".join(str(v) for v in vals) if vals else "–"

    strace_by_event = {t["event"]: t for t in traced.values()}
    a(f"| a | `{bo['event']}` | 204 | 1 (built-in) | 1 | 0 | 0 | 0 | 1 | "
      + (f"{strace_by_event[bo['event']]['stdout_writes_per_event']:.0f}" if bo["event"] in strace_by_event else "–")
      + " |")
    for key, case in [("b_pre_filtered_seed", "b"), ("b_wrangling_complete", "b"), ("c_approval_complete", "c")]:
        lg = ec[key]["log_c1"]
        bq = [c + q for c in lg["tables_checked"] for q in lg["queries"]]
        st = strace_by_event.get(ec[key]["event"])
        handlers = len(lg["handlers"].split(",")) if lg["handlers"] else 0
        writes = f"{st['stdout_writes_per_event']:.0f}" if st else "–"
        a(f"| {case} | `{ec[key]['event']}` | {one(lg['status'])} | {handlers} | {one(lg['points'])} | "
          f"{one(lg['tables_checked'])} | {one(lg['queries'])} | {one(bq)} | {one(lg['sink_calls'])} | {writes} |")
    a("")
    a("Every event of the concurrency-16 runs logged the same counts"
      + (" (checked)." if all(ec[k]["log_c16"]["tables_checked"] == ec[k]["log_c1"]["tables_checked"]
                              and ec[k]["log_c16"]["queries"] == ec[k]["log_c1"]["queries"]
                              and ec[k]["log_c16"]["sink_calls"] == ec[k]["log_c1"]["sink_calls"] for k in ec)
         else ": **no**, see target/bench/emulator_cases.stderr.jsonl."))
    a("")
    a("Sink calls for one event with N distinct series (in-process):")
    a("")
    a("| series | stdout sink: write calls | stdout sink: reported calls | Cloud Monitoring sink: planned calls |")
    a("|---|---|---|---|")
    for s in series:
        a(f"| {s['series']} | {s['stdout_write_calls']} | {s['stdout_delivered_calls']} | {s['gcm_calls']} |")
    a("")
    a("### Event latency against its slowest query (case c, `approval_complete.json`)")
    a("")
    a(f"* {ql['checks']} existence checks alone (ms, median of {ql['runs']}): "
      + ", ".join(f"{x:.1f}" for x in ql["check_alone_ms"]))
    a(f"* {ql['queries']} queries alone (ms, median of {ql['runs']}): "
      + ", ".join(f"{x:.1f}" for x in ql["query_alone_ms"])
      + f"; slowest **{slowest:.1f} ms**, sum {ql['sum_queries_alone_ms']:.1f} ms")
    a(f"* the {ql['queries']} queries sent together straight to the emulator (no dispatch): "
      f"{ql['queries_together_direct_median_ms']:.1f} ms")
    a(f"* event over HTTP (concurrency 1, p50): **{c_http_ms:.1f} ms = {ratio_http:.2f} × the slowest query**")
    a(f"* event in-process (dispatch only, median): {ql['event_inprocess_median_ms']:.1f} ms = {ratio_inproc:.2f} ×")
    a(f"* against injected latencies (checks {inj['check_ms']} ms, slowest query {inj['slowest_query_ms']} ms): "
      f"event {inj['event_median_ms']:.1f} ms = **{inj['event_over_slowest_query']:.2f} × the slowest query** "
      f"({inj['event_over_check_plus_slowest_query']:.2f} × check + slowest query, the critical path: a query "
      "waits for the existence checks of its tables)")
    a("")

    # ----------------------------------------------------------------------------- notes
    notes = []
    if not dd_ok:
        d_only = micro["decode_only"].get(worst_id)
        prep = micro["prepare_only"].get("wrangling_complete" if worst_id in formats else worst_id)
        text = (f"**Decode plus dispatch** misses {T_DISPATCH_US:.0f} µs for events that run catalogue handlers: "
                f"{min(v['median_us'] for k, v in dd.items() if k != 'builtin_only_running'):.0f}–"
                f"{max(v['median_us'] for v in dd.values()):.0f} µs, up to "
                f"{dd[worst_id]['median_us'] / T_DISPATCH_US:.1f} × the target; the built-in handler alone takes "
                f"{dd['builtin_only_running']['median_us']:.1f} µs.")
        if d_only and prep:
            rest = dd[worst_id]["median_us"] - d_only["median_us"] - prep["median_us"]
            text += (f" For {worst_id}: decode {d_only['median_us']:.1f} µs, preparing the plans "
                     f"{prep['median_us']:.1f} µs, running them against the in-memory warehouse and building the "
                     f"points {rest:.1f} µs (per-event context, shared results, rows to gauges).")
        q = ql["query_alone_ms"]
        if q:
            text += (f" These events then wait for their queries ({min(q):.0f}–{max(q):.0f} ms each against the "
                     "emulator), so this cost does not show in their latency; it bounds only the CPU per event.")
        notes.append(text)
    if cold > T_COLD_MS:
        notes.append(f"**Cold start** {cold:.1f} ms exceeds {T_COLD_MS:.0f} ms by {cold - T_COLD_MS:.1f} ms.")
    if rss10k > T_RSS_MIB:
        notes.append(f"**RSS** {rss10k:.1f} MiB exceeds {T_RSS_MIB:.0f} MiB by {rss10k - T_RSS_MIB:.1f} MiB.")
    if eps16 < T_EPS:
        notes.append(f"**Throughput** for case (a) at concurrency 16 is {eps16:,.0f}/s, "
                     f"{T_EPS - eps16:,.0f}/s below the target; the load generator shares the 2 cores.")
    if eps1 < T_EPS:
        notes.append(f"**Throughput at concurrency 1** ({eps1:,.0f}/s) is bounded by one request in flight: "
                     f"each round trip takes {bo['c1']['p50_us']:.0f} µs (p50), of which decode plus dispatch "
                     f"is {dd['builtin_only_running']['median_us']:.0f} µs; the rest is the loopback TCP round "
                     "trip, the HTTP stack and the load generator on the same cores. The target is met with "
                     "concurrent connections, as Pub/Sub push delivers.")
    if ratio_http > T_LATENCY_RATIO:
        together = ql["queries_together_direct_median_ms"]
        serial = together >= 0.8 * ql["sum_queries_alone_ms"]
        text = (f"**Event latency against the emulator** is {ratio_http:.2f} × its slowest query "
                f"(target {T_LATENCY_RATIO} ×, exceeded by {(ratio_http / T_LATENCY_RATIO - 1) * 100:.0f} %).")
        if serial:
            text += (f" The emulator runs concurrent queries one after the other: the {ql['queries']} queries "
                     f"sent together straight to it take {together:.0f} ms, close to the sum of their times alone "
                     f"({ql['sum_queries_alone_ms']:.0f} ms), not to the slowest ({slowest:.0f} ms).")
        else:
            text += (f" The queries sent together straight to the emulator take {together:.0f} ms "
                     f"(slowest alone {slowest:.0f} ms, sum {ql['sum_queries_alone_ms']:.0f} ms).")
        text += (f" With a warehouse that answers in parallel, as BigQuery does, the same event takes "
                 f"{inj['event_over_slowest_query']:.2f} × its slowest query, "
                 + ("within" if inj["event_over_slowest_query"] <= T_LATENCY_RATIO else "outside")
                 + f" the target; what remains is the existence check ({inj['check_ms']} ms here) that precedes "
                 "each query.")
        notes.append(text)
    rss_end = mib(bo["memory_at_end"]["rss_kib"])
    if rss_end > T_RSS_MIB:
        text = (f"**RSS keeps growing after 10,000 events**: {rss_end:.1f} MiB after {bo['events_at_end']:,} "
                f"events (peak {mib(bo['memory_at_end']['hwm_kib']):.1f} MiB), above {T_RSS_MIB:.0f} MiB.")
        if nd:
            nd_end = mib(nd["memory_at_end"]["rss_kib"])
            text += (f" With the de-duplication window off the same load ends at {nd_end:.1f} MiB, so "
                     + (f"about {rss_end - nd_end:.1f} MiB is the window's memory of answered events (it keeps up "
                        "to `DEDUP_CAPACITY` of them for `DEDUP_WINDOW_SECS`; every request here is a new event)."
                        if nd_end < rss_end - 1 else "the window is not what grows."))
        notes.append(text)
    if not sink_ok:
        notes.append("**Sink calls**: more than one call per event for up to 200 series; see the table above.")
    if lc is not None:
        L.extend(lifecycle_section(lc))
    a("## Notes")
    a("")
    if notes:
        for n in notes:
            a(f"* {n}")
    else:
        a("* Every target is met.")
    a("* `make test` has no timing assertion; under `cargo test --all-targets` the criterion benchmarks run "
      "once, untimed, `whole_process` does nothing, and `lifecycle_process` only checks its record generators "
      "in-process (every generated request and file line decodes and derives new facts).")
    a("* Raw results: `target/criterion/` (criterion) and `target/bench/whole_process.json`; the binary's logs "
      "of cases (b) and (c) in `target/bench/emulator_cases.stderr.jsonl`.")
    a("")
    return "\n".join(L)


# ----------------------------------------------------------------------------- lifecycle and files
# Issue 10 item 8 (run-lifecycle facts) and issue 11 item 6 (Datastream files in Cloud Storage):
# benches/lifecycle_derive.rs (criterion) and benches/lifecycle_process.rs (the release binary).
# Kept apart from the functions above so that other benchmarks merge without touching these.

LC_GROUPS = ["lifecycle_derive", "lifecycle_decode"]
LC_RESULTS = os.path.join(TARGET, "bench", "lifecycle_process.json")
T_LC_DERIVE_US = 15.0
T_LC_EPS = 40_000
T_LC_RSS_MIB = 32.0
T_LC_RECORDS = 1_000_000
T_FILE_S = 1.0
T_FILE_RECORDS = 10_000
T_FILE_RSS_MIB = 64.0
LC_LABELS = {
    "mage_pipeline_run": "Mage `pipeline_run`",
    "mage_block_run": "Mage `block_run`",
    "airflow2_dag_run": "Airflow 2 `dag_run`",
    "airflow2_task_instance": "Airflow 2 `task_instance`",
    "airflow3_dag_run": "Airflow 3 `dag_run`",
    "airflow3_task_instance": "Airflow 3 `task_instance`",
    "dagster_runs": "Dagster `runs`",
    "dagster_event_logs": "Dagster `event_logs`",
    "prefect_flow_run": "Prefect `flow_run`",
    "prefect_task_run": "Prefect `task_run`",
    "openlineage_run": "OpenLineage run event",
}


def lifecycle_criterion(extra):
    """Runs the criterion benchmarks of decode plus fact derivation."""
    for g in LC_GROUPS:
        shutil.rmtree(os.path.join(CRITERION, g), ignore_errors=True)
    run(["cargo", "bench", "--locked", "--bench", "lifecycle_derive", "--"] + extra)


def lifecycle_build():
    """Installs the Cloud Storage emulator and builds the process benchmark (before the release
    binary, for the reason given in main); returns its executable."""
    run([os.path.join(ROOT, "scripts", "install-gcs-emulator.sh")])
    return bench_executable("lifecycle_process")


def lifecycle_run(exe, extra, env):
    """Runs the process benchmark against the release binary."""
    if os.path.exists(LC_RESULTS):
        os.remove(LC_RESULTS)
    run([exe, "--bench", "--out", LC_RESULTS, "--emulator", EMULATOR,
         "--bin", os.path.join(TARGET, "release", "pipeline-run-metrics")] + extra, env=env)


def lifecycle_results():
    """The criterion estimates and the process results (None where missing)."""
    micro = {g: {} for g in LC_GROUPS}
    for g in LC_GROUPS:
        d = os.path.join(CRITERION, g)
        for bench_id in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            micro[g][bench_id] = criterion_estimate(g, bench_id)
    try:
        with open(LC_RESULTS) as f:
            proc = json.load(f)
    except OSError:
        proc = {}
    return {"micro": micro, "proc": proc}


def lc_figures(lc):
    """The figures the targets are judged on (None where not measured)."""
    derive = {k: v for k, v in lc["micro"]["lifecycle_derive"].items() if v}
    http = lc["proc"].get("http")
    files = lc["proc"].get("files")
    f = {"derive": derive, "http": http, "files": files}
    f["derive_worst"] = max(derive, key=lambda k: derive[k]["median_us"]) if derive else None
    if http:
        f["eps"] = http["c16"]["events_per_s"]
        f["rss_end_mib"] = mib(http["memory_at_end"]["rss_kib"])
        f["hwm_end_mib"] = mib(http["memory_at_end"]["hwm_kib"])
        f["records_end"] = http["records_at_end"]
    if files:
        ms = sorted(r["ms"] for r in files["ten_thousand"])
        f["file_ms_median"] = ms[len(ms) // 2]
        f["file_ms"] = [r["ms"] for r in files["ten_thousand"]]
        f["big"] = files["big"]
        f["big_peak_mib"] = max(mib(max(b["memory_at_end"]["hwm_kib"], b["rss_max_sampled_kib"]))
                                for b in files["big"]) if files["big"] else None
    return f


def size_text(n):
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def lifecycle_target_rows(lc):
    """Rows of the Targets table for issues 10.8 and 11.6."""
    f = lc_figures(lc)
    rows = []
    d = f["derive"]
    if d:
        worst = f["derive_worst"]
        ok = d[worst]["median_us"] <= T_LC_DERIVE_US
        verdict = status(ok) if ok else (f"**missed** (worst {LC_LABELS.get(worst, worst)}: "
                                         f"{d[worst]['median_us'] / T_LC_DERIVE_US:.2f} × the target)")
        rows.append(f"| decode + fact derivation ≤ {T_LC_DERIVE_US:.0f} µs per record (issue 10.8; per built-in "
                    f"profile, in-process fact memory) | " + ", ".join(
                        f"{LC_LABELS.get(k, k)} {v['median_us']:.1f}" for k, v in d.items()) + f" µs | {verdict} |")
    else:
        rows.append(f"| decode + fact derivation ≤ {T_LC_DERIVE_US:.0f} µs per record (issue 10.8) | not measured | – |")
    if f["http"]:
        eps = f["eps"]
        verdict = status(eps >= T_LC_EPS) + ("" if eps >= T_LC_EPS else f" ({eps / T_LC_EPS:.2f} × the target)")
        rows.append(f"| ≥ {T_LC_EPS:,} lifecycle-only events/s at concurrency 16 over HTTP (issue 10.8; in-process "
                    f"fact memory, every event a new run) | {eps:,.0f}/s | {verdict} |")
        rss = f["rss_end_mib"]
        full = f["records_end"] >= T_LC_RECORDS
        verdict = (status(rss <= T_LC_RSS_MIB) if full else "**not measured** at 1,000,000 (quick run)") + (
            "" if rss <= T_LC_RSS_MIB or not full else f" (+{rss - T_LC_RSS_MIB:.1f} MiB, {rss / T_LC_RSS_MIB:.1f} ×)")
        rows.append(f"| RSS ≤ {T_LC_RSS_MIB:.0f} MiB after {T_LC_RECORDS:,} distinct records (issue 10.8) | "
                    f"{rss:.1f} MiB after {f['records_end']:,} (peak {f['hwm_end_mib']:.1f} MiB) | {verdict} |")
    else:
        rows.append(f"| ≥ {T_LC_EPS:,} lifecycle-only events/s, RSS ≤ {T_LC_RSS_MIB:.0f} MiB after "
                    f"{T_LC_RECORDS:,} records (issue 10.8) | not measured | – |")
    if f["files"]:
        ms = f["file_ms_median"]
        verdict = status(ms <= T_FILE_S * 1000) + ("" if ms <= T_FILE_S * 1000 else
                                                   f" ({ms / (T_FILE_S * 1000):.2f} × the target)")
        rows.append(f"| {T_FILE_RECORDS:,}-record Datastream JSONL.gz file from the Cloud Storage emulator, "
                    f"notification → answer, ≤ {T_FILE_S:.0f} s (issue 11.6) | median {ms:.0f} ms of "
                    f"{len(f['file_ms'])} files | {verdict} |")
        big = f["big"]
        if big:
            peak = f["big_peak_mib"]
            sizes = ", ".join(f"{b['ext']} {size_text(b['object_bytes'])}: "
                              f"{mib(max(b['memory_at_end']['hwm_kib'], b['rss_max_sampled_kib'])):.1f} MiB"
                              for b in big)
            full = any(b["object_bytes"] >= 200e6 or b["plain_bytes"] >= 200e6 for b in big)
            verdict = (status(peak < T_FILE_RSS_MIB) if full else "**not measured** at 200 MB (quick run)") + (
                "" if peak < T_FILE_RSS_MIB or not full else f" (+{peak - T_FILE_RSS_MIB:.1f} MiB)")
            rows.append(f"| RSS < {T_FILE_RSS_MIB:.0f} MiB while reading a 200 MB file (issue 11.1, 11.6) | "
                        f"peak {sizes} | {verdict} |")
    else:
        rows.append(f"| {T_FILE_RECORDS:,}-record file ≤ {T_FILE_S:.0f} s, RSS < {T_FILE_RSS_MIB:.0f} MiB for "
                    "200 MB (issue 11.6) | not measured | – |")
    return rows


def lifecycle_section(lc):
    """The section of BENCHMARKS.md on the lifecycle and file benchmarks: method, results, notes."""
    f = lc_figures(lc)
    L = []
    a = L.append
    a("## Run lifecycle and Datastream files (issues 10.8 and 11.6)")
    a("")
    a("### Method")
    a("")
    a("* **Decode plus fact derivation** (`benches/lifecycle_derive.rs`, criterion; median of 50 samples, 3 s "
      "per benchmark): the bytes of one Datastream record (a JSONL line, as in a Datastream file or an "
      "unwrapped Pub/Sub push) → `serde_json` → `decode::record` → `Lifecycle::derive` against the in-process "
      "fact memory (`facts::memory::Memory`) at the binary's default capacity. For each built-in profile with a "
      "recording, its run table and its task table; the record is, of the table's changes in the recorded "
      "`success` scenario (`events/lifecycle/<orchestrator>/success.datastream.jsonl`), the one that derives the "
      "most points as a new row (for a run table its terminal change: started, finished, duration, queue wait), "
      "with the recording replayed into the memory first so that rows naming their pipeline through a parent "
      "row find it. **Every iteration is a new row**: its key "
      "columns and `uuid` are rewritten with a counter outside the timing, so every fact is reserved and its "
      "points built (a repeated record would only find its facts taken). The `openlineage` profile has no "
      "recording: a COMPLETE run event built from the spec, decoded by `decode::openlineage`. Breakdown: "
      "decode alone (`lifecycle_decode`).")
    a("* **Lifecycle-only events over HTTP** (`benches/lifecycle_process.rs`): the release binary, started as "
      "in the whole-process benchmark above (clean environment, `METRICS_BACKEND=stdout` into `/dev/null`, "
      "defaults otherwise: in-process fact memory, de-duplication window on), one Datastream record per POST "
      "as an unwrapped Pub/Sub push. The records rotate over the terminal run-table change of every recorded "
      "profile (" + (", ".join(f"`{e}`" for e in f["http"]["events"]) if f["http"] else "–") + "): tables "
      "that only lifecycle profiles read (no claim handler, no BigQuery request). Every request is a new "
      "run (key columns, `uuid` and message id carry a counter written in place). Load: the same one-thread "
      "generator as above, 16 keep-alive connections, on the same 2 cores. `LOG_LEVEL=warn` for the "
      "published figure, then the default `info`. Before that, a check run with stdout captured counts the "
      "`pipeline.run.started` and `pipeline.run.finished` lines and the BigQuery requests of the event log.")
    a(f"* **RSS after {T_LC_RECORDS:,} distinct records**: the same binary keeps receiving new runs at "
      "concurrency 16 after the throughput run until it has answered 1,000,000 records; `VmRSS` / `VmHWM` of "
      "`/proc/<pid>/status` at checkpoints. The fact memory is bounded: `FACT_MEMORY_CAPACITY` (default "
      "100,000) entries each for facts, row histories and dimensions, and `FACT_MEMORY_MIB` (default 8) for "
      "all of them; when a kind is full, its least recently used half is evicted and counted, and an evicted "
      "fact whose record is delivered again is counted again (src/facts/memory/). The de-duplication window likewise keeps at most `DEDUP_CAPACITY` "
      "(50,000) record identities for `DEDUP_WINDOW_SECS` (600 s).")
    fl = f["files"]
    a("* **Datastream files** (`benches/lifecycle_process.rs`): the Cloud Storage emulator "
      f"(`gcp-storage-emulator` {fl['emulator_version'] if fl else '?'} from PyPI, installed by "
      "`scripts/install-gcs-emulator.sh`, started `--in-memory` as the tests start it) and the release binary "
      "with `STORAGE_EMULATOR_HOST`. A file is generated in the benchmark, deterministically: the recorded "
      "Airflow 3 `dag_run` changes of `airflow3/success` "
      + (f"({fl['changes_per_run']} per run) " if fl else "")
      + "in order, run after run, every run a new row and every line its own `uuid`; Airflow's `dag_run` is "
      "read by the `airflow-3` lifecycle profile alone. It is uploaded as "
      "`ds/public_dag_run/2026/11/30/13/31/<n>_postgresql-cdc_….jsonl.gz` and announced by a bucket "
      "notification (Pub/Sub push, `OBJECT_FINALIZE`, JSON_API_V1); timed: notification sent → answer "
      "received (the object fetched through the JSON API, gunzipped, decoded line by line, dispatched, the "
      "points written to stdout, captured in a file). Each file is a new one of new runs, through one warm "
      "binary at `LOG_LEVEL=info`. Then a 200 MB file (plain JSONL of about 200 MB, then the same lines "
      "gzip-compressed), each read by a fresh binary with `EVENT_DEADLINE_SECS=900` (the default 50 s could "
      "cut it short on a loaded machine), its `VmRSS` sampled every 10 ms while it reads, and `VmHWM` at "
      "the end.")
    a("")
    a("### Results")
    a("")
    if f["derive"]:
        a("Decode plus fact derivation, per record (criterion, median; in parentheses the 95 % interval):")
        a("")
        a("| record | decode only | decode + derivation |")
        a("|---|---|---|")
        dec = lc["micro"]["lifecycle_decode"]
        for k, v in f["derive"].items():
            a(f"| {LC_LABELS.get(k, k)} | {fmt_us(dec.get(k))} | **{v['median_us']:.1f} µs** "
              f"({v['lo_us']:.1f}–{v['hi_us']:.1f}) |")
        a("")
    h = f["http"]
    if h:
        c = h["check"]
        a(f"* check run: {c['requests']} requests → answers {', '.join(f'{k}: {v}' for k, v in c['statuses'].items())}; "
          f"{c['started_points']} `pipeline.run.started` and {c['finished_points']} `pipeline.run.finished` lines; "
          f"{c['bigquery_requests']} BigQuery requests in the event log")
        for key, level in [("c16", "warn"), ("c16_info", "info")]:
            r = h[key]
            answers = ", ".join(f"{k}: {v:,}" for k, v in r["statuses"].items())
            if r["errors"]:
                answers += f", errors: {r['errors']}"
            a(f"* concurrency 16, `LOG_LEVEL={level}`: {r['events']:,} events in {r['seconds']:.1f} s = "
              f"**{r['events_per_s']:,.0f}/s**; p50 {r['p50_us']:.0f} µs, p99 {r['p99_us']:.0f} µs, "
              f"max {r['max_us'] / 1000:.1f} ms; answers {answers}")
        a(f"* RSS: {mib(h['memory_at_start']['rss_kib']):.1f} MiB after start; "
          + "; ".join(f"{mib(cp['memory']['rss_kib']):.1f} MiB after {cp['records']:,} records"
                      for cp in h["checkpoints"])
          + f" (peak {mib(h['memory_at_end']['hwm_kib']):.1f} MiB)")
        a(f"* load average (1 min) at the end of this step: {h.get('load_after', '?')}")
        bd = lifecycle_breakdown(h)
        if bd:
            a(f"* where the memory goes (fresh binaries, the same load to {bd['records']:,} records, RSS at the "
              f"end): defaults {bd['defaults']:.1f} MiB; " + "; ".join(f"`{e}` {v:.1f} MiB" for e, v in bd["variants"])
              + f" → the de-duplication window about {bd['dedup']:.1f} MiB, the fact memory about "
              f"{bd['facts']:.1f} MiB, the rest {bd['rest']:.1f} MiB ({bd['start']:.1f} MiB of it after start)")
    if fl:
        tt = fl["ten_thousand"]
        a(f"* {T_FILE_RECORDS:,}-record JSONL.gz files ({tt[0]['gzip_bytes'] / 1e3:.0f} kB compressed, "
          f"{tt[0]['plain_bytes'] / 1e6:.1f} MB of lines): notification → answer "
          + ", ".join(f"{r['ms']:.0f}" for r in tt) + f" ms (median **{f['file_ms_median']:.0f} ms**, the first "
          "through a binary that had read nothing yet); answers " + ", ".join(sorted({str(r['status']) for r in tt}))
          + f"; `pipeline.run.finished` lines per file: " + ", ".join(sorted({str(r['finished_points']) for r in tt}))
          + f" ({tt[0]['runs_in_file']:,} complete runs in a file)")
        for b in fl["big"]:
            a(f"* {b['ext']} file of {size_text(b['object_bytes'])} ({b['records']:,} records, "
              f"{b['plain_bytes'] / 1e6:.0f} MB of lines): answer {b['status']} after {b['seconds']:.1f} s "
              f"({b['records_per_s']:,.0f} records/s); RSS {mib(b['memory_at_start']['rss_kib']):.1f} MiB at "
              f"start, at most **{mib(b['rss_max_sampled_kib']):.1f} MiB** sampled while reading, "
              f"{mib(b['memory_at_end']['rss_kib']):.1f} MiB at the end (VmHWM "
              f"{mib(b['memory_at_end']['hwm_kib']):.1f} MiB)")
        a(f"* load average (1 min) at the end of the file step: {fl.get('load_after', '?')}")
    a("")
    notes = lifecycle_notes(lc, f)
    if notes:
        a("### Notes")
        a("")
        for n in notes:
            a(f"* {n}")
        a("")
    a("Raw results: `target/criterion/lifecycle_*` and `target/bench/lifecycle_process.json`; the binary's "
      "last log in `target/bench/lifecycle_process.stderr.jsonl`.")
    a("")
    return L


def lifecycle_breakdown(h):
    """RSS by part, from the runs with the de-duplication window off and a tiny fact memory,
    against the default run at the same number of records."""
    bd = h.get("breakdown") or []
    if len(bd) < 2:
        return None
    n = bd[0]["records"]
    same = [cp for cp in h["checkpoints"] if cp["records"] == n]
    if not same:
        return None
    defaults = mib(same[0]["memory"]["rss_kib"])
    no_dedup = mib(bd[0]["memory_at_end"]["rss_kib"])
    tiny = mib(bd[1]["memory_at_end"]["rss_kib"])
    return {"records": n, "defaults": defaults, "variants": [(b["env"], mib(b["memory_at_end"]["rss_kib"])) for b in bd],
            "dedup": defaults - no_dedup, "facts": no_dedup - tiny, "rest": tiny,
            "start": mib(bd[1]["memory_at_start"]["rss_kib"])}


def lifecycle_notes(lc, f):
    """What a missed target costs and where the time goes, from the measurements."""
    notes = []
    d = f["derive"]
    dec = lc["micro"]["lifecycle_decode"]
    if d:
        worst = f["derive_worst"]
        w = d[worst]["median_us"]
        dw = dec.get(worst)
        share = f"; decode alone is {dw['median_us']:.1f} µs of it" if dw else ""
        if w > T_LC_DERIVE_US:
            notes.append(f"**Decode plus derivation** misses {T_LC_DERIVE_US:.0f} µs for "
                         f"{', '.join(LC_LABELS.get(k, k) for k, v in d.items() if v['median_us'] > T_LC_DERIVE_US)}; "
                         f"worst {LC_LABELS.get(worst, worst)} {w:.1f} µs ({w - T_LC_DERIVE_US:.1f} µs over){share}.")
        else:
            notes.append(f"**Decode plus derivation** takes at most {w:.1f} µs ({LC_LABELS.get(worst, worst)})"
                         f"{share}.")
    h = f["http"]
    if h and f["eps"] < T_LC_EPS:
        notes.append(f"**Lifecycle-only events over HTTP**: {f['eps']:,.0f}/s, {T_LC_EPS - f['eps']:,.0f}/s "
                     f"({(1 - f['eps'] / T_LC_EPS) * 100:.0f} %) below {T_LC_EPS:,}/s. The load generator runs on "
                     "the same 2 cores as the binary, and the machine's load (Machine, above) is shared with other work; "
                     "per event the binary decodes, derives and writes the points, answers the HTTP request and "
                     "logs at `warn`.")
    if h and h["records_at_end"] >= T_LC_RECORDS and f["rss_end_mib"] > T_LC_RSS_MIB:
        text = (f"**RSS after {T_LC_RECORDS:,} records** is {f['rss_end_mib']:.1f} MiB, "
                f"{f['rss_end_mib'] - T_LC_RSS_MIB:.1f} MiB ({f['rss_end_mib'] / T_LC_RSS_MIB:.1f} ×) over the bound.")
        cps = h["checkpoints"]
        if len(cps) >= 3:
            text += (" It is bounded, not leaking: " + ", ".join(f"{mib(cp['memory']['rss_kib']):.0f} MiB after "
                                                              f"{cp['records']:,}" for cp in cps) + " records.")
        bd = lifecycle_breakdown(h)
        if bd:
            text += (f" At {bd['records']:,} records the de-duplication window (`DEDUP_CAPACITY` identities) holds "
                     f"about {bd['dedup']:.0f} MiB and the fact memory (`FACT_MEMORY_MIB` = 8) about "
                     f"{bd['facts']:.0f} MiB; with both small the binary stays at {bd['rest']:.1f} MiB. The bound is "
                     "met only with smaller memories than the defaults, which shortens the redelivery horizon they "
                     "cover.")
        notes.append(text)
    fl = f["files"]
    if fl and f["file_ms_median"] > T_FILE_S * 1000:
        notes.append(f"**The {T_FILE_RECORDS:,}-record file** takes {f['file_ms_median']:.0f} ms, "
                     f"{f['file_ms_median'] - T_FILE_S * 1000:.0f} ms over {T_FILE_S:.0f} s.")
    if fl and f["big_peak_mib"] is not None and f["big_peak_mib"] >= T_FILE_RSS_MIB:
        notes.append(f"**RSS while reading 200 MB** peaks at {f['big_peak_mib']:.1f} MiB, over "
                     f"{T_FILE_RSS_MIB:.0f} MiB.")
    return notes


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def run_replay(extra):
    """The replay benchmark against the release binary (built as `make release` builds it)."""
    exe = bench_executable("replay")
    run(["cargo", "build", "--locked", "--release"])
    if os.path.exists(REPLAY_RESULTS):
        os.remove(REPLAY_RESULTS)
    run([exe, "--bench", "--out", REPLAY_RESULTS, "--bin", BINARY] + extra)


def render_replay(m, r, when):
    """The "## Replay" section from target/bench/replay.json."""
    L = []
    a = L.append
    a("## Replay")
    a("")
    a(f"`benches/replay.rs`, run by `make bench` on {when}: the release binary "
      f"(`{r['command'].replace(os.path.join(TARGET, ''), 'target/')}`) replays {r['records']:,} lifecycle-only records "
      f"({r['input_bytes'] / 1048576:.1f} MiB, {r['input_gzip_bytes'] / 1048576:.1f} MiB gzip) made from the recorded "
      f"runs ({', '.join(r['sources'][:3])}, … {len(r['sources'])} files), every copy its own runs, to the stdout "
      f"sink (into /dev/null), with the progress display on. "
      f"{'Pinned to one core (taskset -c 0). ' if r['pinned_to_one_core'] else 'Not pinned (no taskset). '}"
      f"Median of {len(next(iter(r['modes'].values()))['runs']) if r['modes'] else 0} runs per mode. "
      f"Machine: {m['cpu']}, {m['cores']} cores shared with other work (load average after: "
      f"{r.get('load_average_after', '?')}); commit {m['commit']}.")
    a("")
    a(f"| progress display | records/s (wall) | records per CPU second | seconds | target ≥ {T_REPLAY:,}/s |")
    a("|---|---|---|---|---|")
    for mode, v in r["modes"].items():
        shown = "indicatif bar (stderr a terminal, under script)" if mode == "bar" else "plain lines (stderr a pipe)"
        rate = v["median_records_per_s"]
        a(f"| {shown} | {rate:,.0f} | {v['median_records_per_cpu_s']:,.0f} | {v['median_seconds']:.2f} | "
          f"{status(rate >= T_REPLAY)} |")
    if r.get("quick"):
        a("")
        a("Quick run (`--quick`): a harness check, figures not meaningful.")
    a("")
    a(f"The input is {r['input_bytes'] / r['records']:,.0f} bytes of JSON per record (real Datastream records): "
      "inflating and parsing it is a large share of the time. Where the rest goes, and what was tried: "
      "[docs/replay.md](docs/replay.md#speed).")
    a("")
    return "\n".join(L)


def replace_section(text, title, section):
    """`text` with its section `title` (to the next "## " heading) replaced by `section`."""
    lines = text.rstrip("\n").split("\n")
    out, skipping = [], False
    for line in lines:
        if line.startswith("## "):
            skipping = line.strip() == title
        if not skipping:
            out.append(line)
    return "\n".join(out).rstrip("\n") + "\n\n" + section


def main():
    if "--replay-only" in sys.argv[1:]:
        extra = ["--quick"] if "--quick" in sys.argv[1:] else []
        if "--render-only" not in sys.argv[1:]:
            run_replay(extra)
        with open(REPLAY_RESULTS) as f:
            r = json.load(f)
        # when the results were written (a --render-only run renders older results)
        when = datetime.datetime.fromtimestamp(os.path.getmtime(REPLAY_RESULTS), datetime.timezone.utc) \
            .strftime("%Y-%m-%d %H:%M UTC")
        with open(OUT) as f:
            text = f.read()
        # rendered before the file is opened for writing: machine() asks git whether the tree is clean
        text = replace_section(text, "## Replay", render_replay(machine(), r, when))
        with open(OUT, "w") as f:
            f.write(text)
        print(f"wrote the replay section of {os.path.relpath(OUT, ROOT)}")
        return
    quick = "--quick" in sys.argv[1:]
    render_only = "--render-only" in sys.argv[1:]
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = loadavg()
    extra = ["--quick"] if quick else []
    if not render_only:
        started_emulator = False
        if not emulator_ready():
            run([os.path.join(ROOT, "scripts", "bqemulator.sh"), "start", PORT])
            started_emulator = True
        env = dict(os.environ, BIGQUERY_EMULATOR_HOST=EMULATOR)
        try:
            run([sys.executable, os.path.join(ROOT, "scripts", "seed.py")], env=env)
            for g in GROUPS:
                shutil.rmtree(os.path.join(CRITERION, g), ignore_errors=True)
            run(["cargo", "bench", "--locked", "--bench", "decode_dispatch", "--"] + extra)
            lifecycle_criterion(extra)
            # Benchmark targets build the crate with the dev-dependencies' features unified in, and
            # `cargo bench` rebuilds target/release/pipeline-run-metrics that way. So: build the load
            # generator first, then the release binary exactly as `make release` does, and run the
            # generator directly (through cargo it would rebuild the binary again).
            exe = bench_executable("whole_process")
            lc_exe = lifecycle_build()
            run(["cargo", "build", "--locked", "--release"])
            if os.path.exists(RESULTS):
                os.remove(RESULTS)
            run([exe, "--bench", "--out", RESULTS, "--emulator", EMULATOR, "--bin", BINARY] + extra, env=env)
            lifecycle_run(lc_exe, extra, env)
        finally:
            if started_emulator:
                run([os.path.join(ROOT, "scripts", "bqemulator.sh"), "stop", PORT])
        run_replay(extra)
    micro = {g: {} for g in GROUPS}
    for g in GROUPS:
        d = os.path.join(CRITERION, g)
        for bench_id in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            micro[g][bench_id] = criterion_estimate(g, bench_id)
    with open(RESULTS) as f:
        w = json.load(f)
    finished = datetime.datetime.now(datetime.timezone.utc)
    duration = None if render_only else (finished - started).total_seconds()
    m = machine()
    text = render(m, micro, w, started, duration, quick or w.get("quick", False), load_before, loadavg(),
                  lifecycle_results())
    if os.path.exists(REPLAY_RESULTS):
        with open(REPLAY_RESULTS) as f:
            r = json.load(f)
        text = replace_section(text, "## Replay", render_replay(m, r, started.strftime("%Y-%m-%d %H:%M UTC")))
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(OUT, ROOT)} in {(finished - started).total_seconds():.0f} s")


if __name__ == "__main__":
    main()
