//! `serve`: deliveries over HTTP ([`crate::ingress::server::serve`] on `HOST`:`PORT`, with its
//! connection timeouts), or through the AWS Lambda
//! Runtime API when `AWS_LAMBDA_RUNTIME_API` is set; the same [`App`] either way.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::build::{self, Failure, Needs};
use super::{failed, fatal};
use crate::config::Config;
use crate::ingress::auth::{Keys, PushVerifier};
use crate::ingress::http::{App, Options, router};
use crate::logging;
use crate::pipeline::LifecycleParts;
use crate::sink::MetricSink;
use crate::sink::instance::Instance;
use crate::startup::StartupError;

/// Loads and checks everything (exit code 2 on the first failure), then serves until SIGTERM.
pub async fn run() -> ExitCode {
    // the start of this process's cumulative series and its instance id, fixed first
    let instance = Instance::process();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return failed(StartupError::Config(e)),
    };
    logging::init(config.log_level);
    let (handlers, profiles) = match build::catalogue(&config) {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    // the port first: a second instance on a busy port stops here, before its banner and before
    // any file (METRICS_FILE) is opened
    let listener = match lambda {
        true => None,
        false => match bind(&config).await {
            Ok(l) => Some(l),
            Err(code) => return code,
        },
    };
    let app = match app(&config, handlers, profiles).await {
        Ok(app) => app,
        Err(e) => return failed(e),
    };
    let sink = app.pipeline.sink.clone();
    let routes = router(app.clone());
    let Some(listener) = listener else {
        // Driven by the Lambda Runtime API: Kinesis, SQS and Kafka batches straight into the
        // pipeline; Function URL, API Gateway and ALB requests through the same Router (any
        // other invocation arrives as POST /events).
        tracing::info!(backend = config.metrics_backend.name(), instance = %instance.id, "running on AWS Lambda");
        // Lambda sends SIGTERM at shutdown only when an extension is registered; then what the
        // sink holds is written before exiting (about 500 ms are given).
        let on_term = sink.clone();
        tokio::spawn(async move {
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                term.recv().await;
                flush(on_term.as_ref(), Duration::from_millis(400)).await;
                std::process::exit(0);
            }
        });
        return match crate::ingress::lambda::run(app, routes).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fatal("Lambda runtime error", e.to_string()),
        };
    };
    serve(&config, listener, routes, sink).await
}

/// Binds `HOST:PORT`; a busy port is one line naming the address and what to do.
async fn bind(config: &Config) -> Result<tokio::net::TcpListener, ExitCode> {
    let addr = std::net::SocketAddr::new(config.ingress.host, config.ingress.port);
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        failed(match e.kind() {
            std::io::ErrorKind::AddrInUse => StartupError::Bind {
                detail: format!(
                    "{addr}: address in use (another process, e.g. a running `make local-run`, listens on port {}): stop it or set PORT",
                    config.ingress.port
                ),
            },
            _ => StartupError::Bind { detail: format!("{addr}: {e}") },
        })
    })
}

/// Writes what the sink still holds (the Cloud Monitoring sink's unwritten totals), within
/// `limit`, and says what it did.
async fn flush(sink: &dyn MetricSink, limit: Duration) {
    match tokio::time::timeout(limit, sink.flush()).await {
        Ok(d) if d.calls > 0 => {
            tracing::info!(sink_calls = d.calls, points_rejected = d.rejected.len(), "metric sink flushed at shutdown")
        }
        Ok(_) => {}
        Err(_) => tracing::warn!(limit_secs = limit.as_secs_f64(), "metric sink flush at shutdown ran out of time"),
    }
}

/// The application: clients, sink, fact store and pipeline, as the configuration says.
async fn app(
    config: &Config,
    handlers: Vec<Arc<dyn crate::handlers::Handler>>,
    profiles: Vec<crate::handlers::lifecycle::Profile>,
) -> Result<Arc<App>, Failure> {
    let http = build::http()?;
    let tokens = build::tokens(config, Needs::SERVE, &http).await?;
    let warehouse = build::warehouse(config, &http, tokens.as_ref()).await?;
    let sink = build::sink(config, &http, tokens.as_ref())?;
    let verifier = config.ingress.auth.as_ref().map(|a| {
        let keys = Keys::Url {
            http: http.clone(),
            url: a.jwks_url.clone(),
            ttl: Duration::from_secs(3600),
            min_refresh: Duration::from_secs(10),
        };
        Arc::new(PushVerifier::new(&a.audience, a.service_accounts.clone(), keys))
    });
    // every backend writes counters and histograms (see `sink`): lifecycle metrics everywhere
    let lifecycle = if profiles.is_empty() {
        None
    } else {
        let facts = build::fact_store(&config.lifecycle.fact_store, http.clone(), tokens.clone()).await?;
        let lifecycle = crate::handlers::lifecycle::Lifecycle::new(
            profiles,
            config.metric_project.clone(),
            config.lifecycle.lookup_wait,
        );
        Some(LifecycleParts { lifecycle: Arc::new(lifecycle), facts })
    };
    let options = Options {
        max_body_bytes: config.ingress.max_body_bytes,
        delivery: config.delivery.clone(),
        verifier,
        lifecycle,
        storage: build::storage(config, &http, tokens.as_ref()),
        lineage_api_key: config.ingress.lineage_api_key.clone(),
    };
    let dispatcher = crate::handlers::Dispatcher::new(handlers, build::projects(config));
    Ok(Arc::new(App::new(dispatcher, warehouse, sink, options)))
}

async fn serve(
    config: &Config,
    listener: tokio::net::TcpListener,
    app: axum::Router,
    sink: Arc<dyn MetricSink>,
) -> ExitCode {
    tracing::info!(
        address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        metric_project = %config.metric_project,
        data_project = %config.data_project,
        bigquery = config.warehouse.emulator_host.as_deref().unwrap_or("bigquery.googleapis.com"),
        backend = config.metrics_backend.name(),
        fact_store = config.lifecycle.fact_store.name(),
        push_auth = config.ingress.auth.is_some(),
        lineage_api_key = config.ingress.lineage_api_key.is_some(),
        ack_permanent_errors = config.delivery.ack_permanent,
        header_read_timeout_secs = config.ingress.connections.header_read.as_secs_f64(),
        idle_timeout_secs = config.ingress.connections.idle.as_secs_f64(),
        body_read_timeout_secs = config.delivery.body_read_timeout.as_secs_f64(),
        "listening"
    );
    // On SIGTERM (Cloud Run gives 10 s before SIGKILL) stop accepting, let in-flight events
    // finish for at most SHUTDOWN_GRACE_SECS, then write what the sink still holds (the Cloud
    // Monitoring sink's unwritten totals; the other sinks wrote everything inside each request)
    // and exit; stdout is flushed on exit.
    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    let signalled = Arc::new(std::sync::OnceLock::<std::time::Instant>::new());
    let at_signal = signalled.clone();
    let server = crate::ingress::server::serve(listener, app, config.ingress.connections, async move {
        shutdown_signal().await;
        let _ = at_signal.set(std::time::Instant::now());
        let _ = stopping_tx.send(true);
    });
    let grace = config.ingress.shutdown_grace;
    let deadline = async move {
        let _ = stopping_rx.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    let code = tokio::select! {
        served = server => match served {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => fatal("server error", e.to_string()),
        },
        _ = deadline => {
            tracing::warn!(grace_secs = grace.as_secs_f64(), "in-flight events still running after the grace period: exiting");
            ExitCode::SUCCESS
        }
    };
    // what is left of Cloud Run's 10 s since the signal, with half a second to spare (at least
    // one second, at most the sink's deadline)
    let since = signalled.get().map(|t| t.elapsed()).unwrap_or_default();
    let left = Duration::from_millis(9_500).saturating_sub(since).max(Duration::from_secs(1));
    flush(sink.as_ref(), left.min(config.sink_deadline)).await;
    use std::io::Write;
    let _ = std::io::stdout().flush();
    code
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
