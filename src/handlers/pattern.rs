//! Name patterns of match rules: each entry is a name, or a glob with `*` (any run of
//! characters), `?` (one character), `[abc]` / `[a-z]` / `[!abc]` (one of a set) and `{a,b}`
//! (alternatives); `\` escapes the next character. Matching is case-sensitive and `/` is an
//! ordinary character.
//!
//! A table entry also matches a table name carrying a prefix that ends in `_` (Datastream's
//! `<schema>_<table>` object names): `pipeline_run` matches `public_pipeline_run`, and
//! `audit_*` matches `ops_audit_loads`.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Characters that make an entry a glob rather than a plain name.
const GLOB_CHARS: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

/// Whether an entry is a glob (has a pattern character) rather than a plain name.
pub fn is_glob(entry: &str) -> bool {
    entry.contains(GLOB_CHARS)
}

/// An invalid entry: the entry and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid pattern '{entry}': {why}")]
pub struct PatternError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub why: String,
}

/// A list of names and globs, compiled once; matches a name when any entry does.
#[derive(Debug, Clone)]
pub struct Patterns {
    /// The entries as written, in order.
    entries: Vec<String>,
    /// The plain names (compared as strings: the common case costs no glob).
    names: Vec<String>,
    /// The globs, `None` when there are none.
    globs: Option<GlobSet>,
}

impl Patterns {
    /// Compiles `entries`. Errors: the first entry that is not a valid glob.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Patterns, PatternError> {
        let mut names = Vec::new();
        let mut set = GlobSetBuilder::new();
        let mut any_glob = false;
        for entry in entries.iter().map(AsRef::as_ref) {
            if !is_glob(entry) {
                names.push(entry.to_string());
                continue;
            }
            let glob = GlobBuilder::new(entry)
                .literal_separator(false)
                .backslash_escape(true)
                .build()
                .map_err(|e| PatternError { entry: entry.to_string(), why: e.kind().to_string() })?;
            set.add(glob);
            any_glob = true;
        }
        let globs = if any_glob {
            Some(set.build().map_err(|e| PatternError { entry: entries_text(entries), why: e.kind().to_string() })?)
        } else {
            None
        };
        let entries = entries.iter().map(|e| e.as_ref().to_string()).collect();
        Ok(Patterns { entries, names, globs })
    }

    /// The entries as written.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Whether `name` is one of the names or matches one of the globs.
    pub fn matches(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name) || self.globs.as_ref().is_some_and(|g| g.is_match(name))
    }

    /// Whether a table name matches: as a whole, or after a prefix that ends in `_` (see the
    /// module documentation).
    pub fn matches_table(&self, table: &str) -> bool {
        self.matches(table) || table.match_indices('_').any(|(i, _)| self.matches(&table[i + 1..]))
    }
}

fn entries_text<S: AsRef<str>>(entries: &[S]) -> String {
    entries.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", ")
}

/// Whether `table` matches the table entry `entry` (a name or a glob; an invalid glob matches
/// nothing), by the rule of [`Patterns::matches_table`].
pub fn table_matches(entry: &str, table: &str) -> bool {
    Patterns::new(&[entry]).is_ok_and(|p| p.matches_table(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(entries: &[&str]) -> Patterns {
        Patterns::new(entries).unwrap()
    }

    #[test]
    fn names_and_globs() {
        let list = p(&["daily_export", "load_*", "report_??", "x[0-9]", "{a,b}_sync"]);
        for yes in ["daily_export", "load_orders", "load_", "report_eu", "x7", "a_sync", "b_sync"] {
            assert!(list.matches(yes), "{yes}");
        }
        for no in ["Daily_export", "daily_export2", "LOAD_orders", "reload_orders", "report_e", "xa", "c_sync", ""] {
            assert!(!list.matches(no), "{no}");
        }
        assert!(p(&["*"]).matches("any/thing with spaces"), "`/` is an ordinary character");
        assert!(p(&["a\\*"]).matches("a*") && !p(&["a\\*"]).matches("ab"), "an escaped `*` is literal");
        assert!(!p(&[] as &[&str]).matches("x"), "an empty list matches nothing");
    }

    #[test]
    fn table_names_may_carry_a_prefix() {
        let t = p(&["pipeline_run"]);
        assert!(t.matches_table("pipeline_run"));
        assert!(t.matches_table("public_pipeline_run"));
        assert!(!t.matches_table("block_run"));
        assert!(!t.matches_table("publicpipeline_run"));
        let g = p(&["audit_*"]);
        assert!(g.matches_table("ops_audit_loads") && g.matches_table("audit_x"));
        assert!(!g.matches_table("ops_audits"));
        assert!(table_matches("pipeline_run", "public_pipeline_run"));
        assert!(table_matches("dag_*", "public_dag_run"));
        assert!(!table_matches("dag_[", "dag_["), "an invalid glob matches nothing");
    }

    #[test]
    fn invalid_globs_name_the_entry_and_the_reason() {
        let cases = [
            ("load_[", "unclosed character class"),
            ("{a,b", "unclosed alternate group"),
            ("a\\", "dangling '\\'"),
            ("[z-a]", "invalid range"),
        ];
        for (entry, why) in cases {
            let e = Patterns::new(&["ok", entry]).unwrap_err();
            assert_eq!(e.entry, entry);
            assert!(e.why.contains(why), "{entry}: {e}");
            assert!(e.to_string().starts_with(&format!("invalid pattern '{entry}': ")), "{e}");
        }
    }
}
