//! `dashboards` and `alerts`: the generators of [`crate::ops`] on the command line, reading the
//! handler catalogue and the lifecycle profiles in force as `serve` and `check` load them
//! (`HANDLERS_DIR`, `PROFILES`, `PROFILES_DIR`, and the rest of the configuration checked the
//! same way, except `ALLOWED_DATASETS`: no dataset is read).
//!
//! Output: stdout, or one file per generated document in `--output DIR` (created if missing;
//! files of the same names are replaced). On stdout a single document is printed as generated;
//! Cloud Monitoring alert policies, one document per policy, are printed one per line (compact
//! JSON), so that each line is one `--policy-from-file` input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use super::{build, failed, fatal};
use crate::ops::{self, AlertFormat, Artifact, DashboardFormat, GcmSource, Thresholds};
use crate::startup::StartupError;

fn dashboard_format() -> impl TypedValueParser<Value = DashboardFormat> {
    PossibleValuesParser::new(DashboardFormat::ALL.iter().map(|(n, _)| *n)).try_map(|s| s.parse::<DashboardFormat>())
}

fn alert_format() -> impl TypedValueParser<Value = AlertFormat> {
    PossibleValuesParser::new(AlertFormat::ALL.iter().map(|(n, _)| *n)).try_map(|s| s.parse::<AlertFormat>())
}

fn gcm_source() -> impl TypedValueParser<Value = GcmSource> {
    PossibleValuesParser::new(["custom", "logs-based"])
        .map(|s| if s == "logs-based" { GcmSource::LogsBased } else { GcmSource::Custom })
}

/// A positive number of seconds or hours.
fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{text}' is not a positive number")),
    }
}

/// What both generators share.
#[derive(Debug, Args)]
pub struct Common {
    /// Where Cloud Monitoring reads the metrics (gcm only): custom (METRICS_BACKEND=gcm,
    /// custom.googleapis.com/) or logs-based (METRICS_BACKEND=stdout and logs-based metrics,
    /// logging.googleapis.com/user/)
    #[arg(long, value_name = "SOURCE", default_value = "custom", value_parser = gcm_source())]
    pub source: GcmSource,
    /// Dashboard title, and prefix of the alert policies' names
    #[arg(long, default_value = "pipeline-run-metrics")]
    pub title: String,
    /// Write one file per document into DIR instead of printing to stdout
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Option<PathBuf>,
}

/// `dashboards --format gcm|grafana`.
#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// gcm: a Cloud Monitoring dashboard (gcloud monitoring dashboards create
    /// --config-from-file); grafana: a Grafana dashboard over the OTLP metrics in Prometheus
    #[arg(long, value_name = "FORMAT", value_parser = dashboard_format())]
    pub format: DashboardFormat,
    #[command(flatten)]
    pub common: Common,
}

/// `alerts --format gcm|prometheus`, with the thresholds of [`Thresholds`].
#[derive(Debug, Args)]
pub struct AlertArgs {
    /// gcm: Cloud Monitoring alert policies, one per document; prometheus: one alerting-rules
    /// file (promtool check rules)
    #[arg(long, value_name = "FORMAT", value_parser = alert_format())]
    pub format: AlertFormat,
    /// Failed over finished runs above which a pipeline alerts (0 to 1)
    #[arg(long, value_name = "RATIO", default_value_t = 0.2, value_parser = ratio)]
    pub failure_rate: f64,
    /// p95 run duration above which a pipeline alerts, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600.0, value_parser = positive)]
    pub duration_p95: f64,
    /// Hours without a successful run before a pipeline alerts
    #[arg(long, value_name = "HOURS", default_value_t = 24.0, value_parser = positive)]
    pub no_success_hours: f64,
    /// A Cloud Monitoring notification channel of every policy
    /// (projects/P/notificationChannels/ID); repeat for several
    #[arg(long, value_name = "CHANNEL")]
    pub notification_channel: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

fn ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!("'{text}' is not a ratio between 0 and 1")),
    }
}

/// `dashboards`: the dashboard of the catalogue and profiles in force. Exit code 0, or 2 when
/// the configuration is invalid, there is no metric, or the output cannot be written.
pub fn dashboards(args: DashboardArgs) -> ExitCode {
    generate(&args.common, |inputs| {
        let content = ops::dashboard(args.format, inputs)?;
        let file_name = match args.format {
            DashboardFormat::Gcm => "gcm-dashboard.json",
            DashboardFormat::Grafana => "grafana-dashboard.json",
        };
        Ok(vec![Artifact { file_name: file_name.into(), content }])
    })
}

/// `alerts`: the alert policies or rules of the catalogue and profiles in force. Exit codes as
/// [`dashboards`]; an invalid threshold is a usage error (2) before anything is read.
pub fn alerts(args: AlertArgs) -> ExitCode {
    let thresholds = Thresholds {
        failure_rate: args.failure_rate,
        duration_p95: Duration::from_secs_f64(args.duration_p95),
        no_success: Duration::from_secs_f64(args.no_success_hours * 3600.0),
        notification_channels: args.notification_channel.clone(),
        ..Thresholds::default()
    };
    generate(&args.common, |inputs| ops::alerts(args.format, inputs, &thresholds))
}

fn generate(common: &Common, render: impl FnOnce(&ops::Inputs) -> Result<Vec<Artifact>, ops::OpsError>) -> ExitCode {
    // the generators read no dataset
    let config = match build::config(false) {
        Ok(c) => c,
        Err(e) => return failed(StartupError::Config(e)),
    };
    crate::logging::init(config.log_level);
    let (handlers, profiles) = match build::catalogue(&config) {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let mut inputs = ops::Inputs::new(&handlers, &profiles);
    inputs.gcm_source = common.source;
    inputs.title = common.title.clone();
    let artifacts = match render(&inputs) {
        Ok(a) => a,
        Err(e) => return fatal("cannot generate", e.to_string()),
    };
    let written = match &common.output {
        Some(dir) => write_files(dir, &artifacts),
        None => print(&artifacts),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fatal("cannot write the output", e),
    }
}

fn write_files(dir: &Path, artifacts: &[Artifact]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for a in artifacts {
        let path = dir.join(&a.file_name);
        std::fs::write(&path, &a.content).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("{}", path.display());
    }
    Ok(())
}

fn print(artifacts: &[Artifact]) -> Result<(), String> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let text = match artifacts {
        [one] => one.content.clone(),
        many => many
            .iter()
            .map(|a| match serde_json::from_str::<serde_json::Value>(&a.content) {
                Ok(v) => Ok(format!("{v}\n")),
                Err(e) => Err(format!("{}: not JSON ({e}): use --output DIR", a.file_name)),
            })
            .collect::<Result<String, String>>()?,
    };
    out.write_all(text.as_bytes()).and_then(|_| out.flush()).map_err(|e| format!("stdout: {e}"))
}
