//! Where the stdout backend writes: stdout, and a copy in `METRICS_FILE` when one is set
//! (`make local-run` keeps `.local/metrics.jsonl` this way, instead of piping through `tee`,
//! which truncated the file before the binary could find its port busy).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// stdout, plus a copy in a file.
pub struct Tee {
    stdout: io::Stdout,
    copy: Option<File>,
}

impl Tee {
    /// stdout, and `copy` created (or truncated) now when given. Call it once the port is
    /// bound: a process that cannot serve must not empty another one's file.
    pub fn open(copy: Option<&Path>) -> Result<Tee, String> {
        let copy = match copy {
            None => None,
            Some(p) => Some(File::create(p).map_err(|e| format!("METRICS_FILE={}: {e}", p.display()))?),
        };
        Ok(Tee { stdout: io::stdout(), copy })
    }
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stdout.write_all(buf)?;
        if let Some(f) = &mut self.copy {
            f.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stdout.flush()?;
        if let Some(f) = &mut self.copy {
            f.flush()?;
        }
        Ok(())
    }
}
