//! `--check`'s table (`make check-handlers`): which metric is written for which tables,
//! pipelines and statuses, one row per handler and metric, the lifecycle profiles' metrics
//! after the handlers'.

use std::sync::Arc;

use super::Handler;
use super::lifecycle::{Profile, rules};

/// One row: who writes `metric`, and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The handler's name, or `lifecycle <profile>`.
    pub source: String,
    pub tables: String,
    pub pipelines: String,
    pub statuses: String,
    pub metric: String,
}

/// The rows of `handlers` (in registration order) and of `profiles`.
pub fn rows(handlers: &[Arc<dyn Handler>], profiles: &[Profile]) -> Vec<Row> {
    let mut out = Vec::new();
    for h in handlers {
        let s = h.summary();
        for m in h.metrics() {
            out.push(Row {
                source: h.name().to_string(),
                tables: s.tables.join(","),
                pipelines: s.pipelines.join(","),
                statuses: s.statuses.join(","),
                metric: m.name,
            });
        }
    }
    for r in rules::rules(profiles) {
        out.push(Row {
            source: r.source,
            tables: r.table,
            pipelines: "*".into(),
            statuses: r.statuses.join(","),
            metric: r.metric.to_string(),
        });
    }
    out
}

const HEADER: [&str; 5] = ["HANDLER", "TABLES", "PIPELINES", "STATUSES", "METRIC"];

/// The rows as a text table: a header, columns padded to their widest cell, two spaces apart.
pub fn render(rows: &[Row]) -> String {
    let cells =
        |r: &Row| [r.source.clone(), r.tables.clone(), r.pipelines.clone(), r.statuses.clone(), r.metric.clone()];
    let mut widths = HEADER.map(str::len);
    for r in rows {
        for (w, c) in widths.iter_mut().zip(cells(r)) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: [String; 5]| {
        let mut s = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i + 1 == cols.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(HEADER.map(str::to_owned));
    for r in rows {
        out.push_str(&line(cells(r)));
    }
    out
}
