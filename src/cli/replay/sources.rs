//! The files of a replay: local files, directories (read recursively) and `gs://bucket/prefix`
//! listings, each opened as a byte stream whose consumption the progress display counts. Of a
//! directory or prefix, only the files whose names say they hold records are read
//! ([`READ_SUFFIXES`]; `.avro` too, to be reported as Datastream's Avro output): the rest
//! (notes, checksums, oracles) is skipped and counted. A file named on its own is always read.
//!
//! Order: sources in the order given; the files of one directory or prefix in Datastream's
//! time order, the time folders of its object names (`<table folder>/YYYY/MM/DD/HH/mm/<file>`:
//! the records' source time), and within one minute the files of parent tables first (a Mage
//! `pipeline_run` before its `block_run`s: a task names its pipeline through its parent row,
//! which must be seen first), then by name. Files outside that layout sort by name.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::google::storage::Storage;
use crate::pipeline::files::object_folder;

/// One file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub location: Location,
    /// Bytes, when known (the progress display's total).
    pub size: Option<u64>,
}

/// Where a file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Gcs { bucket: String, name: String, generation: Option<String> },
}

impl Source {
    /// The path, or `gs://bucket/name`, as messages name it.
    pub fn display(&self) -> String {
        match &self.location {
            Location::Local(p) => p.display().to_string(),
            Location::Gcs { bucket, name, .. } => format!("gs://{bucket}/{name}"),
        }
    }

    /// Opens the file as a byte stream.
    ///
    /// Errors: why it cannot be opened (the caller names the file: the summary's line is
    /// `unreadable: <file>: <why>`).
    pub async fn open(&self, storage: Option<&Storage>) -> Result<Pin<Box<dyn AsyncRead + Send>>, String> {
        match &self.location {
            Location::Local(p) => match tokio::fs::File::open(p).await {
                Ok(f) => Ok(Box::pin(f)),
                Err(e) => Err(match std::fs::read_link(p) {
                    Ok(target) => format!("a symbolic link to {}, which cannot be opened: {e}", target.display()),
                    Err(_) => e.to_string(),
                }),
            },
            Location::Gcs { bucket, name, generation } => {
                let storage = storage.ok_or_else(|| no_storage(bucket))?;
                let stream = storage.read(bucket, name, generation.as_deref()).await.map_err(|e| e.message)?;
                Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
            }
        }
    }
}

fn no_storage(bucket: &str) -> String {
    format!("gs://{bucket}: reading Cloud Storage needs STORAGE_EMULATOR_HOST or Google credentials")
}

/// The endings of the file names a directory or prefix is read for (JSON Lines, gzip or not).
pub const READ_SUFFIXES: [&str; 4] = [".jsonl", ".jsonl.gz", ".json", ".json.gz"];

/// Whether a file of a directory or prefix is read: its name ends in one of [`READ_SUFFIXES`]
/// (any case), or in `.avro` (reported as unreadable, with what to configure instead).
fn is_read(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    READ_SUFFIXES.iter().any(|s| name.ends_with(s)) || name.ends_with(".avro")
}

/// The files of a replay's sources.
#[derive(Debug, Default)]
pub struct Expanded {
    /// The files to read, in order.
    pub files: Vec<Source>,
    /// Files of directories and prefixes skipped by their names ([`READ_SUFFIXES`]).
    pub skipped: usize,
}

/// Every file of `sources`, ordered (see the module documentation); `parents` are the parent
/// tables ([`crate::pipeline::Pipeline::parent_tables`]).
///
/// Errors: a source that does not exist, cannot be listed, or holds no file to read (named,
/// with the files skipped there).
pub async fn expand(sources: &[String], storage: Option<&Storage>, parents: &[String]) -> Result<Expanded, String> {
    let mut out = Expanded::default();
    for s in sources {
        let (mut files, skipped) = match s.strip_prefix("gs://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(format!("{s}: expected gs://bucket/prefix"));
                }
                let storage = storage.ok_or_else(|| no_storage(bucket))?;
                let listed = storage.list(bucket, prefix).await.map_err(|e| e.message)?;
                let mut files: Vec<Source> = listed
                    .into_iter()
                    .filter(|o| !o.name.ends_with('/'))
                    .map(|o| Source {
                        location: Location::Gcs { bucket: bucket.to_string(), name: o.name, generation: o.generation },
                        size: o.size,
                    })
                    .collect();
                let listed = files.len();
                files.retain(|f| is_read(&f.display()));
                let skipped = listed - files.len();
                (files, skipped)
            }
            None => local(Path::new(s))?,
        };
        if files.is_empty() {
            let why = match skipped {
                0 => String::new(),
                n => format!(
                    " ({n} file{} skipped: only names ending in {} are read)",
                    if n == 1 { "" } else { "s" },
                    READ_SUFFIXES.join(", ")
                ),
            };
            return Err(format!("{s}: no file to replay there{why}"));
        }
        files.sort_by_cached_key(|f| order_key(&f.display(), parents));
        out.files.extend(files);
        out.skipped += skipped;
    }
    Ok(out)
}

/// A file (read whatever its name), or the files under a directory that [`is_read`] takes, and
/// how many others were skipped there.
///
/// An entry is judged by its name before anything else: one skipped by its name is never
/// opened nor followed (a dangling symbolic link named `modules.conf` is skipped like any other
/// file). A symbolic link is followed to learn whether it is a directory (read through, as a
/// directory). A file with a name that is read but that cannot be examined (a dangling link,
/// no permission) is listed all the same, size unknown: opening it fails, and the replay names
/// it unreadable and reads the other files.
///
/// Errors: `path` itself, or a directory under it, cannot be read (named).
fn local(path: &Path) -> Result<(Vec<Source>, usize), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_dir() {
        return Ok((vec![Source { location: Location::Local(path.to_path_buf()), size: Some(meta.len()) }], 0));
    }
    let (mut out, mut skipped) = (Vec::new(), 0);
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let p = entry.path();
            let named = is_read(&entry.file_name().to_string_lossy());
            // the entry itself, links not followed
            let kind = entry.file_type().map_err(|e| format!("{}: {e}", p.display()))?;
            let target = if kind.is_symlink() { std::fs::metadata(&p).ok() } else { None };
            if kind.is_dir() || target.as_ref().is_some_and(|m| m.is_dir()) {
                dirs.push(p);
            } else if !named {
                skipped += usize::from(kind.is_file() || kind.is_symlink());
            } else if kind.is_file() || kind.is_symlink() && target.as_ref().is_none_or(|m| m.is_file()) {
                let size =
                    if kind.is_symlink() { target.map(|m| m.len()) } else { entry.metadata().ok().map(|m| m.len()) };
                out.push(Source { location: Location::Local(p), size });
            }
        }
    }
    Ok((out, skipped))
}

/// (time folders, 0 for a parent table's file, the name).
fn order_key(name: &str, parents: &[String]) -> (String, u8, String) {
    let time = time_folders(name).unwrap_or_default();
    let parent = object_folder(name)
        .is_some_and(|folder| parents.iter().any(|t| folder == t || folder.ends_with(&format!("_{t}"))));
    (time, u8::from(!parent), name.to_string())
}

/// `YYYY/MM/DD/HH/mm` of a Datastream object name.
fn time_folders(name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('/').collect();
    let digits = |p: &&str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
    let year = parts.iter().position(|p| digits(p, 4))?;
    let rest = parts.get(year + 1..year + 5)?;
    rest.iter().all(|p| digits(p, 2)).then(|| parts[year..year + 5].join("/"))
}

/// A byte stream that adds what is read from it to a counter (the progress display's bytes).
pub struct Counted {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    bytes: Arc<AtomicU64>,
}

impl Counted {
    pub fn new(inner: Pin<Box<dyn AsyncRead + Send>>, bytes: Arc<AtomicU64>) -> Counted {
        Counted { inner, bytes }
    }
}

impl AsyncRead for Counted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.inner.as_mut().poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            self.bytes.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datastream_files_sort_by_minute_then_parents_first() {
        let parents = vec!["pipeline_run".to_string()];
        let mut names = vec![
            "ds/public_block_run/2026/11/30/13/30/b.jsonl",
            "ds/public_pipeline_run/2026/11/30/13/31/c.jsonl",
            "ds/public_block_run/2026/11/30/13/29/a.jsonl",
            "ds/public_pipeline_run/2026/11/30/13/30/a.jsonl",
            "ds/public_pipeline_run/2026/11/30/13/29/z.jsonl",
        ];
        names.sort_by_key(|n| order_key(n, &parents));
        assert_eq!(
            names,
            [
                "ds/public_pipeline_run/2026/11/30/13/29/z.jsonl",
                "ds/public_block_run/2026/11/30/13/29/a.jsonl",
                "ds/public_pipeline_run/2026/11/30/13/30/a.jsonl",
                "ds/public_block_run/2026/11/30/13/30/b.jsonl",
                "ds/public_pipeline_run/2026/11/30/13/31/c.jsonl",
            ]
        );
        assert_eq!(time_folders("x/2026/11/30/13/29/f.jsonl").as_deref(), Some("2026/11/30/13/29"));
        assert_eq!(time_folders("x/2026/11/f.jsonl"), None);
        assert_eq!(time_folders("events/mage/success.jsonl"), None);
    }

    #[tokio::test]
    async fn directories_are_read_recursively_and_a_missing_source_is_named() {
        let dir = std::env::temp_dir().join(format!("replay-sources-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/2.jsonl"), "{}\n").unwrap();
        std::fs::write(dir.join("1.jsonl.gz"), "").unwrap();
        let got = expand(&[dir.display().to_string()], None, &[]).await.unwrap().files;
        let names: Vec<String> = got.iter().map(|s| s.display()).collect();
        assert_eq!(
            names,
            [dir.join("1.jsonl.gz").display().to_string(), dir.join("a/b/2.jsonl").display().to_string()]
        );
        assert_eq!(got[1].size, Some(3));
        let missing = dir.join("nope.jsonl").display().to_string();
        let e = expand(std::slice::from_ref(&missing), None, &[]).await.unwrap_err();
        assert!(e.starts_with(&missing), "{e}");
        std::fs::create_dir_all(dir.join("empty")).unwrap();
        assert!(expand(&[dir.join("empty").display().to_string()], None, &[]).await.unwrap_err().contains("no file"));
        let e = expand(&["gs://bucket/p".to_string()], None, &[]).await.unwrap_err();
        assert!(e.contains("STORAGE_EMULATOR_HOST"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A trial's `replay /etc` stopped at a dangling symbolic link (`modules.conf`) before
    /// reading anything. A link skipped by its name is skipped unopened; a dangling link with a
    /// name that is read is listed, and opening it says what it is.
    #[tokio::test]
    async fn a_dangling_link_is_skipped_by_its_name_or_named_when_opened() {
        let dir = std::env::temp_dir().join(format!("replay-dangling-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("real")).unwrap();
        std::fs::write(dir.join("real/a.jsonl"), "{}\n").unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere.conf"), dir.join("modules.conf")).unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere.jsonl"), dir.join("lost.jsonl")).unwrap();
        // a link to a directory is read through, as before
        std::os::unix::fs::symlink(dir.join("real"), dir.join("linked")).unwrap();
        let got = expand(&[dir.display().to_string()], None, &[]).await.unwrap();
        let mut names: Vec<(String, Option<u64>)> = got
            .files
            .iter()
            .map(|f| (f.display().strip_prefix(&format!("{}/", dir.display())).unwrap().into(), f.size))
            .collect();
        names.sort();
        let want = [("linked/a.jsonl", Some(3)), ("lost.jsonl", None), ("real/a.jsonl", Some(3))];
        assert_eq!(names, want.map(|(n, s)| (n.to_string(), s)));
        assert_eq!(got.skipped, 1, "modules.conf");
        // a file gone since it was listed: the reason alone (the summary names the file once)
        std::fs::remove_file(dir.join("real/a.jsonl")).unwrap();
        let gone = got.files.iter().find(|f| f.display().ends_with("real/a.jsonl")).unwrap();
        assert_eq!(gone.open(None).await.err().unwrap(), "No such file or directory (os error 2)");
        let lost = got.files.iter().find(|f| f.display().ends_with("lost.jsonl")).unwrap();
        let e = lost.open(None).await.err().unwrap();
        assert_eq!(
            e,
            format!(
                "a symbolic link to {}, which cannot be opened: No such file or directory (os error 2)",
                dir.join("nowhere.jsonl").display()
            )
        );
        // only dangling links skipped by their names: no file to replay, said as for any other
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere.conf"), dir.join("etc/modules.conf")).unwrap();
        let e = expand(&[dir.join("etc").display().to_string()], None, &[]).await.unwrap_err();
        assert!(e.ends_with("no file to replay there (1 file skipped: only names ending in .jsonl, .jsonl.gz, .json, .json.gz are read)"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Of a directory, only files named like records are read (notes, oracles and checksums are
    /// skipped and counted); a file named on its own is read whatever its name.
    #[tokio::test]
    async fn a_directory_is_read_for_its_record_files_only() {
        let dir = std::env::temp_dir().join(format!("replay-suffixes-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let read = ["a.jsonl", "b.jsonl.gz", "c.json", "sub/d.JSON.GZ", "e.avro"];
        let skipped = ["notes.md", "x.scenario.md", "SHA256SUMS", "f.jsonl.bak", "sub/g.txt", "h.gz"];
        for name in read.iter().chain(&skipped) {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let got = expand(&[dir.display().to_string()], None, &[]).await.unwrap();
        let mut names: Vec<String> = got
            .files
            .iter()
            .map(|f| f.display().strip_prefix(&format!("{}/", dir.display())).unwrap().into())
            .collect();
        names.sort();
        let mut want: Vec<String> = read.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(names, want);
        assert_eq!(got.skipped, skipped.len());
        let named = expand(&[dir.join("notes.md").display().to_string()], None, &[]).await.unwrap();
        assert_eq!((named.files.len(), named.skipped), (1, 0));
        std::fs::create_dir_all(dir.join("only-notes")).unwrap();
        std::fs::write(dir.join("only-notes/README.md"), "").unwrap();
        let e = expand(&[dir.join("only-notes").display().to_string()], None, &[]).await.unwrap_err();
        assert!(e.contains("no file to replay there (1 file skipped: only names ending in .jsonl"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
