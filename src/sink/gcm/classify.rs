//! Classifying Cloud Monitoring's error texts (protocols.md §5.3): which failed series were
//! already written, which are outside the API's window, which may be retried.

use crate::sink::Rejection;

/// How one failed series (or a whole failed call) is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Rejected(Rejection),
    Retry,
    Fail,
}

/// Classifies an error text of Cloud Monitoring (protocols.md §5.3).
pub(super) fn classify_text(text: &str) -> Option<Verdict> {
    let t = text.to_ascii_lowercase();
    if t.contains("more frequently than the maximum sampling period")
        || t.contains("must be written in order")
        || t.contains("older start time")
        || t.contains("older end time")
    {
        return Some(Verdict::Rejected(Rejection::AlreadyWritten));
    }
    if t.contains("too old") || t.contains("25 hours") || t.contains("in the future") || t.contains("older than") {
        return Some(Verdict::Rejected(Rejection::OutOfWindow));
    }
    if t.contains("duplicate timeseries")
        || t.contains("unavailable")
        || t.contains("deadline exceeded")
        || t.contains("internal error")
    {
        return Some(Verdict::Retry);
    }
    None
}

/// Parses `...: timeSeries[0,2-4]; ...: timeSeries[7]` into (index, reason text) pairs.
pub(super) fn failed_series(message: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut rest = message;
    let mut reason_start = 0usize;
    let mut consumed = 0usize;
    while let Some(i) = rest.find("timeSeries[") {
        let abs = consumed + i;
        let reason = message[reason_start..abs].trim().trim_end_matches(':').trim();
        let after = &rest[i + "timeSeries[".len()..];
        let Some(end) = after.find(']') else { break };
        for part in after[..end].split(',') {
            let part = part.trim();
            let range = match part.split_once('-') {
                Some((a, b)) => a.trim().parse::<usize>().ok().zip(b.trim().parse::<usize>().ok()),
                None => part.parse::<usize>().ok().map(|a| (a, a)),
            };
            if let Some((a, b)) = range {
                for idx in a..=b.min(a + 10_000) {
                    out.push((idx, reason.to_string()));
                }
            }
        }
        let next = i + "timeSeries[".len() + end + 1;
        consumed += next;
        rest = &rest[next..];
        reason_start = consumed;
        // skip separators like "; " before the next reason
        while message[reason_start..].starts_with([';', ' ', ',', '.']) {
            reason_start += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_failed_series_indices() {
        let m = "One or more TimeSeries could not be written: One or more points were written more frequently than the maximum \
                 sampling period configured for the metric. {Metric: x}: timeSeries[0-2,5]; Points must be written in order. \
                 One or more of the points specified had an older start time than the most recent point.: timeSeries[7]";
        let f = failed_series(m);
        let idx: Vec<usize> = f.iter().map(|(i, _)| *i).collect();
        assert_eq!(idx, vec![0, 1, 2, 5, 7]);
        assert!(f[0].1.contains("more frequently"), "{:?}", f[0]);
        assert!(f[4].1.starts_with("Points must be written in order"), "{:?}", f[4]);
        assert_eq!(classify_text(&f[0].1), Some(Verdict::Rejected(Rejection::AlreadyWritten)));
        assert_eq!(classify_text(&f[4].1), Some(Verdict::Rejected(Rejection::AlreadyWritten)));
        assert!(failed_series("Metrics cannot be written to cloud_run_revision.").is_empty());
    }
}
