use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use pipeline_run_metrics::config::{Config, FactStoreConfig, GcmConfig, MetricsBackend, OtlpConfig};
use pipeline_run_metrics::facts::FactStore;
use pipeline_run_metrics::facts::firestore::{self, DATASTORE_SCOPE, Firestore};
use pipeline_run_metrics::facts::redis::Redis;
use pipeline_run_metrics::google::credentials::{self, BIGQUERY_SCOPE, MONITORING_SCOPE, TokenSource};
use pipeline_run_metrics::google::storage::Storage;
use pipeline_run_metrics::handlers::Dispatcher;
use pipeline_run_metrics::handlers::Projects;
use pipeline_run_metrics::handlers::all as all_handlers;
use pipeline_run_metrics::handlers::lifecycle::Lifecycle;
use pipeline_run_metrics::ingress::auth::{Keys, PushVerifier};
use pipeline_run_metrics::ingress::http::{App, Options, router};
use pipeline_run_metrics::logging;
use pipeline_run_metrics::pipeline::LifecycleParts;
use pipeline_run_metrics::sink::gcm::{CloudMonitoring, Retry};
use pipeline_run_metrics::sink::instance::Instance;
use pipeline_run_metrics::sink::otlp::Otlp;
use pipeline_run_metrics::sink::tee::Tee;
use pipeline_run_metrics::sink::{JsonLines, MetricSink};
use pipeline_run_metrics::startup::{StartupError, fatal_line};
use pipeline_run_metrics::warehouse::{BigQuery, Warehouse};

/// Fatal errors are printed as one structured line, so they reach Cloud Logging too.
fn fatal(message: &str, detail: String) -> ExitCode {
    eprintln!("{}", fatal_line(message, detail));
    ExitCode::from(2)
}

/// A startup failure's line ([`StartupError::line`]), exit code 2.
fn failed(e: StartupError) -> ExitCode {
    eprintln!("{}", e.line());
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    // the start of this process's cumulative series and its instance id, fixed first
    let instance = Instance::process();
    let check_only = std::env::args().any(|a| a == "--check");
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => return failed(e.into()),
    };
    logging::init(config.log_level);
    let handlers = match all_handlers(config.handlers_dir.as_deref()) {
        Ok(h) => h,
        Err(e) => return failed(StartupError::Catalogue(e)),
    };
    let lc = &config.lifecycle;
    let profiles = match lc.profiles.as_deref() {
        Some([]) => Vec::new(),
        enabled => match pipeline_run_metrics::handlers::lifecycle::load(lc.profiles_dir.as_deref(), enabled) {
            Ok(p) => p,
            Err(e) => return failed(StartupError::Profiles(e)),
        },
    };
    if check_only {
        println!("configuration, {} handlers and {} lifecycle profiles are valid", handlers.len(), profiles.len());
        let rows = pipeline_run_metrics::handlers::listing::rows(&handlers, &profiles);
        print!("\n{}", pipeline_run_metrics::handlers::listing::render(&rows));
        return ExitCode::SUCCESS;
    }
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
    let app = match build(&config, handlers, profiles).await {
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
        return match pipeline_run_metrics::ingress::lambda::run(app, routes).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fatal("Lambda runtime error", e.to_string()),
        };
    };
    serve(&config, listener, routes, sink).await
}

/// Binds `HOST:PORT`; a busy port is one line naming the address and what to do.
async fn bind(config: &Config) -> Result<tokio::net::TcpListener, ExitCode> {
    let (host, port) = (config.ingress.host, config.ingress.port);
    let addr = std::net::SocketAddr::new(host, port);
    tokio::net::TcpListener::bind(addr).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => failed(StartupError::Bind {
            detail: format!("{addr}: address in use (another process, e.g. a running `make local-run`, listens on port {port}): stop it or set PORT"),
        }),
        _ => failed(StartupError::Bind { detail: format!("{addr}: {e}") }),
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

async fn build(
    config: &Config,
    handlers: Vec<Arc<dyn pipeline_run_metrics::handlers::Handler>>,
    profiles: Vec<pipeline_run_metrics::handlers::lifecycle::Profile>,
) -> Result<Arc<App>, StartupError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| StartupError::Backend { step: "cannot build the HTTP client", detail: e.to_string() })?;
    // Google credentials, when something needs them, are checked now: a production backend
    // without usable credentials must not start (and then drop every event).
    let tokens: Option<Arc<dyn TokenSource>> = if config.needs_google_credentials() {
        // (a key in Secrets Manager is read now; workload identity federation signs with the
        // AWS credentials of the environment)
        let tokens = credentials::from_config(&config.google_credentials, http.clone(), |k| std::env::var(k).ok())
            .await
            .map_err(|e| StartupError::Credentials { step: "no usable Google credentials (set BIGQUERY_EMULATOR_HOST and METRICS_BACKEND=stdout for local work)", detail: e.to_string() })?;
        let mut scopes = Vec::new();
        if config.warehouse.emulator_host.is_none() {
            scopes.push(BIGQUERY_SCOPE);
        }
        if config.metrics_backend.is_cloud_monitoring() {
            scopes.push(MONITORING_SCOPE);
        }
        if config.needs_firestore_credentials() {
            scopes.push(DATASTORE_SCOPE);
        }
        credentials::check(tokens.as_ref(), &scopes)
            .await
            .map_err(|e| StartupError::Credentials { step: "no usable Google credentials", detail: e.to_string() })?;
        Some(tokens)
    } else {
        None
    };
    let query_timeout = config.warehouse.query_timeout;
    let warehouse: Arc<dyn Warehouse> = match (&config.warehouse.emulator_host, &tokens) {
        (Some(host), _) => Arc::new({
            pipeline_run_metrics::warehouse::probe::warn_if_unreachable(host).await;
            BigQuery::emulator(host, &config.data_project, query_timeout, http.clone()).await.map_err(|detail| {
                StartupError::Backend { step: "cannot set up the BigQuery emulator client", detail }
            })?
        }),
        (None, Some(tokens)) => Arc::new(
            BigQuery::production(tokens.clone(), &config.data_project, query_timeout, http.clone())
                .await
                .map_err(|detail| StartupError::Backend { step: "cannot set up the BigQuery client", detail })?,
        ),
        (None, None) => unreachable!("needs_google_credentials covers BigQuery"),
    };
    let retry = Retry { deadline: config.sink_deadline, ..Retry::default() };
    let sink: Arc<dyn MetricSink> = match &config.metrics_backend {
        MetricsBackend::Stdout { format } => {
            let out = Tee::open(config.metrics_file.as_deref())
                .map_err(|detail| StartupError::Backend { step: "cannot create the metrics file", detail })?;
            Arc::new(JsonLines::with_format(out, format.clone()))
        }
        MetricsBackend::CloudMonitoring(GcmConfig { endpoint, resource, cumulative }) => {
            let tokens = tokens.clone().expect("checked above");
            Arc::new(
                CloudMonitoring::new(http.clone(), tokens, endpoint, resource.clone(), retry)
                    .with_cumulative(cumulative.settings(Instance::process())),
            )
        }
        MetricsBackend::Otlp(otlp @ OtlpConfig { endpoint, service_name, .. }) => {
            Arc::new(Otlp::new(http.clone(), endpoint, otlp.header_pairs(), service_name, retry))
        }
    };
    let mut projects = Projects::new(config.metric_project.clone(), config.data_project.clone());
    projects.allowed_datasets = config.delivery.allowed_datasets.clone();
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
        let facts = fact_store(&config.lifecycle.fact_store, http.clone(), tokens.clone()).await?;
        let lifecycle = Lifecycle::new(profiles, config.metric_project.clone(), config.lifecycle.lookup_wait);
        Some(LifecycleParts { lifecycle: Arc::new(lifecycle), facts })
    };
    let storage = match (&config.storage_emulator_host, &tokens) {
        (Some(host), _) => Some(Arc::new(Storage::emulator(http.clone(), host))),
        (None, Some(tokens)) => Some(Arc::new(Storage::production(http.clone(), tokens.clone()))),
        (None, None) => None,
    };
    let options = Options {
        max_body_bytes: config.ingress.max_body_bytes,
        delivery: config.delivery.clone(),
        verifier,
        lifecycle,
        storage,
        lineage_api_key: config.ingress.lineage_api_key.clone(),
    };
    Ok(Arc::new(App::new(Dispatcher::new(handlers, projects), warehouse, sink, options)))
}

/// The fact store, checked with one cheap call, so that a wrong URL, project or database stops
/// the process at startup instead of failing every record.
async fn fact_store(
    config: &FactStoreConfig,
    http: reqwest::Client,
    tokens: Option<Arc<dyn TokenSource>>,
) -> Result<Arc<dyn FactStore>, StartupError> {
    let store: Arc<dyn FactStore> = match config {
        FactStoreConfig::Memory { capacity } => Arc::new(pipeline_run_metrics::facts::memory::Memory::new(*capacity)),
        FactStoreConfig::Redis { url, prefix, ttl, timeout } => {
            Arc::new(Redis::connect(url.expose(), prefix, *ttl, *timeout).await.map_err(|detail| {
                StartupError::Backend { step: "cannot reach the fact store (FACT_STORE=redis, REDIS_URL)", detail }
            })?)
        }
        FactStoreConfig::Firestore { project, database, collection_prefix, emulator_host, ttl, timeout } => {
            let endpoint = match emulator_host {
                Some(h) => format!("http://{h}"),
                None => firestore::PRODUCTION_ENDPOINT.to_string(),
            };
            let tokens = match emulator_host {
                Some(_) => None,
                None => Some(tokens.expect("needs_google_credentials covers Firestore")),
            };
            let settings = firestore::Settings {
                endpoint,
                project: project.clone(),
                database: database.clone(),
                collection_prefix: collection_prefix.clone(),
                ttl: *ttl,
                timeout: *timeout,
                tokens,
            };
            let store = Firestore::new(http, settings);
            store.check().await.map_err(|detail| StartupError::Backend {
                step: "cannot reach the fact store (FACT_STORE=firestore, FIRESTORE_PROJECT, FIRESTORE_DATABASE)",
                detail,
            })?;
            Arc::new(store)
        }
    };
    Ok(store)
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
    let server = pipeline_run_metrics::ingress::server::serve(listener, app, config.ingress.connections, async move {
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

/// mimalloc instead of glibc's malloc: decoding and dispatching one event makes a few hundred
/// small allocations (JSON values, row maps, label strings), and with glibc's allocator about a
/// third of that CPU time went to malloc/free (perf, BENCHMARKS.md "Decode plus dispatch").
/// The benches declare the same allocator, so they measure what this binary runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
