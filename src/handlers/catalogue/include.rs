//! SQL fragments: `{{> name}}` in a catalogue SQL file stands for the catalogue file
//! `name.fragment.sql`, so that SQL several families share (the submission window, ...) is
//! written once.
//!
//! * Each file's `--` comments and blank lines are stripped first (an include inside a comment
//!   is no include), then the fragment's lines are spliced in where `{{> name}}` stands: its
//!   first line continues the text before the include, its last line is followed by the text
//!   after it. A fragment is therefore written with the indentation it has where it is used, and
//!   the query sent is the same text as if the fragment had been written in place.
//! * Fragments may include fragments. An unknown fragment, an include cycle or an unterminated
//!   `{{>` is an error naming the file and line of the include.
//! * A fragment's `{{table}}` placeholders and `@parameters` are those of the family that
//!   includes it, and are validated against that family.
//!
//! Every byte of the expanded text remembers where it came from (file, line, and the includes
//! that brought it in), so that a validation error names the fragment's line and the including
//! file's line.

use std::collections::BTreeMap;

use super::CatalogueError;
use super::sql::code_lines;
use super::validate::is_ident;

/// File-name suffix of a fragment: `{{> name}}` resolves `name.fragment.sql`.
pub(super) const FRAGMENT_SUFFIX: &str = ".fragment.sql";

/// Where a piece of expanded SQL was written: a file and line, and the include sites that
/// brought it into the family's query, innermost first.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Origin {
    pub(super) file: String,
    pub(super) line: usize,
    pub(super) via: Vec<(String, usize)>,
}

impl Origin {
    /// An error located at this origin.
    pub(super) fn error(&self, message: String) -> CatalogueError {
        CatalogueError { file: self.file.clone(), line: self.line, message, included_from: self.via.clone() }
    }
}

/// A family's SQL with its fragments spliced in and its comments stripped: the text that is
/// validated and sent, and the origin of each of its pieces.
#[derive(Debug)]
pub(super) struct Expanded {
    pub(super) code: String,
    /// (byte offset where a piece starts, its origin), by offset.
    spans: Vec<(usize, Origin)>,
}

impl Expanded {
    /// Where the first occurrence of `needle` in the expanded text was written (the start of
    /// the text when it does not occur).
    pub(super) fn origin_of(&self, needle: &str) -> &Origin {
        let at = self.code.find(needle).unwrap_or(0);
        let i = self.spans.partition_point(|(start, _)| *start <= at).saturating_sub(1);
        &self.spans[i].1
    }

    /// An error at the first occurrence of `needle`.
    pub(super) fn error(&self, needle: &str, message: String) -> CatalogueError {
        self.origin_of(needle).error(message)
    }
}

/// file name -> (display path, contents): the catalogue files after `HANDLERS_DIR` overrides.
pub(super) type Files = BTreeMap<String, (String, String)>;

type Line = Vec<(String, Origin)>;

/// Expands the includes of the SQL file `name` (a key of `files`).
pub(super) fn expand(name: &str, files: &Files) -> Result<Expanded, CatalogueError> {
    let mut stack = Vec::new();
    let lines = expand_file(name, files, &mut stack)?;
    let mut code = String::new();
    let mut spans: Vec<(usize, Origin)> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            code.push('\n');
        }
        for (text, origin) in line {
            spans.push((code.len(), origin.clone()));
            code.push_str(text);
        }
    }
    if spans.is_empty() {
        let path = files.get(name).map(|(p, _)| p.clone()).unwrap_or_else(|| name.to_string());
        spans.push((0, Origin { file: path, line: 1, via: Vec::new() }));
    }
    Ok(Expanded { code, spans })
}

/// One include being expanded: the fragment's file name, and the file and line that include it.
struct Site {
    fragment: String,
    file: String,
    line: usize,
}

fn expand_file(name: &str, files: &Files, stack: &mut Vec<Site>) -> Result<Vec<Line>, CatalogueError> {
    let (path, text) = &files[name];
    let via: Vec<(String, usize)> = stack.iter().rev().map(|s| (s.file.clone(), s.line)).collect();
    let mut out: Vec<Line> = Vec::new();
    for (number, code) in code_lines(text) {
        let here = Origin { file: path.clone(), line: number, via: via.clone() };
        let mut line: Line = Vec::new();
        let mut rest = code;
        while let Some(i) = rest.find("{{>") {
            if i > 0 {
                line.push((rest[..i].to_string(), here.clone()));
            }
            let after = &rest[i + 3..];
            let Some(j) = after.find("}}") else {
                return Err(here.error("unterminated include: '{{>' without '}}'".into()));
            };
            let fragment = after[..j].trim();
            rest = &after[j + 2..];
            if !is_ident(fragment) {
                return Err(here.error(format!("include '{{{{> {fragment}}}}}': a fragment name is an identifier")));
            }
            let file = format!("{fragment}{FRAGMENT_SUFFIX}");
            if !files.contains_key(&file) {
                return Err(here.error(format!("unknown fragment '{fragment}' (no {file} in the catalogue)")));
            }
            if let Some(first) = stack.iter().position(|s| s.fragment == file) {
                let mut cycle: Vec<&str> = stack[first..].iter().map(|s| s.fragment.as_str()).collect();
                cycle.push(&file);
                return Err(here.error(format!("include cycle: {}", cycle.join(" -> "))));
            }
            stack.push(Site { fragment: file.clone(), file: path.clone(), line: number });
            let spliced = expand_file(&file, files, stack);
            stack.pop();
            let mut spliced = spliced?.into_iter();
            if let Some(first) = spliced.next() {
                line.extend(first);
                for next in spliced {
                    out.push(std::mem::replace(&mut line, next));
                }
            }
        }
        if !rest.is_empty() {
            line.push((rest.to_string(), here.clone()));
        }
        trim_end(&mut line);
        if !line.is_empty() {
            out.push(line);
        }
    }
    Ok(out)
}

/// Drops trailing whitespace (and pieces left empty) of a line, as comment stripping does.
fn trim_end(line: &mut Line) {
    while let Some((text, _)) = line.last_mut() {
        let kept = text.trim_end().len();
        text.truncate(kept);
        if !text.is_empty() {
            break;
        }
        line.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Files {
        list.iter().map(|(n, t)| (n.to_string(), (format!("test/{n}"), t.to_string()))).collect()
    }

    #[test]
    fn a_fragment_is_spliced_where_it_stands_and_comments_go() {
        let f = files(&[
            ("q.sql", "-- query\nWITH {{> w}},\nrest AS (SELECT 1) -- tail\nSELECT * FROM rest"),
            ("w.fragment.sql", "-- the window\nanchor AS (\n  SELECT 1 AS l\n),\n\nwin AS (SELECT l FROM anchor)\n"),
        ]);
        let e = expand("q.sql", &f).unwrap();
        assert_eq!(
            e.code,
            "WITH anchor AS (\n  SELECT 1 AS l\n),\nwin AS (SELECT l FROM anchor),\nrest AS (SELECT 1)\nSELECT * FROM rest"
        );
        let at = |needle: &str| {
            let o = e.origin_of(needle);
            (o.file.as_str(), o.line, o.via.clone())
        };
        assert_eq!(at("WITH"), ("test/q.sql", 2, vec![]));
        assert_eq!(at("SELECT 1 AS l"), ("test/w.fragment.sql", 3, vec![("test/q.sql".to_string(), 2)]));
        assert_eq!(at("win AS"), ("test/w.fragment.sql", 6, vec![("test/q.sql".to_string(), 2)]));
        assert_eq!(at("rest AS"), ("test/q.sql", 3, vec![]));
    }

    #[test]
    fn nested_includes_keep_the_whole_chain() {
        let f = files(&[
            ("q.sql", "SELECT\n  {{> a}}\nFROM t"),
            ("a.fragment.sql", "x,\n{{> b}}"),
            ("b.fragment.sql", "y + @p AS z"),
            ("unused.fragment.sql", "{{> nowhere}}"),
        ]);
        let e = expand("q.sql", &f).unwrap();
        assert_eq!(e.code, "SELECT\n  x,\ny + @p AS z\nFROM t");
        let o = e.origin_of("@p");
        assert_eq!((o.file.as_str(), o.line), ("test/b.fragment.sql", 1));
        assert_eq!(o.via, vec![("test/a.fragment.sql".to_string(), 2), ("test/q.sql".to_string(), 2)]);
        let err = o.error("undeclared SQL parameter @p".into());
        assert_eq!(
            err.to_string(),
            "test/b.fragment.sql:1: undeclared SQL parameter @p (included from test/a.fragment.sql:2 <- test/q.sql:2)"
        );
    }

    #[test]
    fn an_include_in_a_comment_is_ignored_and_an_empty_fragment_leaves_no_line() {
        let f = files(&[("q.sql", "SELECT 1 -- {{> nowhere}}\n  {{> e}}\nAS x"), ("e.fragment.sql", "-- nothing")]);
        assert_eq!(expand("q.sql", &f).unwrap().code, "SELECT 1\nAS x");
    }

    #[test]
    fn unknown_fragment_names_the_including_line() {
        let f = files(&[("q.sql", "SELECT 1\nFROM {{> a}}"), ("a.fragment.sql", "t\nWHERE {{> missing}}")]);
        let e = expand("q.sql", &f).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("test/a.fragment.sql", 2), "{e}");
        assert_eq!(e.included_from, vec![("test/q.sql".to_string(), 2)]);
        assert!(e.message.contains("unknown fragment 'missing' (no missing.fragment.sql"), "{e}");
    }

    #[test]
    fn cycles_are_errors() {
        let f = files(&[("q.sql", "SELECT {{> a}}"), ("a.fragment.sql", "1,\n{{> b}}"), ("b.fragment.sql", "{{> a}}")]);
        let e = expand("q.sql", &f).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("test/b.fragment.sql", 1), "{e}");
        assert!(e.message.contains("include cycle: a.fragment.sql -> b.fragment.sql -> a.fragment.sql"), "{e}");
        assert_eq!(e.included_from, vec![("test/a.fragment.sql".to_string(), 2), ("test/q.sql".to_string(), 1)]);
        let own = files(&[("q.sql", "SELECT {{> a}}"), ("a.fragment.sql", "{{> a}}")]);
        let e = expand("q.sql", &own).unwrap_err();
        assert!(e.message.contains("include cycle: a.fragment.sql -> a.fragment.sql"), "{e}");
    }

    #[test]
    fn malformed_includes() {
        let e = expand("q.sql", &files(&[("q.sql", "SELECT\n{{> a")])).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated"), "{e}");
        let e = expand("q.sql", &files(&[("q.sql", "SELECT {{> a b}}")])).unwrap_err();
        assert!(e.message.contains("identifier"), "{e}");
    }
}
