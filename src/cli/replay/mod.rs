//! `replay`: change records read from files (Datastream JSON Lines, gzip or not; Debezium or
//! AWS DMS JSON lines), local or in Cloud Storage, sent through the same [`Pipeline`] as live
//! deliveries ([`Pipeline::replay`]): de-duplication, the claim handlers (unless
//! `--no-queries`), the lifecycle profiles and the fact memory; history records processed.
//!
//! Per file: read line by line, in chunks (256 records; 16 when claim handlers query
//! BigQuery, to bound the queries in flight); a bad line is counted and named by file and line,
//! an unreadable file is named and the next one read. The points go through [`tally::Tally`]
//! (counted per metric; kept back when the backend cannot take them; nothing written in a dry
//! run) to the configured backend. At the end: the backend's last write, the facts file, the
//! summary ([`report`]) and the exit code.

pub mod args;
pub mod detect;
pub mod progress;
pub mod report;
pub mod sources;
pub mod state;
pub mod tally;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::Instrument;
use tracing::level_filters::LevelFilter;

use super::build::{self, Needs};
use super::failed;
use crate::config::{Config, FactStoreConfig, MetricsBackend};
use crate::decode::files::{FileKind, Lines, avro_error};
use crate::facts::memory::Memory;
use crate::facts::{FactStore, Key};
use crate::google::storage::Storage;
use crate::handlers::Dispatcher;
use crate::handlers::lifecycle::Lifecycle;
use crate::pipeline::{LifecycleParts, Pipeline};
use crate::sink::MetricSink;
use crate::startup::StartupError;
use crate::warehouse::{Param, Row, TableRef, Warehouse, WarehouseError};
use args::{ReplayArgs, SummaryFormat};
use progress::Progress;
use report::{FactsFile, Report};
use sources::{Counted, Source};
use tally::Tally;

/// Records per chunk without claim handlers (one sink call each).
const CHUNK: usize = crate::pipeline::files::CHUNK;
/// Records per chunk when claim handlers query BigQuery.
const CHUNK_WITH_QUERIES: usize = 16;

/// Runs a replay to its end; see the module documentation and [`report`] for the exit code.
pub async fn run(args: ReplayArgs) -> ExitCode {
    // without the claim handlers no dataset is read
    let config = match build::config(!args.no_queries) {
        Ok(c) => c,
        Err(e) => return failed(StartupError::Config(e)),
    };
    match Replay::prepare(&args, &config).await {
        Ok(replay) => replay.run(args).await,
        Err(e) => failed(e),
    }
}

/// Everything a replay needs, checked before the first record is read.
struct Replay {
    pipeline: Pipeline,
    tally: Arc<Tally>,
    memory: Option<Arc<Memory>>,
    storage: Option<Arc<Storage>>,
    files: Vec<Source>,
    /// Files of directories and prefixes not read (by their names).
    skipped: usize,
    chunk: usize,
    max_line_bytes: usize,
    level: LevelFilter,
    backend: &'static str,
}

impl Replay {
    async fn prepare(args: &ReplayArgs, config: &Config) -> Result<Replay, build::Failure> {
        // LOG_LEVEL when set; else warnings only: one line per record would bury the progress
        let level = if std::env::var_os("LOG_LEVEL").is_some() { config.log_level } else { LevelFilter::WARN };
        let (handlers, profiles) = build::catalogue(config)?;
        let handlers = if args.no_queries { Vec::new() } else { handlers };
        if handlers.is_empty() && profiles.is_empty() {
            return Err(StartupError::Usage {
                step: "nothing to replay",
                detail: "no claim handler (--no-queries) and no lifecycle profile (PROFILES)".into(),
            });
        }
        let memory_bounds = match &config.lifecycle.fact_store {
            // a replay's memory must hold every fact of the history: unbounded unless set
            FactStoreConfig::Memory { capacity, bytes } => {
                let capacity = if std::env::var_os("FACT_MEMORY_CAPACITY").is_some() { *capacity } else { u64::MAX };
                let bytes = match bytes {
                    Some(b) => *b,
                    None if capacity == u64::MAX => u64::MAX,
                    None => crate::facts::memory::default_bytes(capacity),
                };
                Some((capacity, bytes))
            }
            _ if args.facts_file.is_some() => {
                return Err(StartupError::Usage {
                    step: "--facts-file needs FACT_STORE=memory",
                    detail: format!("FACT_STORE={} remembers facts itself", config.lifecycle.fact_store.name()),
                });
            }
            _ => None,
        };
        if let (Some(since), Some(until)) = (args.since, args.until)
            && since >= until
        {
            return Err(StartupError::Usage {
                step: "--since must be before --until",
                detail: format!(
                    "--since {} is not before --until {}: no record could be selected",
                    since.to_rfc3339(),
                    until.to_rfc3339()
                ),
            });
        }
        let saved = match &args.facts_file {
            Some(path) => {
                let saved = state::load(path)
                    .map_err(|detail| StartupError::Backend { step: "cannot load the facts file", detail })?;
                if !args.dry_run {
                    state::check_writable(path)
                        .map_err(|detail| StartupError::Usage { step: "--facts-file cannot be saved", detail })?;
                }
                saved
            }
            None => None,
        };
        let needs = Needs {
            bigquery: !handlers.is_empty(),
            storage: args.sources.iter().any(|s| s.starts_with("gs://")),
            backend: !args.dry_run,
        };
        let http = build::http()?;
        let tokens = build::tokens(config, needs, &http).await?;
        let warehouse: Arc<dyn Warehouse> =
            if needs.bigquery { build::warehouse(config, &http, tokens.as_ref()).await? } else { Arc::new(NoQueries) };
        let gcm = matches!(config.metrics_backend, MetricsBackend::CloudMonitoring { .. });
        let backend = match args.dry_run {
            true => None,
            false => Some(build::sink(config, &http, tokens.as_ref())?),
        };
        let tally = Arc::new(Tally::new(backend, gcm));
        let (memory, facts): (Option<Arc<Memory>>, Option<Arc<dyn FactStore>>) = match memory_bounds {
            _ if profiles.is_empty() => (None, None),
            Some((capacity, bytes)) => {
                let memory = Arc::new(Memory::with_bounds(capacity, bytes));
                if let Some(s) = &saved {
                    memory.restore(s.memory.clone());
                }
                (Some(memory.clone()), Some(memory))
            }
            None => (None, Some(build::fact_store(&config.lifecycle.fact_store, http.clone(), tokens.clone()).await?)),
        };
        let lifecycle = facts.map(|facts| LifecycleParts {
            lifecycle: Arc::new(Lifecycle::new(profiles, config.metric_project.clone(), config.lifecycle.lookup_wait)),
            facts,
        });
        let mut delivery = config.delivery.clone();
        // a backfill file is history: what a replay is for
        delivery.process_history = true;
        // the summary is a replay's own report
        delivery.self_metrics = false;
        if args.facts_file.is_some() {
            // every record of the run, and of the runs before, is remembered
            delivery.dedup_window = Duration::from_secs(100 * 365 * 24 * 3600);
            delivery.dedup_capacity = usize::MAX;
        }
        let chunk = if handlers.is_empty() { CHUNK } else { CHUNK_WITH_QUERIES };
        let dispatcher = Dispatcher::new(handlers, build::projects(config));
        let sink: Arc<dyn MetricSink> = tally.clone();
        let pipeline = Pipeline::new(dispatcher, warehouse, sink, delivery).with_lifecycle(lifecycle);
        if let Some(s) = saved {
            pipeline.remember_answered(
                s.records.into_iter().map(|(id, content)| crate::pipeline::dedup::Key { id: id.0, content: content.0 }),
            );
        }
        let storage = build::storage(config, &http, tokens.as_ref());
        let sources::Expanded { files, skipped } =
            sources::expand(&args.sources, storage.as_deref(), &pipeline.parent_tables())
                .await
                .map_err(|detail| StartupError::Backend { step: "cannot read the sources", detail })?;
        Ok(Replay {
            pipeline,
            tally,
            memory,
            storage,
            files,
            skipped,
            chunk,
            max_line_bytes: config.delivery.files.max_line_bytes,
            level,
            backend: config.metrics_backend.name(),
        })
    }

    async fn run(self, args: ReplayArgs) -> ExitCode {
        let started = Instant::now();
        let total = self.files.iter().map(|f| f.size).sum::<Option<u64>>();
        let every = Duration::from_secs_f64(args.progress_interval);
        let progress = Progress::start(args.progress, every, total, self.files.len());
        crate::logging::init_with(self.level, progress.log_out());
        let interrupted = Arc::new(AtomicBool::new(false));
        let on_signal = interrupted.clone();
        let signal = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.store(true, Ordering::Relaxed);
            }
        });
        let mut report = Report {
            dry_run: args.dry_run,
            backend: self.backend,
            files: self.files.len(),
            skipped_files: self.skipped,
            ..Default::default()
        };
        for (i, file) in self.files.iter().enumerate() {
            if interrupted.load(Ordering::Relaxed) {
                break;
            }
            progress.file(i + 1, &file.display());
            self.read(&args, file, &progress, &interrupted, &mut report).await;
        }
        signal.abort();
        report.interrupted = interrupted.load(Ordering::Relaxed);
        let flushed = self.tally.flush().await;
        report.flush_unwritten = flushed.unwritten;
        progress.finish();
        if let Some(memory) = &self.memory {
            report.evictions = memory.evictions();
        }
        if let Some(path) = &args.facts_file {
            let records: Vec<(Key, Key)> =
                self.pipeline.answered().into_iter().map(|k| (Key(k.id), Key(k.content))).collect();
            let memory = self.memory.as_ref().map(|m| m.snapshot()).unwrap_or_default();
            let (n_records, n_facts) = (records.len(), memory.facts.len());
            let error = if args.dry_run { None } else { state::save(path, &state::State::new(records, memory)).err() };
            report.facts_file =
                Some(FactsFile { path: path.display().to_string(), records: n_records, facts: n_facts, error });
        }
        report.metrics = self.tally.counts();
        report.elapsed = started.elapsed();
        match args.summary {
            SummaryFormat::Text => eprint!("{}", report.text()),
            SummaryFormat::Json => eprintln!("{}", report.json()),
        }
        report.exit_code()
    }

    /// Reads one file to its end (or its first unreadable byte), chunk by chunk.
    async fn read(
        &self,
        args: &ReplayArgs,
        file: &Source,
        progress: &Progress,
        interrupted: &AtomicBool,
        report: &mut Report,
    ) {
        let name = file.display();
        if FileKind::of(&name) == FileKind::Avro {
            report.unreadable.push((name.clone(), avro_error(&name).message));
            return;
        }
        let stream = match file.open(self.storage.as_deref()).await {
            Ok(s) => Counted::new(s, progress.bytes()),
            Err(e) => {
                report.unreadable.push((name, e));
                return;
            }
        };
        let lines = match Lines::new(stream, &name, self.max_line_bytes).await {
            Ok(l) => l,
            Err(e) => {
                report.unreadable.push((name, e.to_string()));
                return;
            }
        };
        let mut lines =
            lines.with_decoder(args.format.decoder()).with_plain_datastream(args.format.decodes_datastream());
        // every log line of the file's records names it
        let span = tracing::warn_span!("file", file = name.as_str());
        let mut first = true;
        loop {
            let chunk = match lines.next_chunk(self.chunk).await {
                Ok(c) if c.is_empty() => break,
                Ok(c) => c,
                Err(e) => {
                    report.unreadable.push((name.clone(), format!("cannot be read after line {}: {e}", lines.line())));
                    break;
                }
            };
            // a file in another format (a wal2json recording) is one error, not one per line
            if std::mem::take(&mut first)
                && let Some(why) = detect::unsupported(&chunk)
            {
                report.unreadable.push((name.clone(), why));
                break;
            }
            let n = chunk.len();
            report.records += n as u64;
            let mut selected = Vec::with_capacity(n);
            for input in chunk {
                match &input.record {
                    Ok(e) if !args.selects(e, self.pipeline.point_time(e)) => report.filtered += 1,
                    _ => selected.push(input),
                }
            }
            for r in self.pipeline.replay(selected).instrument(span.clone()).await {
                report.record(&name, r);
            }
            progress.add_records(n);
            if interrupted.load(Ordering::Relaxed) {
                break;
            }
        }
    }
}

/// The warehouse of `--no-queries`: no handler queries it (there is none); a call would be a
/// bug, answered as a permanent refusal.
struct NoQueries;

#[async_trait::async_trait]
impl Warehouse for NoQueries {
    async fn table_exists(&self, _: &TableRef) -> Result<bool, WarehouseError> {
        Err(WarehouseError::Rejected("replay --no-queries: no BigQuery".into()))
    }

    async fn query(&self, _: &str, _: &[(String, Param)]) -> Result<Vec<Row>, WarehouseError> {
        Err(WarehouseError::Rejected("replay --no-queries: no BigQuery".into()))
    }
}
