use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use pipeline_run_metrics::bigquery::{BigQuery, Warehouse};
use pipeline_run_metrics::config::{Config, MetricsBackend};
use pipeline_run_metrics::dispatch::Dispatcher;
use pipeline_run_metrics::handler::Projects;
use pipeline_run_metrics::sink::{JsonLines, MetricSink};
use pipeline_run_metrics::transport::{App, router};
use pipeline_run_metrics::{all_handlers, logging};

/// Startup failures are printed as one structured line, so they reach Cloud Logging too.
fn fatal(message: &str, detail: String) -> ExitCode {
    let mut fields = serde_json::Map::new();
    fields.insert("message".into(), message.into());
    fields.insert("error".into(), detail.into());
    eprintln!("{}", logging::format_line(&tracing::Level::ERROR, "pipeline_run_metrics", fields));
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let check_only = std::env::args().any(|a| a == "--check");
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return fatal("invalid configuration", e.to_string()),
    };
    logging::init(config.log_level);
    let handlers = match all_handlers(config.handlers_dir.as_deref()) {
        Ok(h) => h,
        Err(e) => return fatal("invalid handler catalogue", e.to_string()),
    };
    if check_only {
        println!("configuration and {} handlers are valid", handlers.len());
        return ExitCode::SUCCESS;
    }
    let http = match reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build() {
        Ok(c) => c,
        Err(e) => return fatal("cannot build the HTTP client", e.to_string()),
    };
    let warehouse: Arc<dyn Warehouse> = match &config.bigquery_emulator_host {
        Some(host) => match BigQuery::emulator(host, &config.data_project, config.query_timeout, http.clone()).await {
            Ok(bq) => Arc::new(bq),
            Err(e) => return fatal("cannot set up the BigQuery emulator client", e),
        },
        None => {
            let tokens = match gcp_auth::provider().await {
                Ok(t) => t,
                Err(e) => {
                    return fatal(
                        "no Google credentials for BigQuery: set BIGQUERY_EMULATOR_HOST for local work, or provide \
                         Application Default Credentials",
                        e.to_string(),
                    );
                }
            };
            match BigQuery::production(tokens, &config.data_project, config.query_timeout, http.clone()).await {
                Ok(bq) => Arc::new(bq),
                Err(e) => return fatal("cannot set up the BigQuery client", e),
            }
        }
    };
    let sink: Arc<dyn MetricSink> = match config.metrics_backend {
        MetricsBackend::Stdout => Arc::new(JsonLines::new(std::io::stdout())),
    };
    let projects = Projects { metric: config.metric_project.clone(), data: config.data_project.clone() };
    let app = Arc::new(App {
        dispatcher: Dispatcher::new(handlers, projects),
        warehouse,
        sink,
        max_body_bytes: config.max_body_bytes,
    });
    let addr = std::net::SocketAddr::new(config.host, config.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => return fatal("cannot bind", format!("{addr}: {e}")),
    };
    tracing::info!(
        address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        metric_project = %config.metric_project,
        data_project = %config.data_project,
        bigquery = config.bigquery_emulator_host.as_deref().unwrap_or("bigquery.googleapis.com (ADC)"),
        handlers = app.dispatcher.handlers().len(),
        "listening"
    );
    let served = axum::serve(listener, router(app)).with_graceful_shutdown(shutdown_signal()).await;
    match served {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => fatal("server error", e.to_string()),
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received, finishing in-flight events");
}
