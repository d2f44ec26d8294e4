//! The facts file of `replay --facts-file`: what one run leaves for the next, so that running
//! the same replay twice writes nothing twice.
//!
//! One JSON object: the records answered with a success (their de-duplication keys: the next run
//! answers them from the window without processing them, so not even their per-change points
//! such as the CDC lag are written again) and the fact memory ([`Snapshot`]: facts, row
//! histories, dimensions; a record that is new but re-derives a known fact, such as the backfill
//! read of a run already counted, writes nothing for it). Keys are 32 hex digits; a record's
//! key is a pair, the hash of its id and the digest of its content.
//!
//! Written atomically: into a temporary file in the same directory, flushed to disk, then
//! renamed over the old one, so that an interrupted save leaves the previous state whole.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::facts::Key;
use crate::facts::memory::Snapshot;

/// The `format` field of a facts file.
pub const FORMAT: &str = "pipeline-run-metrics replay state";
/// The version of its layout.
pub const VERSION: u32 = 1;

/// What a facts file holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub format: String,
    pub version: u32,
    /// De-duplication keys of the records answered with a success: the hash of each record's
    /// id and the digest of its content ([`crate::pipeline::dedup::Key`]), each 32 hex digits.
    pub records: Vec<(Key, Key)>,
    /// The fact memory. A field of its own, not flattened into this object: serde's flatten
    /// buffers values in a form without 128-bit integers, and a row history's log positions
    /// are `u128`.
    pub memory: Snapshot,
}

impl State {
    pub fn new(records: Vec<(Key, Key)>, memory: Snapshot) -> State {
        State { format: FORMAT.into(), version: VERSION, records, memory }
    }
}

/// The state saved at `path`; `None` when there is no file yet (a first run).
///
/// Errors: the file cannot be read, or is not a facts file of this version (named).
pub fn load(path: &Path) -> Result<Option<State>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let state: State = serde_json::from_reader(std::io::BufReader::new(file))
        .map_err(|e| format!("{}: not a replay facts file ({e})", path.display()))?;
    if state.format != FORMAT || state.version != VERSION {
        return Err(format!(
            "{}: a facts file of format {:?} version {}, expected {FORMAT:?} version {VERSION}",
            path.display(),
            state.format,
            state.version
        ));
    }
    Ok(Some(state))
}

/// Checks, before anything is replayed, that [`save`] will be able to write beside `path`: a
/// replay that wrote its points and then could not save its facts would write them all again
/// on the next run.
///
/// Errors: the directory does not exist or is not writable, naming the path.
pub fn check_writable(path: &Path) -> Result<(), String> {
    let (dir, name) = temp_parts(path);
    let probe = dir.join(format!(".{name}.probe-{}", std::process::id()));
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| format!("{}: the facts file could not be saved there: {e}", path.display()))
}

/// The directory of `path` (`.` when it has none) and its file name.
fn temp_parts(path: &Path) -> (PathBuf, String) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "facts".into());
    (dir, name)
}

/// Saves `state` at `path` atomically (see the module documentation).
///
/// Errors: the directory is not writable, the disk is full (the old file is left as it was).
pub fn save(path: &Path, state: &State) -> Result<(), String> {
    let (dir, name) = temp_parts(path);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut out = std::io::BufWriter::new(file);
        serde_json::to_writer(&mut out, state)?;
        out.write_all(b"\n")?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // the rename itself reaches the disk with the directory
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: the facts file cannot be saved: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_loads_back_and_a_missing_file_is_a_first_run() {
        let dir = std::env::temp_dir().join(format!("replay-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("facts.json");
        assert_eq!(load(&path).unwrap(), None);
        let state = State::new(
            vec![(Key::of(&["uuid", "a"]), Key::of(&["content"]))],
            Snapshot {
                facts: vec![Key::of(&["f"])],
                // a log position beyond 64 bits (an LSN as Postgres writes it): JSON integers of
                // 128 bits must survive the file
                rows: vec![(Key::of(&["r"]), row_with_position(u128::from(u64::MAX) + 7))],
                dimensions: vec![(Key::of(&["d"]), "etl".into())],
            },
        );
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state.clone()));
        // saved again over the old one; no temporary file left behind
        save(&path, &State::default_with_format()).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().records.len(), 0);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["facts.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_of_another_kind_is_refused_with_its_name() {
        let dir = std::env::temp_dir().join(format!("replay-state-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (text, says) in [
            ("not json", "not a replay facts file"),
            (
                r#"{"format":"other","version":1,"records":[],"memory":{"facts":[],"rows":[],"dimensions":[]}}"#,
                "expected",
            ),
            (
                r#"{"format":"pipeline-run-metrics replay state","version":1,"records":[["xyz","xyz"]]}"#,
                "32 hex digits",
            ),
        ] {
            let path = dir.join("f.json");
            std::fs::write(&path, text).unwrap();
            let e = load(&path).unwrap_err();
            assert!(e.starts_with(&path.display().to_string()) && e.contains(says), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn row_with_position(position: u128) -> crate::facts::RowState {
        crate::facts::RowState {
            changes: vec![crate::facts::ChangeNote {
                position,
                status: "success".into(),
                terminal: true,
                start_us: Some(1),
                end_us: Some(2),
                duration_s: None,
                end_from_commit: false,
                records: None,
            }],
            marks: Vec::new(),
        }
    }

    impl State {
        fn default_with_format() -> State {
            State::new(Vec::new(), Snapshot::default())
        }
    }
}
