//! The `pipeline-run-metrics` binary: the command line ([`pipeline_run_metrics::cli`]).

use std::process::ExitCode;

use clap::Parser;
use pipeline_run_metrics::cli::{Cli, run};

fn main() -> ExitCode {
    // the start of this process's cumulative series and its instance id, fixed first
    pipeline_run_metrics::sink::instance::Instance::process();
    // --help and --version print and exit 0; a usage error prints the usage on stderr and
    // exits 2
    run(Cli::parse().into_command())
}
