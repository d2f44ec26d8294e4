//! Table references: the one validator of BigQuery identifiers a payload value must pass
//! before it is written into SQL text.

/// Why a value is not a table reference. Its text names the part at fault but never repeats the
/// value (a payload variable: it may be anything, an e-mail address, megabytes); ask
/// [`TableRefError::value`] for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableRefError {
    /// Not one to three dot-separated parts.
    #[error("not a table reference of the form [project.]dataset.table")]
    NotAReference { value: String },
    /// The project part is not a project id (letters, digits, hyphens; not starting with a
    /// hyphen; at most 63 characters).
    #[error("the project part is not a valid project id (letters, digits, hyphens; at most 63)")]
    InvalidProject { value: String, project: String },
    /// The dataset part is not `[A-Za-z0-9_]+` (at most 1024 characters).
    #[error("the dataset part is not a valid identifier ([A-Za-z0-9_]+, at most 1024)")]
    InvalidDataset { value: String, dataset: String },
    /// The table part is not `[A-Za-z0-9_]+` (at most 1024 characters).
    #[error("the table part is not a valid identifier ([A-Za-z0-9_]+, at most 1024)")]
    InvalidTable { value: String, table: String },
    /// A metadata view or meta-table: an `INFORMATION_SCHEMA` part, a region qualifier
    /// (`region-us.INFORMATION_SCHEMA...`) or a legacy meta-table (`__TABLES__`, any table
    /// starting with `__`). They describe datasets, jobs and users, never a handler's data.
    #[error("metadata views (INFORMATION_SCHEMA, region-*) and meta-tables (__TABLES__, __*) are never read")]
    Metadata { value: String },
}

impl TableRefError {
    /// The value that was refused, as given.
    pub fn value(&self) -> &str {
        match self {
            TableRefError::NotAReference { value }
            | TableRefError::InvalidProject { value, .. }
            | TableRefError::InvalidDataset { value, .. }
            | TableRefError::InvalidTable { value, .. }
            | TableRefError::Metadata { value } => value,
        }
    }

    /// The value does not have the `[project.]dataset.table` shape at all.
    pub fn is_not_a_reference(&self) -> bool {
        matches!(self, TableRefError::NotAReference { .. })
    }
}

/// Whether `s` holds only ASCII letters, digits and `extra`. Every byte is looked at (no early
/// exit), so that the loop is vectorised: every matching handler of every event checks its
/// tables' names.
fn only(s: &str, extra: u8) -> bool {
    s.bytes()
        .fold(true, |ok, c| ok & (((c | 0x20).wrapping_sub(b'a') < 26) | (c.wrapping_sub(b'0') < 10) | (c == extra)))
}

/// A fully qualified table: `project.dataset.table`, held as that one text (every part was
/// validated: none contains a dot), so that resolving one allocates once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableRef {
    /// `project.dataset.table`.
    text: String,
    /// Where the dataset and the table start in `text`.
    dataset_at: usize,
    table_at: usize,
}

impl TableRef {
    /// Resolves a table variable like the reference implementation (handlers.md §5.1):
    /// `project.dataset.table` is used as is; `dataset.table` is read in the data project; a
    /// value without a dot becomes `<data project>.<value>`, which BigQuery reads as
    /// dataset `<data project>`, table `<value>`. Each part must be a valid identifier: project
    /// letters, digits and hyphens; dataset and table `[A-Za-z0-9_]+`.
    pub fn resolve(value: &str, data_project: &str) -> Result<TableRef, TableRefError> {
        // the dots, found by a plain byte loop: `split('.')` searched with memchr, whose set-up
        // cost more than these short texts (every matching handler resolves its tables)
        let mut dots = [0usize; 3];
        let mut n = 0;
        for (i, &b) in value.as_bytes().iter().enumerate() {
            if b == b'.' {
                if n == 2 {
                    return Err(TableRefError::NotAReference { value: value.to_string() });
                }
                dots[n] = i;
                n += 1;
            }
        }
        match n {
            0 => TableRef::checked(data_project, data_project, value, value),
            1 => TableRef::checked(data_project, &value[..dots[0]], &value[dots[0] + 1..], value),
            _ => TableRef::checked(&value[..dots[0]], &value[dots[0] + 1..dots[1]], &value[dots[1] + 1..], value),
        }
    }

    fn checked(project: &str, dataset: &str, table: &str, raw: &str) -> Result<TableRef, TableRefError> {
        let valid_project =
            !project.is_empty() && project.len() <= 63 && only(project, b'-') && !project.starts_with('-');
        let valid_name = |s: &str| !s.is_empty() && s.len() <= 1024 && only(s, b'_');
        if !valid_project {
            return Err(TableRefError::InvalidProject { value: raw.into(), project: project.into() });
        }
        if !valid_name(dataset) {
            return Err(TableRefError::InvalidDataset { value: raw.into(), dataset: dataset.into() });
        }
        if !valid_name(table) {
            return Err(TableRefError::InvalidTable { value: raw.into(), table: table.into() });
        }
        let metadata = [project, dataset, table].iter().any(|p| p.eq_ignore_ascii_case("INFORMATION_SCHEMA"))
            || project.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("region-"))
            || table.starts_with("__");
        if metadata {
            return Err(TableRefError::Metadata { value: raw.into() });
        }
        let mut text = String::with_capacity(project.len() + dataset.len() + table.len() + 2);
        for (i, part) in [project, dataset, table].into_iter().enumerate() {
            if i > 0 {
                text.push('.');
            }
            text.push_str(part);
        }
        let dataset_at = project.len() + 1;
        Ok(TableRef { text, dataset_at, table_at: dataset_at + dataset.len() + 1 })
    }

    /// The project id.
    pub fn project(&self) -> &str {
        &self.text[..self.dataset_at - 1]
    }

    /// The dataset id.
    pub fn dataset(&self) -> &str {
        &self.text[self.dataset_at..self.table_at - 1]
    }

    /// The table id.
    pub fn table(&self) -> &str {
        &self.text[self.table_at..]
    }

    /// `project.dataset.table`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The backtick-quoted reference for SQL text. Safe because every part was validated.
    pub fn sql(&self) -> String {
        let mut sql = String::with_capacity(self.text.len() + 2);
        sql.push('`');
        sql.push_str(&self.text);
        sql.push('`');
        sql
    }
}

/// Ordered by project, then dataset, then table (not by the joined text, where `a-b` would sort
/// before `a.`).
impl Ord for TableRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.project(), self.dataset(), self.table()).cmp(&(other.project(), other.dataset(), other.table()))
    }
}

impl PartialOrd for TableRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorisable check is the plain one for every byte.
    #[test]
    fn only_letters_digits_and_the_extra_byte_pass() {
        for extra in [b'_', b'-'] {
            for c in 0..=255u8 {
                let want = c.is_ascii_alphanumeric() || c == extra;
                let text = [b'a', c, b'Z'];
                let s = String::from_utf8_lossy(&text);
                assert_eq!(only(&s, extra), want && s.len() == 3, "byte {c:#04x}, extra {}", extra as char);
            }
            assert!(only("", extra));
        }
    }

    #[test]
    fn table_resolution_like_the_reference() {
        let t = TableRef::resolve("tmp_abertta.processable_claims_abertta_20251105_171427", "test-project").unwrap();
        assert_eq!(t.sql(), "`test-project.tmp_abertta.processable_claims_abertta_20251105_171427`");
        let t = TableRef::resolve("other-proj.ds.t", "test-project").unwrap();
        assert_eq!(t.to_string(), "other-proj.ds.t");
        // no dot: `<data project>.<value>`, which BigQuery reads as dataset `<data project>`
        // (only valid when the data project id is also a valid dataset name)
        let t = TableRef::resolve("t1", "dataproj").unwrap();
        assert_eq!(t.to_string(), "dataproj.dataproj.t1");
        assert_eq!((t.project(), t.dataset(), t.table()), ("dataproj", "dataproj", "t1"));
        let t = TableRef::resolve("other-proj.ds.t", "test-project").unwrap();
        assert_eq!((t.project(), t.dataset(), t.table()), ("other-proj", "ds", "t"));
        let t = TableRef::resolve("ds.t", "p").unwrap();
        assert_eq!((t.project(), t.dataset(), t.table(), t.as_str()), ("p", "ds", "t", "p.ds.t"));
        // ordered part by part: `a` before `a-b` although `-` sorts before `.`
        let (a, ab) = (TableRef::resolve("a.x.y", "p").unwrap(), TableRef::resolve("a-b.x.y", "p").unwrap());
        assert!(a < ab);
    }

    #[test]
    fn invalid_identifiers_are_rejected() {
        for bad in [
            "ds.t`; DROP TABLE x; --",
            "ds.t where 1=1",
            "a.b.c.d",
            "ds.",
            ".t",
            "proj_with_underscore.ds.t",
            "-proj.ds.t",
            "ds.t-with-hyphen",
            "ds.t\n",
            "",
            "t1",
        ] {
            assert!(TableRef::resolve(bad, "test-project").is_err(), "{bad:?} must be rejected");
        }
        // the messages name the part at fault
        let e = TableRef::resolve("a.b.c.d", "p").unwrap_err();
        assert!(e.is_not_a_reference() && e.value() == "a.b.c.d");
        assert_eq!(e.to_string(), "not a table reference of the form [project.]dataset.table");
        let e = TableRef::resolve("-p.ds.t", "p").unwrap_err();
        assert_eq!(e, TableRefError::InvalidProject { value: "-p.ds.t".into(), project: "-p".into() });
        assert_eq!(e.to_string(), "the project part is not a valid project id (letters, digits, hyphens; at most 63)");
        let e = TableRef::resolve("ds.t-x", "p").unwrap_err();
        assert_eq!(e.to_string(), "the table part is not a valid identifier ([A-Za-z0-9_]+, at most 1024)");
        // metadata views and meta-tables, however they are spelled
        for meta in [
            "region-us.INFORMATION_SCHEMA.JOBS",
            "REGION-eu.information_schema.jobs_by_user",
            "ds.INFORMATION_SCHEMA",
            "INFORMATION_SCHEMA.TABLES",
            "p.INFORMATION_SCHEMA.VIEWS",
            "ds.__TABLES__",
            "p.ds.__TABLES_SUMMARY__",
            "ds.__PARTITIONS_SUMMARY__",
            "region-us.ds.t",
        ] {
            let e = TableRef::resolve(meta, "p").unwrap_err();
            assert!(matches!(e, TableRefError::Metadata { .. }), "{meta}: {e:?}");
        }
        assert!(TableRef::resolve("ds.tables_summary", "p").is_ok());
        // the text never repeats the value
        let e = TableRef::resolve("ops.lead@example.com", "p").unwrap_err();
        assert!(!e.to_string().contains("example"), "{e}");
        assert!(matches!(TableRef::resolve("d-s.t", "p"), Err(TableRefError::InvalidDataset { .. })));
    }
}
