//! Writes every generated dashboard, alert policy and metric definition into a directory, from
//! the built-in catalogue and profiles (`HANDLERS_DIR` and `PROFILES_DIR` overlay them):
//! `cargo run --example ops -- out/`. The binary's `dashboards` and `alerts` commands give one
//! kind each (`pipeline-run-metrics dashboards --format grafana`, `alerts --format gcm -o DIR`).

use pipeline_run_metrics::{handlers, ops};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "ops-out".into()));
    let handlers_dir = std::env::var_os("HANDLERS_DIR").map(std::path::PathBuf::from);
    let profiles_dir = std::env::var_os("PROFILES_DIR").map(std::path::PathBuf::from);
    let catalogue = handlers::all(handlers_dir.as_deref())?;
    let profiles = handlers::lifecycle::load(profiles_dir.as_deref(), None)?;
    std::fs::create_dir_all(&out)?;
    for (source, dir) in [(ops::GcmSource::Custom, "gcm"), (ops::GcmSource::LogsBased, "logs-based")] {
        let mut inputs = ops::Inputs::new(&catalogue, &profiles);
        inputs.gcm_source = source;
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("dashboard.json"), ops::dashboard(ops::DashboardFormat::Gcm, &inputs)?)?;
        for a in ops::alerts(ops::AlertFormat::Gcm, &inputs, &ops::Thresholds::default())? {
            std::fs::write(dir.join(&a.file_name), a.content)?;
        }
    }
    let inputs = ops::Inputs::new(&catalogue, &profiles);
    std::fs::write(out.join("grafana-dashboard.json"), ops::dashboard(ops::DashboardFormat::Grafana, &inputs)?)?;
    let mut files = ops::alerts(ops::AlertFormat::Prometheus, &inputs, &ops::Thresholds::default())?;
    for (_, format) in ops::LogMetricFormat::ALL {
        let sub = if format.as_str() == "gcloud-json" { "log-metrics/" } else { "" };
        for mut a in ops::log_metrics(*format, &inputs)? {
            a.file_name = format!("{sub}{}", a.file_name);
            files.push(a);
        }
    }
    std::fs::create_dir_all(out.join("log-metrics"))?;
    for a in files {
        std::fs::write(out.join(&a.file_name), a.content)?;
    }
    println!("written to {}", out.display());
    Ok(())
}
