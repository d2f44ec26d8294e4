//! The `pipeline-run-metrics` binary: the command line ([`pipeline_run_metrics::cli`]).

use std::process::ExitCode;

use clap::Parser;
use pipeline_run_metrics::cli::{Cli, run};

/// mimalloc instead of the system allocator: a record of a replay or a delivery is decoded into
/// some 150 small allocations, and glibc's malloc and free took a third of a replay's CPU time
/// (perf, BENCHMARKS.md "Replay").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // the start of this process's cumulative series and its instance id, fixed first
    pipeline_run_metrics::sink::instance::Instance::process();
    // --help and --version print and exit 0; a usage error prints the usage on stderr and
    // exits 2
    run(Cli::parse().into_command())
}
