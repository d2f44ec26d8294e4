//! PromQL over the Prometheus names of the OTLP metrics ([`super::naming::prometheus_name`]),
//! shared by the Grafana dashboard and the alerting rules.
//!
//! **Counting increments.** Each instance of the function has its own series (label
//! `instance`, from `service.instance.id`), and a new series starts at its first value, not at
//! zero: `increase()` cannot see the increments that created it. A serverless instance that
//! counted one run and stopped would be invisible. So increments in a window `W` are
//! `(S unless S offset W) or increase(S[W])`: a series that did not exist `W` ago contributes
//! its whole value (everything it counted since it started, all inside `W`), the others their
//! increase. The same holds for histogram buckets, sums and counts.

use super::model::Metric;
use super::naming::prometheus_name;
use crate::sink::PointKind;

/// A series selector: a metric (or histogram series) and label matchers (`=` for values,
/// `=~` for dashboard variables).
#[derive(Debug, Clone)]
pub struct Selector {
    pub name: String,
    pub matchers: Vec<(String, &'static str, String)>,
}

impl Selector {
    /// The selector of a metric (for a histogram, its `suffix` series: `_bucket`, `_count`).
    pub fn of(m: &Metric, suffix: &str) -> Selector {
        Selector { name: format!("{}{suffix}", prometheus_name(&m.name, m.kind, &m.unit)), matchers: Vec::new() }
    }

    pub fn eq(mut self, label: &str, value: &str) -> Selector {
        self.matchers.push((label.to_string(), "=", value.to_string()));
        self
    }

    pub fn re(mut self, label: &str, value: &str) -> Selector {
        self.matchers.push((label.to_string(), "=~", value.to_string()));
        self
    }

    pub fn render(&self) -> String {
        if self.matchers.is_empty() {
            return self.name.clone();
        }
        let m: Vec<String> = self
            .matchers
            .iter()
            .map(|(k, op, v)| format!("{k}{op}{}", serde_json::to_string(v).expect("a string")))
            .collect();
        format!("{}{{{}}}", self.name, m.join(", "))
    }
}

/// Increments of `s` in the window `w` per series (see the module documentation).
pub fn increments(s: &Selector, w: &str) -> String {
    let s = s.render();
    format!("(({s} unless {s} offset {w}) or increase({s}[{w}]))")
}

fn by_clause(by: &[String]) -> String {
    if by.is_empty() { String::new() } else { format!(" by ({})", by.join(", ")) }
}

/// `sum by (...) (increments)`.
pub fn sum_increments(s: &Selector, w: &str, by: &[String]) -> String {
    format!("sum{} ({})", by_clause(by), increments(s, w))
}

/// The `q` quantile of a histogram's observations in `w`, merged across series by `by`.
pub fn quantile(bucket: &Selector, q: f64, w: &str, by: &[String]) -> String {
    let mut by_le: Vec<String> = by.to_vec();
    by_le.push("le".into());
    format!("histogram_quantile({q}, {})", sum_increments(bucket, w, &by_le))
}

/// The series a histogram or counter is read from: `_bucket` of a histogram, the counter itself.
pub fn counted(m: &Metric) -> Selector {
    match m.kind {
        PointKind::Histogram => Selector::of(m, "_count"),
        _ => Selector::of(m, ""),
    }
}

/// Increments of `num` over increments of `den` in `w`, by `by`; 0 (not nothing) for a group
/// with increments of `den` only.
pub fn ratio(num: &Selector, den: &Selector, w: &str, by: &[String]) -> String {
    let d = sum_increments(den, w, by);
    format!("({} or {d} * 0) / {d}", sum_increments(num, w, by))
}
