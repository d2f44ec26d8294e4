//! The Grafana dashboard: Grafana's dashboard JSON model
//! (<https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/>;
//! the published types are `@grafana/schema`'s `Dashboard`, `Panel` and `RowPanel`) with
//! PromQL over the Prometheus names of the OTLP metrics ([`super::naming`]), for import in the
//! UI, `POST /api/dashboards/db` (`{"dashboard": <file>, "overwrite": true}`) or file
//! provisioning.
//!
//! Variables: `datasource` (any Prometheus data source), `orchestrator`, `pipeline` and each
//! extra label of the profiles (`partner`), multi-valued with "All" = `.*` (which also matches
//! series without the label). One `row` per section; `stat` panels over the dashboard's range,
//! `timeseries` panels over `$__rate_interval`. Counts use the increments of
//! [`super::promql`], which also count the first increments of each new instance's series.

use serde_json::{Value, json};

use super::model::{Metric, Model};
use super::panels::{Panel, Query, Unit, Viz, sections};
use super::promql::{Selector, counted, quantile, sum_increments};
use super::{Inputs, OpsError};
use crate::handlers::lifecycle::names;
use crate::sink::PointKind;

/// The Grafana schema version the dashboard is written for (Grafana 10.x/11.x).
pub const SCHEMA_VERSION: u32 = 39;

fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// The dashboard variables' matchers of a metric: `orchestrator`, `pipeline` and the extra
/// labels, for the labels it has.
fn with_variables(m: &Metric, mut s: Selector, variables: &[String]) -> Selector {
    for v in variables {
        if m.has(v) {
            s = s.re(v, &format!("${v}"));
        }
    }
    s
}

fn expr(model: &Model, q: &Query, window: &str, variables: &[String]) -> Result<String, OpsError> {
    let m = model.get(q.metric()).ok_or_else(|| OpsError::Unknown(q.metric().to_string()))?;
    Ok(match q {
        Query::Increase { matchers, by, .. } => {
            let mut s = with_variables(m, counted(m), variables);
            for (k, v) in matchers {
                s = s.eq(k, v);
            }
            sum_increments(&s, window, by)
        }
        Query::Ratio { num, den, by, .. } => {
            let sel = |ms: &[(String, String)]| {
                let mut s = with_variables(m, counted(m), variables);
                for (k, v) in ms {
                    s = s.eq(k, v);
                }
                s
            };
            super::promql::ratio(&sel(num), &sel(den), window, by)
        }
        Query::Quantile { q, by, .. } => {
            let s = with_variables(m, Selector::of(m, "_bucket"), variables);
            quantile(&s, *q, window, by)
        }
        Query::Gauge { by, .. } | Query::Points { by, .. } => {
            // a gauge: its latest value in the interval, across instances (a point per failure of the
            // failure gauge cannot be counted here: Prometheus keeps sampling the last value)
            let s = with_variables(m, Selector::of(m, ""), variables);
            let by = if by.is_empty() { String::new() } else { format!(" by ({})", by.join(", ")) };
            format!("max{by} (last_over_time({}[{window}]))", s.render())
        }
    })
}

fn unit(u: Unit) -> &'static str {
    match u {
        Unit::Count => "short",
        Unit::Seconds => "s",
        Unit::Ratio => "percentunit",
        Unit::None => "none",
    }
}

fn legend(prefix: &str, by: &[String]) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !prefix.is_empty() {
        parts.push(prefix.to_string());
    }
    parts.extend(by.iter().map(|k| format!("{{{{{k}}}}}")));
    if parts.is_empty() { "__auto".into() } else { parts.join(" ") }
}

fn panel(model: &Model, p: &Panel, id: u32, grid: Value, variables: &[String]) -> Result<Value, OpsError> {
    let stat = p.viz == Viz::Stat;
    let window = if stat { "$__range" } else { "$__rate_interval" };
    let mut targets = Vec::new();
    for (i, t) in p.targets.iter().enumerate() {
        let window =
            if matches!(t.query, Query::Gauge { .. } | Query::Points { .. }) && !stat { "$__interval" } else { window };
        targets.push(json!({
            "refId": ((b'A' + i as u8) as char).to_string(),
            "datasource": datasource(),
            "expr": expr(model, &t.query, window, variables)?,
            "legendFormat": legend(&t.legend, t.query.by()),
            "range": !stat,
            "instant": stat,
        }));
    }
    let mut defaults = json!({"unit": unit(p.unit)});
    if p.unit != Unit::None {
        defaults["min"] = json!(0);
    }
    let options = if stat {
        json!({
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
            "colorMode": "value", "graphMode": "none", "textMode": "auto", "justifyMode": "auto", "orientation": "auto",
        })
    } else {
        json!({
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": true, "calcs": []},
            "tooltip": {"mode": "multi", "sort": "desc"},
        })
    };
    Ok(json!({
        "id": id,
        "type": if stat { "stat" } else { "timeseries" },
        "title": p.title,
        "description": p.description,
        "datasource": datasource(),
        "gridPos": grid,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": targets,
    }))
}

fn query_variable(name: &str, query: String, label: &str) -> Value {
    json!({
        "name": name,
        "label": label,
        "type": "query",
        "datasource": datasource(),
        "query": query,
        "refresh": 2,
        "includeAll": true,
        "multi": true,
        "allValue": ".*",
        "current": {"selected": true, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
        "hide": 0,
    })
}

/// Renders the dashboard (see the module documentation).
pub fn render(inputs: &Inputs, model: &Model) -> Result<String, OpsError> {
    // the variables: labels of the lifecycle metrics, read from a metric that has them
    let mut variables: Vec<String> = Vec::new();
    let mut templating = vec![json!({
        "name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
        "hide": 0, "refresh": 1, "regex": "", "includeAll": false, "multi": false,
    })];
    let mut wanted: Vec<String> = vec!["orchestrator".into(), "pipeline".into()];
    wanted.extend(model.extra_lifecycle_labels());
    for key in wanted {
        let source = [names::RUN_FINISHED, names::RUN_STARTED, names::TASK_FINISHED, names::CDC_LAG]
            .iter()
            .filter_map(|n| model.get(n))
            .chain(model.metrics.values())
            .find(|m| m.has(&key) && m.kind != PointKind::Gauge);
        let Some(m) = source else { continue };
        let mut s = counted(m);
        if key != "orchestrator" && m.has("orchestrator") && variables.iter().any(|v| v == "orchestrator") {
            s = s.re("orchestrator", "$orchestrator");
        }
        templating.push(query_variable(&key, format!("label_values({}, {key})", s.render()), &key));
        variables.push(key);
    }

    let mut panels = Vec::new();
    let (mut id, mut y) = (1u32, 0u32);
    for section in sections(model) {
        panels.push(json!({
            "id": id, "type": "row", "title": section.title, "collapsed": false, "panels": [],
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
        }));
        id += 1;
        y += 1;
        let (mut x, mut row_h) = (0u32, 0u32);
        for p in &section.panels {
            let (w, h) = match p.viz {
                Viz::Stat => (6, 4),
                Viz::TimeSeries => (12, 8),
            };
            if x + w > 24 {
                x = 0;
                y += row_h;
                row_h = 0;
            }
            panels.push(panel(model, p, id, json!({"h": h, "w": w, "x": x, "y": y}), &variables)?);
            id += 1;
            x += w;
            row_h = row_h.max(h);
        }
        y += row_h;
    }
    let dashboard = json!({
        "uid": "pipeline-run-metrics",
        "title": inputs.title,
        "description": "Run lifecycle and claim metrics of pipeline-run-metrics (METRICS_BACKEND=otlp, through an OpenTelemetry Collector into Prometheus).",
        "tags": ["pipeline-run-metrics"],
        "editable": true,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "timezone": "utc",
        "refresh": "5m",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": templating},
        "panels": panels,
    });
    Ok(serde_json::to_string_pretty(&dashboard).expect("JSON of JSON values"))
}
