//! Structured logs: one JSON object per line on stderr, with the fields Cloud Logging reads
//! (`severity`, `message`, `time`) plus the event's fields. Libraries that log through `log`
//! (gcp-bigquery-client) are bridged in.
//!
//! Payload variables are never logged: they hold e-mail addresses (`responsibles`). Only ids,
//! pipeline/status and error texts the function itself wrote reach the log.

use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

struct JsonVisitor(Map<String, Value>);

impl Visit for JsonVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
}

/// Cloud Logging severity of a tracing level.
pub fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

/// Formats one event as a JSON log line (without the newline).
pub fn format_line(level: &Level, target: &str, fields: Map<String, Value>) -> String {
    let mut fields = fields;
    let message = fields.remove("message").unwrap_or(Value::String(String::new()));
    // `log` records bridged by tracing-log carry their origin in `log.*` fields.
    let target =
        fields.remove("log.target").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| target.to_string());
    fields.retain(|k, _| !k.starts_with("log."));
    let mut out = Map::new();
    out.insert("severity".into(), severity(level).into());
    out.insert("message".into(), message);
    out.insert("time".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into());
    out.insert("target".into(), target.into());
    out.extend(fields);
    Value::Object(out).to_string()
}

/// Writes each log line (without its newline); stderr in the process, a buffer in tests, or
/// above a progress bar (`replay` on a terminal).
pub type Out = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

struct JsonLayer {
    out: Out,
}

/// Fields of a span, kept in its extensions so that every event inside it carries them
/// (message id, Datastream uuid, delivery attempt of the event being processed).
struct SpanFields(Map<String, Value>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for JsonLayer {
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let mut visitor = JsonVisitor(Map::new());
        attrs.record(&mut visitor);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(visitor.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut visitor = JsonVisitor(Map::new());
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    visitor.0.extend(fields.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        event.record(&mut visitor);
        let line = format_line(event.metadata().level(), event.metadata().target(), visitor.0);
        (self.out)(&line);
    }
}

/// `LOG_LEVEL`: `error`, `warn` (`warning`), `info` (the default), `debug`, `trace` or `off`,
/// any case.
pub fn level_from_vars(vars: &crate::vars::Vars) -> Result<LevelFilter, crate::vars::ConfigError> {
    match vars.pick(&["LOG_LEVEL"]) {
        None => Ok(LevelFilter::INFO),
        Some((n, v)) => match v.to_ascii_lowercase().as_str() {
            "error" => Ok(LevelFilter::ERROR),
            "warn" | "warning" => Ok(LevelFilter::WARN),
            "info" => Ok(LevelFilter::INFO),
            "debug" => Ok(LevelFilter::DEBUG),
            "trace" => Ok(LevelFilter::TRACE),
            "off" => Ok(LevelFilter::OFF),
            _ => Err(crate::vars::ConfigError::new(&n, &v, "one of error, warn, info, debug, trace, off")),
        },
    }
}

/// Installs the JSON logger at `level`, writing to stderr. Dependencies are held to WARN unless
/// the level is DEBUG or finer; `gcp_auth` to ERROR: its warnings are its own retries ("failed
/// to refresh token, trying again..." with a Debug dump of the hyper error), which end either in
/// a token or in a `TokenError` this crate reports once, in its words.
pub fn init(level: LevelFilter) {
    let out: Out = std::sync::Arc::new(|line: &str| {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    });
    init_with(level, out);
}

/// Installs the JSON logger at `level`, each line given to `out`.
pub fn init_with(level: LevelFilter, out: Out) {
    let _ = tracing_log::LogTracer::init();
    let deps_level = if level >= LevelFilter::DEBUG { level } else { LevelFilter::WARN.min(level) };
    let quiet_level = if level >= LevelFilter::DEBUG { level } else { LevelFilter::ERROR.min(level) };
    let filter = tracing_subscriber::filter::filter_fn(move |m| {
        let ours = m.target().starts_with("pipeline_run_metrics");
        let bridged = m.target() == "log";
        let limit = match () {
            _ if ours || bridged => level,
            _ if m.target().starts_with("gcp_auth") => quiet_level,
            _ => deps_level,
        };
        *m.level() <= limit
    })
    // the most verbose level any target gets: the macros of less severe events then cost one
    // comparison (a replay at WARN skips its per-record INFO lines that way)
    .with_max_level_hint(level);
    let subscriber = tracing_subscriber::registry().with(JsonLayer { out }.with_filter(filter));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_of_an_event_carries_the_event_ids() {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let out: Out = std::sync::Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_string()));
        let subscriber = tracing_subscriber::registry().with(JsonLayer { out });
        tracing::subscriber::with_default(subscriber, || {
            let span =
                tracing::info_span!("event", message_id = "m-7", datastream_uuid = "u-9", delivery_attempt = 3u64);
            let _in = span.enter();
            tracing::warn!(table = "ds.t", "retrying a query");
            tracing::info!("event processed");
        });
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 2);
        for l in lines.iter() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["message_id"], "m-7", "{l}");
            assert_eq!(v["datastream_uuid"], "u-9", "{l}");
            assert_eq!(v["delivery_attempt"], 3, "{l}");
        }
        assert!(lines[0].contains("\"table\":\"ds.t\""));
    }

    #[test]
    fn line_has_cloud_logging_fields() {
        let mut f = Map::new();
        f.insert("message".into(), "event processed".into());
        f.insert("status".into(), 204.into());
        let line = format_line(&Level::WARN, "pipeline_run_metrics::transport", f);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["severity"], "WARNING");
        assert_eq!(v["message"], "event processed");
        assert_eq!(v["status"], 204);
        assert_eq!(v["target"], "pipeline_run_metrics::transport");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert!(!line.contains('\n'));
    }
}
