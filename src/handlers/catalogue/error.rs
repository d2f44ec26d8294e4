//! Catalogue errors: where (file and line, and for a fragment the include sites) and why.

/// An invalid catalogue file: where (file and 1-based line; 0 when the file as a whole is at
/// fault) and why. For a line of an SQL fragment, `included_from` lists the include sites that
/// brought it into the family's query, innermost first.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {message}{}", location(file, *line), include_chain(included_from))]
pub struct CatalogueError {
    /// The file at fault, as displayed (`handlers/x.toml`, or its path in `HANDLERS_DIR`).
    pub file: String,
    /// 1-based line in `file`; 0 when the file as a whole is at fault.
    pub line: usize,
    /// What is wrong.
    pub message: String,
    /// For a line of a fragment: (file, line) of each include that brought it in, innermost first.
    pub included_from: Vec<(String, usize)>,
}

impl CatalogueError {
    /// An error at a line of a file that no include brought in.
    pub fn new(file: impl Into<String>, line: usize, message: impl Into<String>) -> Self {
        CatalogueError { file: file.into(), line, message: message.into(), included_from: Vec::new() }
    }
}

/// `file:line`, or the file alone when it is at fault as a whole (line 0), or when it is no
/// file but the variable that named it (`PROFILES`): no bogus `:0`.
fn location(file: &str, line: usize) -> String {
    match line {
        0 => file.to_string(),
        n => format!("{file}:{n}"),
    }
}

fn include_chain(sites: &[(String, usize)]) -> String {
    if sites.is_empty() {
        return String::new();
    }
    let sites: Vec<String> = sites.iter().map(|(f, l)| format!("{f}:{l}")).collect();
    format!(" (included from {})", sites.join(" <- "))
}

/// 1-based line of the first occurrence of `needle` (1 when absent).
pub(super) fn line_of(text: &str, needle: &str) -> usize {
    text.find(needle).map(|i| text[..i].matches('\n').count() + 1).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_numbers() {
        assert_eq!(line_of("a\nb\nc", "c"), 3);
    }

    #[test]
    fn a_whole_file_or_variable_at_fault_has_no_line_zero() {
        assert_eq!(CatalogueError::new("profiles/x.toml", 7, "bad").to_string(), "profiles/x.toml:7: bad");
        assert_eq!(CatalogueError::new("dir/x.toml", 0, "cannot read").to_string(), "dir/x.toml: cannot read");
    }
}
