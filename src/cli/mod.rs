//! The command line, parsed by clap: `pipeline-run-metrics [COMMAND]`.
//!
//! * `serve` (the default when no command is given): HTTP deliveries on `HOST`:`PORT`, or the
//!   AWS Lambda Runtime API when `AWS_LAMBDA_RUNTIME_API` is set ([`serve`]).
//! * `check`: validates the configuration, the handler catalogue and the lifecycle profiles,
//!   then exits. The hidden flag `--check` is the same command, for scripts written before the
//!   subcommands (`.ci/run`, the Makefile).
//! * `replay`: change records from files through the pipeline ([`replay`]).
//! * `dashboards`, `alerts`: dashboards and alert policies generated from the catalogue and
//!   profiles in force ([`ops`], over [`crate::ops`]).
//!
//! The configuration is the environment, the same for every command
//! ([`crate::config::Config::from_env`]; `--help` lists it, [`env`]); flags are a command's own
//! options. Exit codes: 0 success; 1 a replay that did not process or write everything (its
//! summary says what); 2 a usage error (unknown argument, bad value: clap prints the usage on
//! stderr) or an invalid configuration.
//!
//! A new command is a variant of [`Command`] (its arguments a clap `Args` struct) and its arm in
//! [`run`].

pub mod build;
pub mod env;
pub mod ops;
pub mod replay;
pub mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::logging;
use crate::startup::StartupError;

/// `pipeline-run-metrics`: change records of orchestrator run tables in, metrics out.
#[derive(Debug, Parser)]
#[command(
    name = "pipeline-run-metrics",
    version,
    about = "Turns change-data-capture records of orchestrator run tables into metrics",
    after_long_help = env::help(),
    after_help = "Configuration comes from environment variables: see --help.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The `check` command (kept for scripts written before the subcommands).
    #[arg(long, hide = true)]
    pub check: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve deliveries over HTTP on HOST:PORT, or through the AWS Lambda Runtime API when
    /// AWS_LAMBDA_RUNTIME_API is set (the default command)
    Serve,
    /// Validate the configuration, the handler catalogue and the lifecycle profiles, then exit
    Check,
    /// Send change records from files (local or gs://) through the pipeline: backfill history
    #[command(after_long_help = replay::args::AFTER_HELP)]
    Replay(replay::args::ReplayArgs),
    /// Print a dashboard of the metrics the catalogue and profiles in force write
    Dashboards(ops::DashboardArgs),
    /// Print alert policies (failure rate, SLA misses, p95 duration, no successful run)
    Alerts(ops::AlertArgs),
}

impl Cli {
    /// The command to run: `serve` when none is given, `check` for `--check`.
    pub fn into_command(self) -> Command {
        match (self.command, self.check) {
            (Some(c), _) => c,
            (None, true) => Command::Check,
            (None, false) => Command::Serve,
        }
    }
}

/// Runs a command to its end; its exit code.
pub fn run(command: Command) -> ExitCode {
    match command {
        Command::Serve => runtime(true).block_on(serve::run()),
        Command::Check => check(),
        // one thread: a replay is one sequence of chunks (its remote calls still overlap)
        Command::Replay(args) => runtime(false).block_on(replay::run(args)),
        Command::Dashboards(args) => ops::dashboards(args),
        Command::Alerts(args) => ops::alerts(args),
    }
}

fn runtime(multi_thread: bool) -> tokio::runtime::Runtime {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().expect("the tokio runtime")
}

/// `check`: the configuration, the catalogue and the profiles are loaded as `serve` loads them.
fn check() -> ExitCode {
    let config = match crate::config::Config::from_env() {
        Ok(c) => c,
        Err(e) => return failed(StartupError::Config(e)),
    };
    logging::init(config.log_level);
    match build::catalogue(&config) {
        Ok((handlers, profiles)) => {
            println!("configuration, {} handlers and {} lifecycle profiles are valid", handlers.len(), profiles.len());
            // which metric fires for which table, pipeline and status
            let rows = crate::handlers::listing::rows(&handlers, &profiles);
            print!("\n{}", crate::handlers::listing::render(&rows));
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    }
}

/// A fatal failure at run time (the server or the Lambda runtime stopped): one structured line
/// on stderr (so that it reaches Cloud Logging too) and exit code 2.
pub fn fatal(message: &str, detail: String) -> ExitCode {
    eprintln!("{}", crate::startup::fatal_line(message, detail));
    ExitCode::from(2)
}

/// A startup failure: its one line ([`StartupError::line`]) and exit code 2.
pub fn failed(e: StartupError) -> ExitCode {
    eprintln!("{}", e.line());
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("pipeline-run-metrics").chain(args.iter().copied())).map(Cli::into_command)
    }

    #[test]
    fn serve_is_the_default_and_check_has_its_old_flag() {
        assert!(matches!(parse(&[]).unwrap(), Command::Serve));
        assert!(matches!(parse(&["serve"]).unwrap(), Command::Serve));
        assert!(matches!(parse(&["check"]).unwrap(), Command::Check));
        assert!(matches!(parse(&["--check"]).unwrap(), Command::Check));
        assert!(matches!(parse(&["replay", "a.jsonl"]).unwrap(), Command::Replay(_)));
        assert!(matches!(parse(&["dashboards", "--format", "grafana"]).unwrap(), Command::Dashboards(_)));
        assert!(matches!(parse(&["alerts", "--format", "prometheus"]).unwrap(), Command::Alerts(_)));
    }

    #[test]
    fn unknown_arguments_are_usage_errors() {
        for args in [
            &["--port", "9"][..],
            &["serve", "--verbose"],
            &["frobnicate"],
            &["replay"],
            &["--check", "serve"],
            &["dashboards"],
            &["dashboards", "--format", "svg"],
            &["alerts", "--format", "gcm", "--failure-rate", "2"],
        ] {
            let e = parse(args).expect_err(&format!("{args:?}"));
            assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
