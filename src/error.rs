//! The vocabulary of failure shared by every stage: whether retrying can change the result.
//! Each stage owns its error type (`decode::DecodeError`, `warehouse::WarehouseError`,
//! `handlers::HandlerError`, `sink::SinkError`); the acknowledgement decision is
//! `pipeline::answer`.

use serde::Serialize;

/// Whether retrying the same message can change the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Permanent,
    Transient,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Permanent => "permanent",
            ErrorClass::Transient => "transient",
        }
    }
}

/// An error and its `source()` chain as one line, each distinct text once.
///
/// Transport errors nest deeply: a refused BigQuery call is `reqwest::Error` ("error sending
/// request for url (…)") → hyper-util ("client error (Connect)") → ("tcp connect error") →
/// `io::Error` ("Connection refused (os error 111)"). Their `Display` shows only the top, which
/// hides the cause; some wrappers repeat their source's text in their own. This walks the chain
/// and joins the texts with ": ", leaving out a text already said (see [`join_distinct`]).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut texts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(s) = source {
        texts.push(s.to_string());
        source = s.source();
    }
    join_distinct(texts.iter().map(String::as_str))
}

/// Joins texts with ": ", leaving out empty ones and any text that a text kept so far already
/// contains (case-insensitively), and dropping a kept text that merely prefixes the next one
/// ("Not found" before "Not found: Table p:d.t"): "not found: Not found" becomes "not found".
pub fn join_distinct<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for text in texts.into_iter().map(str::trim).filter(|t| !t.is_empty()) {
        let lower = text.to_lowercase();
        if kept.iter().any(|k| k.to_lowercase().contains(&lower)) {
            continue;
        }
        // a kept text the new one starts with says nothing more
        kept.retain(|k| !lower.starts_with(&k.to_lowercase()));
        kept.push(text);
    }
    kept.join(": ")
}

/// A reqwest error as [`chain`] says it, with the request's URL cut down to its origin
/// (`http://127.0.0.1:9050`): a BigQuery or Cloud Storage path names datasets, tables and
/// objects taken from the payload, which logs must not carry (see [`crate::redact`]), and
/// which made the same transport failure read differently for every handler.
pub fn transport(error: &reqwest::Error) -> String {
    let text = chain(error);
    match error.url() {
        Some(url) => {
            let origin = url.origin().ascii_serialization();
            text.replace(&format!(" for url ({url})"), &format!(" to {origin}"))
        }
        None => text,
    }
}

/// `prefix: detail`, without the prefix when the detail already starts with it
/// (case-insensitively): `("not found", "Not found: Table p:d.t")` gives
/// "Not found: Table p:d.t", not "not found: Not found: Table p:d.t".
pub fn prefixed(prefix: &str, detail: &str) -> String {
    let detail = detail.trim();
    if detail.to_lowercase().starts_with(&prefix.to_lowercase()) {
        detail.to_string()
    } else if detail.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}: {detail}")
    }
}

/// Failures of several parts (handlers) as one text: parts that failed with the same text are
/// named together before it, once ("A, B: BigQuery unavailable: …"), in first-seen order,
/// groups separated by "; ". Seven handlers failing on one unreachable BigQuery make one
/// entry, not seven copies of the same transport error.
pub fn grouped<'a>(failures: impl IntoIterator<Item = (&'a str, String)>) -> String {
    let mut groups: Vec<(Vec<&'a str>, String)> = Vec::new();
    for (part, text) in failures {
        match groups.iter_mut().find(|(_, t)| *t == text) {
            Some((parts, _)) => parts.push(part),
            None => groups.push((vec![part], text)),
        }
    }
    groups.iter().map(|(parts, text)| format!("{}: {text}", parts.join(", "))).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_failures_are_named_together() {
        let e = "BigQuery unavailable: request failed: connection refused (transient)".to_string();
        let got = grouped([("A", e.clone()), ("B", "Not found: Table p:d.t (permanent)".into()), ("C", e.clone())]);
        assert_eq!(got, format!("A, C: {e}; B: Not found: Table p:d.t (permanent)"));
        assert_eq!(grouped(Vec::<(&str, String)>::new()), "");
    }

    #[test]
    fn repeated_texts_are_said_once() {
        assert_eq!(join_distinct(["not found", "Not found"]), "not found");
        assert_eq!(join_distinct(["Not found", "Not found: Table p:d.t"]), "Not found: Table p:d.t");
        assert_eq!(join_distinct(["a: b", "b", "", "c"]), "a: b: c");
        assert_eq!(prefixed("not found", "Not found: Table p:d.t"), "Not found: Table p:d.t");
        assert_eq!(
            prefixed("not found", "HTTP 404: Not found: Table p:d.t"),
            "not found: HTTP 404: Not found: Table p:d.t"
        );
        assert_eq!(prefixed("BigQuery unavailable", ""), "BigQuery unavailable");
    }

    /// A real nested reqwest error: the cause (connection refused) is in the line, once.
    #[tokio::test]
    async fn a_refused_connection_names_its_cause_once() {
        let e =
            reqwest::Client::new().get("http://127.0.0.1:1/bigquery/v2/projects/p/queries").send().await.unwrap_err();
        assert!(!e.to_string().to_lowercase().contains("refused"), "the top alone hides the cause: {e}");
        let line = chain(&e);
        assert!(line.starts_with("error sending request for url (http://127.0.0.1:1/"), "{line}");
        let short = transport(&e);
        assert!(short.starts_with("error sending request to http://127.0.0.1:1: "), "{short}");
        assert!(!short.contains("bigquery/v2"), "the path may name payload tables: {short}");
        assert!(line.to_lowercase().contains("connection refused"), "{line}");
        assert_eq!(line.matches("error sending request").count(), 1, "{line}");
        let lower = line.to_lowercase();
        assert_eq!(lower.matches("connection refused").count(), 1, "{line}");
    }
}
