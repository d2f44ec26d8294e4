//! Label values checked in the one place every point passes before the sink: claim gauges,
//! lifecycle counters and histograms, failure gauges (the function's own metrics carry labels it
//! chooses itself).
//!
//! * Length: a value longer than `MAX_LABEL_VALUE_BYTES` (default 1,024 bytes, Cloud
//!   Monitoring's limit, which a collector forwarding to it needs too) is truncated at a
//!   character boundary and ends with `~` and 16 hex digits of a hash of the whole value, so that
//!   two long values stay two series and the result is never longer than the limit.
//! * Cardinality: per label name, an instance admits at most `MAX_LABEL_VALUES` distinct values
//!   (default 1,000; 0: no limit); later new values become [`OTHER`]. Values already admitted keep
//!   going through. Free-text labels (`partner`, `pipeline_uuid`, `status`, ...) can thus not
//!   create series without bound: Cloud Monitoring bills per series.
//!
//! Both are counted (the function's own `pipeline_run_metrics/labels_guarded` metric, by action
//! and label) and reported in the event's log line. The memory is a hash (8 bytes) per admitted
//! value.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use crate::sink::Point;

/// The value that stands for every value past the bound.
pub const OTHER: &str = "other";

/// Cloud Monitoring refuses label values longer than this, in bytes.
pub const GCM_MAX_LABEL_VALUE_BYTES: usize = 1024;

/// Label limits (`MAX_LABEL_VALUE_BYTES`, `MAX_LABEL_VALUES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelLimits {
    /// Longest label value written, in bytes.
    pub max_value_bytes: usize,
    /// Distinct values admitted per label name in this instance (0: no limit).
    pub max_values: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits { max_value_bytes: GCM_MAX_LABEL_VALUE_BYTES, max_values: 1000 }
    }
}

/// What the guard did to one record's points.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guarded {
    /// (label name, values truncated)
    pub truncated: Vec<(String, usize)>,
    /// (label name, values folded into [`OTHER`])
    pub folded: Vec<(String, usize)>,
}

impl Guarded {
    fn add(list: &mut Vec<(String, usize)>, label: &str) {
        match list.iter_mut().find(|(l, _)| l == label) {
            Some((_, n)) => *n += 1,
            None => list.push((label.to_string(), 1)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.truncated.is_empty() && self.folded.is_empty()
    }

    /// `label: n` pairs for a log line.
    pub fn describe(list: &[(String, usize)]) -> String {
        list.iter().map(|(l, n)| format!("{l}: {n}")).collect::<Vec<_>>().join(", ")
    }
}

/// The per-instance label guard.
pub struct LabelGuard {
    limits: LabelLimits,
    /// label name -> hashes of the values admitted
    admitted: Mutex<HashMap<String, HashSet<u64>>>,
}

impl LabelGuard {
    pub fn new(limits: LabelLimits) -> LabelGuard {
        LabelGuard { limits, admitted: Mutex::new(HashMap::new()) }
    }

    /// Truncates and folds the label values of `points` in place.
    pub fn apply(&self, points: &mut [Point]) -> Guarded {
        let mut out = Guarded::default();
        let mut admitted = self.admitted.lock().unwrap_or_else(|p| p.into_inner());
        for p in points {
            for (label, value) in p.labels.iter_mut() {
                if value.len() > self.limits.max_value_bytes {
                    *value = truncate(value, self.limits.max_value_bytes);
                    Guarded::add(&mut out.truncated, label);
                }
                if self.limits.max_values == 0 || value == OTHER {
                    continue;
                }
                let hash = xxhash_rust::xxh3::xxh3_64(value.as_bytes());
                let seen = match admitted.get_mut(label.as_str()) {
                    Some(seen) => seen,
                    None => admitted.entry(label.clone()).or_default(),
                };
                if seen.contains(&hash) {
                    continue;
                }
                if seen.len() < self.limits.max_values {
                    seen.insert(hash);
                } else {
                    *value = OTHER.to_string();
                    Guarded::add(&mut out.folded, label);
                }
            }
        }
        out
    }
}

/// `value` cut to at most `max` bytes at a character boundary, ending with `~` and 16 hex digits
/// of a hash of the whole value.
fn truncate(value: &str, max: usize) -> String {
    let suffix = format!("~{:016x}", xxhash_rust::xxh3::xxh3_64(value.as_bytes()));
    let mut cut = max.saturating_sub(suffix.len());
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &value[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(labels: &[(&str, &str)]) -> Point {
        Point::gauge(
            "m",
            1.0,
            chrono::Utc::now(),
            labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            "p",
        )
    }

    #[test]
    fn long_values_are_truncated_distinctly_within_the_limit() {
        let g = LabelGuard::new(LabelLimits { max_value_bytes: 1024, max_values: 0 });
        let a = "é".repeat(2_000_000);
        let b = format!("{a}x");
        let mut points = vec![point(&[("partner", &a)]), point(&[("partner", &b)]), point(&[("partner", "short")])];
        let guarded = g.apply(&mut points);
        assert_eq!(guarded.truncated, vec![("partner".to_string(), 2)]);
        let (ta, tb) = (&points[0].labels["partner"], &points[1].labels["partner"]);
        assert!(ta.len() <= 1024 && tb.len() <= 1024, "{} {}", ta.len(), tb.len());
        assert_ne!(ta, tb, "two long values stay two series");
        assert!(ta.starts_with("éé"));
        assert_eq!(points[2].labels["partner"], "short");
    }

    #[test]
    fn distinct_values_per_label_are_bounded() {
        let g = LabelGuard::new(LabelLimits { max_value_bytes: 1024, max_values: 3 });
        let mut points: Vec<Point> =
            (0..10).map(|i| point(&[("partner", &format!("p{i}")), ("status", "COMPLETED")])).collect();
        let guarded = g.apply(&mut points);
        let partners: Vec<&str> = points.iter().map(|p| p.labels["partner"].as_str()).collect();
        assert_eq!(partners, ["p0", "p1", "p2", "other", "other", "other", "other", "other", "other", "other"]);
        assert_eq!(guarded.folded, vec![("partner".to_string(), 7)]);
        assert!(points.iter().all(|p| p.labels["status"] == "COMPLETED"), "each label has its own bound");
        // admitted values keep going through
        let mut again = vec![point(&[("partner", "p1")]), point(&[("partner", "p9")])];
        g.apply(&mut again);
        assert_eq!((again[0].labels["partner"].as_str(), again[1].labels["partner"].as_str()), ("p1", "other"));
    }
}
