//! The `pipeline-run-metrics` binary: the command line ([`pipeline_run_metrics::cli`]).

use std::process::ExitCode;

use clap::Parser;
use pipeline_run_metrics::cli::{Cli, run};

/// mimalloc instead of glibc's malloc: decoding and dispatching one event (or one replayed
/// record) makes a few hundred small allocations (JSON values, row maps, label strings), and with
/// glibc's allocator about a third of that CPU time went to malloc/free (perf, BENCHMARKS.md
/// "Decode plus dispatch"). The benches declare the same allocator, so they measure what this
/// binary runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // the start of this process's cumulative series and its instance id, fixed first
    pipeline_run_metrics::sink::instance::Instance::process();
    // --help and --version print and exit 0; a usage error prints the usage on stderr and
    // exits 2
    run(Cli::parse().into_command())
}
