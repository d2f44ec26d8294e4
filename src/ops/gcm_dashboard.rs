//! The Cloud Monitoring dashboard: a `Dashboard` REST resource
//! (<https://cloud.google.com/monitoring/api/ref_v3/rest/v1/projects.dashboards>) for
//! `gcloud monitoring dashboards create --config-from-file=FILE`.
//!
//! A `mosaicLayout` of 48 columns: a text tile that says where the data comes from, then per
//! section a `collapsibleGroup` tile spanning the section and its widgets: `scorecard`s for the
//! overview, `xyChart`s for the rest. Every query is a `timeSeriesFilter` (a Monitoring filter
//! and an aggregation), or a `timeSeriesFilterRatio` for success rates: counts are aligned with
//! `ALIGN_DELTA` and summed with `REDUCE_SUM` by the chart's labels, which adds up the series
//! of all instances (with the `gcm` backend each instance writes its own cumulative series,
//! `task_id` = the instance); quantiles merge the distributions of all series with
//! `REDUCE_PERCENTILE_50`/`_95`. Pinned dashboard filters on `orchestrator` and `pipeline` apply
//! to every widget whose series have the label.

use serde_json::{Value, json};

use super::gcm::{aggregation, filter, is_count, percentile_reducer};
use super::model::Model;
use super::panels::{Panel, Query, Unit, Viz, sections};
use super::{GcmSource, Inputs, OpsError};

/// Alignment of the charts: one point per hour (runs of data pipelines are sparse).
pub const CHART_PERIOD_SECS: u64 = 3600;
/// Alignment of the scorecards: the last 24 hours.
pub const SCORECARD_PERIOD_SECS: u64 = 86_400;
const COLUMNS: u32 = 48;

fn query(source: GcmSource, model: &Model, q: &Query, period: u64) -> Result<Value, OpsError> {
    let m = model.get(q.metric()).ok_or_else(|| OpsError::Unknown(q.metric().to_string()))?;
    Ok(match q {
        Query::Increase { matchers, by, .. } => {
            let agg = if is_count(source, m) {
                aggregation(period, "ALIGN_DELTA", "REDUCE_SUM", by)
            } else {
                aggregation(period, "ALIGN_DELTA", "REDUCE_COUNT", by)
            };
            json!({"timeSeriesFilter": {"filter": filter(source, m, matchers), "aggregation": agg}})
        }
        Query::Ratio { num, den, by, .. } => json!({"timeSeriesFilterRatio": {
            "numerator": {"filter": filter(source, m, num), "aggregation": aggregation(period, "ALIGN_DELTA", "REDUCE_SUM", by)},
            "denominator": {"filter": filter(source, m, den), "aggregation": aggregation(period, "ALIGN_DELTA", "REDUCE_SUM", by)},
        }}),
        Query::Quantile { q: quantile, by, .. } => {
            let reducer = percentile_reducer(*quantile).ok_or(OpsError::Quantile(*quantile))?;
            json!({"timeSeriesFilter": {"filter": filter(source, m, &[]), "aggregation": aggregation(period, "ALIGN_DELTA", reducer, by)}})
        }
        Query::Gauge { by, .. } => json!({"timeSeriesFilter": {
            "filter": filter(source, m, &[]),
            "aggregation": aggregation(period, "ALIGN_MEAN", "REDUCE_MEAN", by),
        }}),
        Query::Points { by, .. } => {
            // the failure gauge: one point per failure (`gcm`), one line per failure (logs-based counter)
            let agg = if source == GcmSource::LogsBased {
                aggregation(period, "ALIGN_DELTA", "REDUCE_SUM", by)
            } else {
                aggregation(period, "ALIGN_COUNT", "REDUCE_SUM", by)
            };
            json!({"timeSeriesFilter": {"filter": filter(source, m, &[]), "aggregation": agg}})
        }
    })
}

fn legend(prefix: &str, by: &[String]) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !prefix.is_empty() {
        parts.push(prefix.to_string());
    }
    parts.extend(by.iter().map(|k| format!("${{metric.labels.{k}}}")));
    parts.join(" ")
}

fn axis_label(unit: Unit) -> &'static str {
    match unit {
        Unit::Count => "per hour",
        Unit::Seconds => "seconds",
        Unit::Ratio => "fraction",
        Unit::None => "value",
    }
}

fn widget(source: GcmSource, model: &Model, p: &Panel) -> Result<Value, OpsError> {
    Ok(match p.viz {
        Viz::Stat => {
            let t = &p.targets[0];
            json!({
                "title": format!("{} (24 h)", p.title),
                "scorecard": {
                    "timeSeriesQuery": query(source, model, &t.query, SCORECARD_PERIOD_SECS)?,
                    "sparkChartView": {"sparkChartType": "SPARK_LINE"},
                },
            })
        }
        Viz::TimeSeries => {
            let mut data_sets = Vec::new();
            for t in &p.targets {
                let mut ds = json!({
                    "timeSeriesQuery": query(source, model, &t.query, CHART_PERIOD_SECS)?,
                    "plotType": "LINE",
                    "targetAxis": "Y1",
                });
                let l = legend(&t.legend, t.query.by());
                if !l.is_empty() {
                    ds["legendTemplate"] = json!(l);
                }
                data_sets.push(ds);
            }
            json!({
                "title": p.title,
                "xyChart": {
                    "dataSets": data_sets,
                    "yAxis": {"label": axis_label(p.unit), "scale": "LINEAR"},
                    "chartOptions": {"mode": "COLOR"},
                },
            })
        }
    })
}

fn intro(source: GcmSource) -> String {
    let from = match source {
        GcmSource::Custom => {
            "Metrics written by `METRICS_BACKEND=gcm` (`custom.googleapis.com/...`). Counters and histograms are one \
             CUMULATIVE series per instance (`generic_task`, `task_id` = the instance): every chart sums them \
             (`ALIGN_DELTA`, then `REDUCE_SUM` or a percentile over all series)."
        }
        GcmSource::LogsBased => {
            "Logs-based metrics (`logging.googleapis.com/user/...`) counted by Cloud Logging from the \
             `METRICS_BACKEND=stdout` lines: create them first (`pipeline-run-metrics` log metric definitions)."
        }
    };
    format!(
        "**pipeline-run-metrics**: run lifecycle (started, finished, durations, SLA, retries, CDC lag) and the claim \
         metrics of the handler catalogue. {from} Charts are per hour, scorecards over the last 24 hours. Filter \
         with the pinned `orchestrator` and `pipeline` filters."
    )
}

/// Renders the dashboard (see the module documentation).
pub fn render(inputs: &Inputs, model: &Model) -> Result<String, OpsError> {
    let source = inputs.gcm_source;
    let mut tiles = vec![json!({
        "xPos": 0, "yPos": 0, "width": COLUMNS, "height": 4,
        "widget": {"title": "About this dashboard", "text": {"content": intro(source), "format": "MARKDOWN"}},
    })];
    let mut y = 4u32;
    for section in sections(model) {
        let group_at = tiles.len();
        tiles.push(Value::Null); // the group tile, once its height is known
        let (mut x, mut row_height) = (0u32, 0u32);
        let top = y;
        for p in &section.panels {
            let (w, h) = match p.viz {
                Viz::Stat => (12, 8),
                Viz::TimeSeries => (24, 16),
            };
            if x + w > COLUMNS {
                x = 0;
                y += row_height;
                row_height = 0;
            }
            tiles.push(json!({"xPos": x, "yPos": y, "width": w, "height": h, "widget": widget(source, model, p)?}));
            x += w;
            row_height = row_height.max(h);
        }
        y += row_height;
        tiles[group_at] = json!({
            "xPos": 0, "yPos": top, "width": COLUMNS, "height": y - top,
            "widget": {"title": section.title, "collapsibleGroup": {"collapsed": false}},
        });
    }
    let mut filters = Vec::new();
    for key in ["orchestrator", "pipeline"] {
        if model.metrics.values().any(|m| m.has(key)) {
            filters.push(json!({"labelKey": key, "filterType": "METRIC_LABEL"}));
        }
    }
    let dashboard = json!({
        "displayName": inputs.title,
        "labels": {"pipeline-run-metrics": ""},
        "dashboardFilters": filters,
        "mosaicLayout": {"columns": COLUMNS, "tiles": tiles},
    });
    Ok(serde_json::to_string_pretty(&dashboard).expect("JSON of JSON values"))
}
