//! Reading Cloud Monitoring's error texts: which series of a failed `timeSeries.create` failed,
//! and why (protocols.md §5.3; the layouts and phrases with their sources are in
//! tests/common/fakes/SOURCES.md §1.2–§1.3).
//!
//! A failed call's `error.message` names its failed series in groups, in one of the layouts
//! Google has used (all still seen by clients):
//!
//! | layout | shape of one group | seen |
//! |---|---|---|
//! | reason first | `<reason>: timeSeries[0-12,15,16]` (L1), also `Field timeSeries[8] had …: <reason>: timeSeries[8]` | 2019–2023 |
//! | field errors | `Field timeSeries[35].points had an invalid value: <reason>` with no list (L1b), and the unprefixed single `Field timeSeries[0].points[0].interval.end_time had an invalid value of "…": <reason>` | 2020–2023 |
//! | resource in the middle | `<reason>: global{} timeSeries[3]: <metric.type>{k:v}` (L2) | 2023–2024 |
//! | index first | `timeSeries[146]: <reason>` (L3), `timeSeries[0-2]: write for resource=<type>{…} failed with: <reason>` (L4) | 2024–2025 |
//! | index first, with example | `timeSeries[0-29] (example metric.type="…", metric.labels={…}): write for resource=… failed with: <reason>` (L5), `timeSeries[3,8-12] (example metric.type="…", …, resource.type="…", resource.labels={…}): <reason>` (L6) | 2025–2026 |
//!
//! Groups are joined by `; `, after the prefix `One or more TimeSeries could not be written: `
//! (absent for some whole-request field errors). A reason may itself contain `timeSeries[N]` in
//! a field path (`Field timeSeries[146].points[0]…`), which is not a group's index. In the
//! newer layouts an index list names a whole write group (every series of one resource), not
//! only the failed ones: `timeSeries[0-51]` with 4 of 52 points failed (firezone#8142). Only the
//! `CreateTimeSeriesSummary` detail counts failures, and it does not say which.

use crate::sink::Rejection;

/// What a group's reason text says about its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    /// Refused for good; counted, never retried.
    Rejected(Rejection),
    /// Not written, but a later call can write it.
    Retry,
    /// A reason this sink does not know: the call's HTTP status decides.
    Unknown,
}

/// Classifies a reason text by the API's real phrases (sources: fake-texts.md §1.3):
/// * already written (a redelivered event, or another instance wrote the series first):
///   "Points must be written in order. One or more of the points specified had an older start
///   time than the most recent point." (also "older end time"), and "One or more points were
///   written more frequently than the maximum sampling period configured for the metric."
///   (with or without its ` {Metric: …, Timestamps: {…}}` suffix);
/// * outside the window: "Data points cannot be written more than 24h in the past.", "… more
///   than 25h10s in the past." and the 2023 "… more than approximately 24 hours in the past,
///   specifically no more than 25h10s in the past. …". The text for a point too far in the
///   future is not publicly known; such points are dropped before sending (see `sink::gcm`);
/// * retry: "Duplicate TimeSeries encountered. Only one point can be written per TimeSeries per
///   request." (the duplicate was not written; the next call writes it), "An internal error
///   occurred." and "Internal error encountered. Please retry after a few seconds." (500).
pub(super) fn classify_reason(text: &str) -> Reason {
    let t = text.to_ascii_lowercase();
    if t.contains("points must be written in order")
        || t.contains("older start time than the most recent point")
        || t.contains("older end time than the most recent point")
        || t.contains("more frequently than the maximum sampling period")
    {
        return Reason::Rejected(Rejection::AlreadyWritten);
    }
    if t.contains("cannot be written more than") && t.contains("in the past") {
        return Reason::Rejected(Rejection::OutOfWindow);
    }
    if t.contains("duplicate timeseries encountered")
        || t.contains("an internal error occurred")
        || t.contains("internal error encountered")
    {
        return Reason::Retry;
    }
    Reason::Unknown
}

/// One group of failed series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Group {
    /// Indices into the request's `timeSeries` (below the request's size); `None` when the text
    /// names none: the group is the whole call.
    pub indices: Option<Vec<usize>>,
    /// The reason text, without the index list, the example and the `write for resource=…
    /// failed with:` part.
    pub reason: String,
}

const PREFIX: &str = "One or more TimeSeries could not be written:";
const MARKER: &str = "timeSeries[";

/// Parses every failed-series group of `message` (any layout above) for a request of `n`
/// series. Never empty for a non-empty message: a text without any index is one group for the
/// whole call.
pub(super) fn failed_groups(message: &str, n: usize) -> Vec<Group> {
    let body = message.trim();
    let body = body.strip_prefix(PREFIX).unwrap_or(body);
    split_top_level(body).into_iter().filter(|g| !g.is_empty()).map(|g| group(g, n)).collect()
}

fn group(text: &str, n: usize) -> Group {
    if let Some((start, end, list)) = find_marker(text) {
        let before = clean_before(&text[..start]);
        let after = clean_after(&text[end..]);
        let reason = if before.is_empty() { after } else { before };
        return Group { indices: Some(parse_indices(list, n)), reason: reason.to_string() };
    }
    // `Field timeSeries[N]…: <reason>`: the field path names the series
    if let Some(i) = field_index(text) {
        let indices = if i < n { vec![i] } else { Vec::new() };
        return Group { indices: Some(indices), reason: text.to_string() };
    }
    Group { indices: None, reason: text.to_string() }
}

/// Splits at `;` followed by whitespace (or the end), outside brackets and quotes.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if quoted {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => quoted = true,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = (depth - 1).max(0),
            b';' if depth == 0 && bytes.get(i + 1).is_none_or(|c| c.is_ascii_whitespace()) => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out
}

/// The first `timeSeries[<index list>]` that is a group's index list, not a field path
/// (`Field timeSeries[3].points…`, `Field timeSeries[8] had …`): (start, end, list).
fn find_marker(text: &str) -> Option<(usize, usize, &str)> {
    let mut from = 0;
    while let Some(i) = text[from..].find(MARKER) {
        let start = from + i;
        let list_start = start + MARKER.len();
        let close = text[list_start..].find(']')? + list_start;
        let list = &text[list_start..close];
        let is_list =
            !list.is_empty() && list.bytes().all(|b| b.is_ascii_digit() || b == b',' || b == b'-' || b == b' ');
        let field_path = text[..start].ends_with("Field ") || text[close + 1..].starts_with('.');
        if is_list && !field_path {
            return Some((start, close + 1, list));
        }
        from = close + 1;
    }
    None
}

/// The index of a `Field timeSeries[N]` path.
fn field_index(text: &str) -> Option<usize> {
    let i = text.find("Field timeSeries[")? + "Field timeSeries[".len();
    let close = text[i..].find(']')? + i;
    text[i..close].parse().ok()
}

/// `0-12,15,16` -> 0..=12, 15, 16, keeping only indices below `n`.
fn parse_indices(list: &str, n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>(), b.trim().parse::<usize>()),
            None => (part.parse::<usize>(), part.parse::<usize>()),
        };
        if let (Ok(a), Ok(b)) = (a, b) {
            out.extend((a..=b.min(n.saturating_sub(1))).filter(|i| *i < n));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Text before an index list: the reason (L1, L2), without L2's `<resource.type>{…}` and the
/// separating `:`.
fn clean_before(s: &str) -> &str {
    let mut s = s.trim_end();
    if s.ends_with('}')
        && let Some(open) = matching_open(s)
    {
        let head = s[..open].trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        s = head.trim_end();
    }
    s.trim_end_matches(':').trim()
}

/// Text after an index list: the reason (L3–L6), without the `(example …)` part, the separating
/// `:` and L4/L5's `write for resource=<type>{…} failed with:`.
fn clean_after(s: &str) -> &str {
    let mut s = s.trim_start();
    if s.starts_with('(')
        && let Some(close) = matching_close(s)
    {
        s = s[close + 1..].trim_start();
    }
    s = s.strip_prefix(':').unwrap_or(s).trim_start();
    if s.starts_with("write for resource=")
        && let Some(i) = s.find("failed with:")
    {
        s = &s[i + "failed with:".len()..];
    }
    s.trim()
}

/// The index of the bracket closing the one `s` starts with (quote-aware).
fn matching_close(s: &str) -> Option<usize> {
    let mut depth = 0i32;
    let mut quoted = false;
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        if quoted {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => quoted = true,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The index of the `{` matching the `}` that `s` ends with (L2 resources hold no quotes).
fn matching_open(s: &str) -> Option<usize> {
    let mut depth = 0i32;
    for (i, b) in s.bytes().enumerate().rev() {
        match b {
            b'}' => depth += 1,
            b'{' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests;
