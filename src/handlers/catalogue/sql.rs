//! SQL text of catalogue files: comments stripped, `{{table}}` placeholders found and split out,
//! `@parameters` listed (fragments are spliced in by `include`).

use std::collections::BTreeSet;

#[derive(Debug)]
pub(super) enum Segment {
    Text(String),
    Table(String),
}

/// Splits SQL text at its `{{name}}` placeholders, once, when the catalogue is loaded.
pub(super) fn segments(sql: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else { break };
        out.push(Segment::Text(rest[..i].to_string()));
        out.push(Segment::Table(after[..j].trim().to_string()));
        rest = &after[j + 2..];
    }
    out.push(Segment::Text(rest.to_string()));
    out
}

/// The code lines of a SQL text, numbered from 1: `-- comments`, trailing whitespace and blank
/// lines stripped. The stripped text is what is validated and sent: comments cost bytes, and
/// bqemulator miscounts parameters mentioned in comments. (So `--` must not appear inside a
/// string literal of a catalogue query.)
pub(super) fn code_lines(sql: &str) -> Vec<(usize, &str)> {
    sql.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split("--").next().unwrap_or("").trim_end()))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect()
}

/// `{{name}}` placeholders of a SQL text.
pub(super) fn sql_placeholders(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = sql;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => {
                out.push(after[..j].trim().to_string());
                rest = &after[j + 2..];
            }
            None => {
                out.push(after.to_string());
                break;
            }
        }
    }
    out
}

/// `@name` parameters of a SQL text.
pub(super) fn sql_parameters(sql: &str) -> BTreeSet<String> {
    let bytes = sql.as_bytes();
    let mut out = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'@' && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'@')) {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            if end > start {
                out.insert(sql[start..end].to_string());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_scanning() {
        assert_eq!(sql_placeholders("a {{x}} b {{ y }}"), vec!["x", "y"]);
        let p = sql_parameters("x = @a AND y=@b_2 AND z = @@c");
        assert_eq!(p, BTreeSet::from(["a".to_string(), "b_2".to_string()]));
    }

    #[test]
    fn code_lines_strip_comments_and_blank_lines() {
        assert_eq!(code_lines("-- head\nSELECT 1 -- one\n\n   \n  FROM t  \n"), vec![(2, "SELECT 1"), (5, "  FROM t")]);
    }
}
