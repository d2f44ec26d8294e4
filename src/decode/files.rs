//! Change records in files: Datastream's Cloud Storage output (JSON Lines, optionally
//! gzip-compressed: `JsonFileFormat.compression = GZIP`), and the same shape for Debezium JSON
//! lines. One record per line; a line that is not a record fails alone, named by its number.
//!
//! Reading is streamed: at most one line (bounded by `max_line_bytes`) and one chunk of records
//! are held at a time, whatever the size of the file. Gzip is recognised by the object name
//! (`.gz`) or by its first two bytes (`1f 8b`, RFC 1952); concatenated gzip members are read as
//! one stream.

use std::pin::Pin;

use async_compression::tokio::bufread::GzipDecoder;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};

use serde_json::Value;

use super::{ChangeEvent, DecodeError, RecordInput};

/// Turns one parsed line into a change record: [`super::record`] (any format, recognised by its
/// shape) or one format's own decoder.
pub type RecordDecoder = fn(serde_json::Value) -> Result<ChangeEvent, DecodeError>;

/// The field of a line refused by its shape, after its line number (`line 3: format`).
pub const SHAPE_FIELD: &str = "format";

/// `decode` of a line shaped like a change record ([`super::looks_like_record`]), its identity
/// bounded as on every route. A JSON line that is no change record of any format (`{"a":1}`, a
/// wal2json change) is refused as such, not with the first missing field of a Datastream record
/// ("source_timestamp is required"): the same words for a Cloud Storage file and a replay.
pub fn shaped(v: Value, decode: RecordDecoder) -> Result<ChangeEvent, DecodeError> {
    if super::looks_like_record(&v) {
        let event = decode(v)?;
        super::bounded_id("uuid", event.uuid.as_deref())?;
        return Ok(event);
    }
    Err(DecodeError::malformed(SHAPE_FIELD.to_string(), format!("{} is no change record", what(&v))))
}

/// What a JSON value that is no change record is, when it can be told.
fn what(v: &Value) -> &'static str {
    let o = match v {
        Value::Object(o) => o,
        Value::Array(_) => return "a JSON array",
        _ => return "a JSON scalar",
    };
    // wal2json: format-version 2 writes one change per line ({"action": "I", "xid", "lsn",
    // "schema", "table", "columns"}), format-version 1 one transaction ({"xid", "change": [...]})
    let v2 = o.get("action").and_then(Value::as_str).is_some_and(|a| "BCIUDTM".contains(a) && a.len() == 1)
        && (o.contains_key("xid") || o.contains_key("lsn") || o.contains_key("columns"));
    let v1 = o.get("change").is_some_and(Value::is_array) && (o.contains_key("xid") || o.contains_key("nextlsn"));
    if v2 || v1 { "a wal2json change (pg_recvlogical output: convert it first)" } else { "a JSON object" }
}

/// What an object's name says it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `.jsonl`, `.json`, `.jsonl.gz`, `.json.gz` (or no extension): JSON Lines.
    JsonLines,
    /// `.avro`: Datastream's Avro output, which this function does not read.
    Avro,
}

impl FileKind {
    pub fn of(name: &str) -> FileKind {
        if name.to_ascii_lowercase().ends_with(".avro") { FileKind::Avro } else { FileKind::JsonLines }
    }
}

/// The longest object name an Avro answer repeats whole (Cloud Storage allows 1,024 bytes): the
/// answer's own sentence after it must fit in [`crate::redact::MAX_MESSAGE_CHARS`].
const AVRO_NAME_CHARS: usize = 256;

/// The answer for an Avro object: what is expected instead. The name is a value of the
/// notification (cut when longer than [`AVRO_NAME_CHARS`]); the sentence is the function's own.
pub fn avro_error(name: &str) -> DecodeError {
    let name = crate::redact::excerpt(name, AVRO_NAME_CHARS);
    DecodeError::malformed(
        Some("name".into()),
        format!(
            "{name} is an Avro file: this function reads Datastream's JSON output (JSON Lines, optionally GZIP); \
             configure the stream's Cloud Storage destination with json_file_format"
        ),
    )
}

/// Reads records line by line from a byte stream.
pub struct Lines {
    reader: Pin<Box<dyn AsyncBufRead + Send>>,
    /// Lines read so far (the number of the last line).
    line: u64,
    max_line_bytes: usize,
    done: bool,
    buf: Vec<u8>,
    decoder: RecordDecoder,
    /// Whether a line that is a plain Datastream record is read straight from its text
    /// ([`super::datastream::members::record`]): only where `decoder` decodes such a record as
    /// a Datastream record.
    plain: bool,
    /// The read error met while a chunk was being filled, held back so that the records read
    /// before it are returned first; returned by the next call.
    broken: Option<std::io::Error>,
}

impl Lines {
    /// Over `source`, gunzipped when `name` ends in `.gz` or the data starts with the gzip
    /// magic; each line decoded by [`super::record`] behind the shape check ([`shaped`]).
    pub async fn new(
        source: impl AsyncRead + Send + Unpin + 'static,
        name: &str,
        max_line_bytes: usize,
    ) -> Result<Lines, std::io::Error> {
        let mut raw = BufReader::with_capacity(64 * 1024, source);
        let head = raw.fill_buf().await?;
        let gzip = name.ends_with(".gz") || head.starts_with(&[0x1f, 0x8b]);
        let reader: Pin<Box<dyn AsyncBufRead + Send>> = if gzip {
            let mut d = GzipDecoder::new(raw);
            d.multiple_members(true);
            Box::pin(BufReader::with_capacity(64 * 1024, d))
        } else {
            Box::pin(raw)
        };
        Ok(Lines {
            reader,
            line: 0,
            max_line_bytes,
            done: false,
            buf: Vec::new(),
            decoder: |v| shaped(v, super::record),
            plain: true,
            broken: None,
        })
    }

    /// Decodes every line with `decoder` instead of recognising its format (no shape check but
    /// `decoder`'s own).
    pub fn with_decoder(mut self, decoder: RecordDecoder) -> Lines {
        self.decoder = decoder;
        self.plain = false;
        self
    }

    /// Reads a line that is a plain Datastream record straight from its text, as [`Lines::new`]
    /// does, after [`Lines::with_decoder`]: for a decoder that gives the same event as
    /// [`super::datastream::decode`] for such a record.
    pub fn with_plain_datastream(mut self, plain: bool) -> Lines {
        self.plain = plain;
        self
    }

    /// The number of the last line read.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Up to `n` records (blank lines skipped); empty at the end of the file.
    ///
    /// A line that lies whole in the reader's buffer is decoded where it lies; only a line
    /// across two buffer fills is copied first.
    ///
    /// Errors: the stream cannot be read or decompressed (a corrupt gzip, a broken connection),
    /// after the records of the lines read before it were returned.
    pub async fn next_chunk(&mut self, n: usize) -> Result<Vec<RecordInput>, std::io::Error> {
        if let Some(e) = self.broken.take() {
            return Err(e);
        }
        let mut out = Vec::with_capacity(n);
        match self.fill(&mut out, n).await {
            Ok(()) => Ok(out),
            // nothing read past the error: the stream is not read on
            Err(e) if out.is_empty() => {
                self.done = true;
                Err(e)
            }
            // the lines read before the error are records: returned now, the error next time
            Err(e) => {
                self.done = true;
                self.broken = Some(e);
                Ok(out)
            }
        }
    }

    /// Adds up to `n` records to `out`; on a read error, `out` keeps those read before it.
    async fn fill(&mut self, out: &mut Vec<RecordInput>, n: usize) -> Result<(), std::io::Error> {
        while out.len() < n && !self.done {
            let chunk = self.reader.fill_buf().await?;
            if let Some(i) = memchr::memchr(b'\n', chunk).filter(|i| *i <= self.max_line_bytes) {
                self.line += 1;
                let input = decode_line(self.decoder, self.plain, self.line, &chunk[..i]);
                Pin::new(&mut self.reader).consume(i + 1);
                out.extend(input);
                continue;
            }
            let too_long = self.read_line().await?;
            if self.done && self.buf.is_empty() && !too_long {
                break;
            }
            self.line += 1;
            if too_long {
                let e = DecodeError::malformed(
                    Some(format!("line {}", self.line)),
                    format!("line {} is longer than {} bytes (MAX_LINE_BYTES)", self.line, self.max_line_bytes),
                );
                out.push(RecordInput { item: Some(format!("line {}", self.line)), record: Err(e) });
                continue;
            }
            out.extend(decode_line(self.decoder, self.plain, self.line, &self.buf));
        }
        Ok(())
    }

    /// Reads the next line into `buf` (without its newline); `Ok(true)` when it was longer than
    /// the limit (then skipped to its end, not kept).
    async fn read_line(&mut self) -> Result<bool, std::io::Error> {
        self.buf.clear();
        let mut too_long = false;
        loop {
            let chunk = self.reader.fill_buf().await?;
            if chunk.is_empty() {
                self.done = true;
                return Ok(too_long);
            }
            let (take, end) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if !too_long && self.buf.len() + take <= self.max_line_bytes {
                self.buf.extend_from_slice(&chunk[..take]);
            } else {
                too_long = true;
                self.buf.clear();
            }
            Pin::new(&mut self.reader).consume(take + usize::from(end));
            if end {
                return Ok(too_long);
            }
        }
    }
}

/// The record of line number `line` (`raw`, without its newline); `None` for a blank line.
fn decode_line(decoder: RecordDecoder, plain: bool, line: u64, raw: &[u8]) -> Option<RecordInput> {
    // a byte order mark can only begin the file ([`super::without_bom`])
    let text = trim(if line == 1 { super::without_bom(raw) } else { raw });
    if text.is_empty() {
        return None;
    }
    let direct = if plain { super::datastream::members::record(text) } else { None };
    let record = match direct.map_or_else(|| serde_json::from_slice(text).map(decoder), Ok) {
        Ok(result) => result.map_err(|e| at_line(e, line)),
        Err(e) => {
            Err(DecodeError::malformed(Some(format!("line {line}")), format!("line {line} is not a JSON record: {e}")))
        }
    };
    Some(RecordInput { item: Some(format!("line {line}")), record })
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &b[start..end]
}

/// A record's error, with the line it is on before the field.
fn at_line(mut e: DecodeError, line: u64) -> DecodeError {
    e.field = Some(match e.field {
        Some(f) => format!("line {line}: {f}"),
        None => format!("line {line}"),
    });
    e
}

#[cfg(test)]
mod tests;
