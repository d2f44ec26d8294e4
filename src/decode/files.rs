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

use super::{ChangeEvent, DecodeError, RecordInput};

/// Turns one parsed line into a change record: [`super::record`] (any format, recognised by its
/// shape) or one format's own decoder.
pub type RecordDecoder = fn(serde_json::Value) -> Result<ChangeEvent, DecodeError>;

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
    /// magic.
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
            decoder: super::record,
            plain: true,
            broken: None,
        })
    }

    /// Decodes every line with `decoder` instead of recognising its format.
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
mod tests {
    use super::*;

    fn record(uuid: &str) -> String {
        format!(
            r#"{{"uuid":"{uuid}","source_timestamp":"2025-11-05T18:23:31Z","payload":{{"pipeline_uuid":"p","status":"RUNNING"}}}}"#
        )
    }

    async fn all(data: Vec<u8>, name: &str, max: usize) -> Vec<RecordInput> {
        let mut lines = Lines::new(std::io::Cursor::new(data), name, max).await.unwrap();
        let mut out = Vec::new();
        loop {
            let chunk = lines.next_chunk(2).await.unwrap();
            if chunk.is_empty() {
                break;
            }
            out.extend(chunk);
        }
        out
    }

    #[tokio::test]
    async fn plain_and_gzip_lines_with_a_bad_line_named() {
        let text =
            format!("{}\n\nnot json\n{}\n{{\"source_timestamp\":true}}\n{}", record("a"), record("b"), record("c"));
        for (data, name) in [(text.clone().into_bytes(), "x.jsonl"), (gz(text.as_bytes()).await, "x.jsonl.gz")] {
            let got = all(data, name, 1 << 20).await;
            let items: Vec<&str> = got.iter().map(|r| r.item.as_deref().unwrap()).collect();
            assert_eq!(items, ["line 1", "line 3", "line 4", "line 5", "line 6"], "{name}: blank line 2 skipped");
            assert!(got[0].record.is_ok() && got[2].record.is_ok() && got[4].record.is_ok(), "{name}");
            let bad = got[1].record.as_ref().unwrap_err();
            assert_eq!(bad.field.as_deref(), Some("line 3"));
            assert!(bad.message.starts_with("line 3 is not a JSON record"), "{bad}");
            let bad = got[3].record.as_ref().unwrap_err();
            assert_eq!(bad.field.as_deref(), Some("line 5: source_timestamp"), "{bad:?}");
        }
    }

    /// A file that begins with a UTF-8 byte order mark (written by some Windows tools) is read
    /// as without it.
    #[tokio::test]
    async fn a_byte_order_mark_before_the_first_line_is_ignored() {
        let text = format!("\u{feff}{}\n{}\n", record("a"), record("b"));
        let got = all(text.into_bytes(), "x.jsonl", 1 << 20).await;
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|r| r.record.is_ok()), "{:?}", got[0].record);
    }

    #[tokio::test]
    async fn gzip_is_sniffed_and_members_concatenate() {
        let mut data = gz(format!("{}\n", record("a")).as_bytes()).await;
        data.extend(gz(format!("{}\n", record("b")).as_bytes()).await);
        let got = all(data, "no-extension", 1 << 20).await;
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|r| r.record.is_ok()));
    }

    #[tokio::test]
    async fn a_too_long_line_fails_alone() {
        let long = format!("{{\"x\":\"{}\"}}", "y".repeat(5000));
        let text = format!("{}\n{long}\n{}\n", record("a"), record("b"));
        let got = all(text.into_bytes(), "x.jsonl", 1000).await;
        assert_eq!(got.len(), 3);
        assert!(got[1].record.as_ref().unwrap_err().message.contains("longer than 1000 bytes"));
        assert!(got[2].record.is_ok());
    }

    #[tokio::test]
    async fn a_corrupt_gzip_is_an_error_after_the_good_lines() {
        let mut data = gz(format!("{}\n{}\n", record("a"), record("b")).as_bytes()).await;
        let n = data.len();
        data.truncate(n - 12);
        data.extend_from_slice(b"garbage!garbage!");
        let mut lines = Lines::new(std::io::Cursor::new(data), "x.jsonl.gz", 1 << 20).await.unwrap();
        let mut ok = 0;
        let err = loop {
            match lines.next_chunk(1).await {
                Ok(c) if c.is_empty() => panic!("the corruption must be reported"),
                Ok(c) => ok += c.len(),
                Err(e) => break e,
            }
        };
        assert!(ok <= 2, "{ok}");
        assert!(!err.to_string().is_empty());
    }

    /// A gzip cut short (a truncated upload) keeps the records of every line before the cut,
    /// whatever the chunk size: they come first, the read error after them, and the line count
    /// names the last line read. A trial lost the whole chunk being filled (18 of 20 lines).
    #[tokio::test]
    async fn a_truncated_gzip_returns_the_lines_before_the_cut_then_the_error() {
        // lines 1-18 in a whole gzip member, lines 19-20 in a second member cut after its
        // 10-byte header: the cut lies in the second member, nothing of it inflates
        let first: String = (1..=18).map(|i| format!("{}\n", record(&format!("u{i}")))).collect();
        let second: String = (19..=20).map(|i| format!("{}\n", record(&format!("u{i}")))).collect();
        let mut data = gz(first.as_bytes()).await;
        data.extend_from_slice(&gz(second.as_bytes()).await[..10]);
        for chunk in [256, 5, 18, 1] {
            let mut lines = Lines::new(std::io::Cursor::new(data.clone()), "x.jsonl.gz", 1 << 20).await.unwrap();
            let mut items = Vec::new();
            let err = loop {
                match lines.next_chunk(chunk).await {
                    Ok(c) if c.is_empty() => panic!("chunk {chunk}: the cut must be reported"),
                    Ok(c) => {
                        assert!(c.iter().all(|r| r.record.is_ok()), "chunk {chunk}");
                        items.extend(c.into_iter().map(|r| r.item.unwrap()));
                    }
                    Err(e) => break e,
                }
            };
            let want: Vec<String> = (1..=18).map(|i| format!("line {i}")).collect();
            assert_eq!(items, want, "chunk {chunk}");
            assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "chunk {chunk}: {err}");
            assert_eq!(lines.line(), 18, "chunk {chunk}");
            // the error is reported once; the stream is not read on
            assert!(lines.next_chunk(chunk).await.unwrap().is_empty(), "chunk {chunk}");
        }
    }

    /// Without its 8-byte trailer (CRC-32 and length, RFC 1952) every line inflates: all are
    /// records, then the missing end is an error.
    #[tokio::test]
    async fn a_gzip_without_its_trailer_returns_every_line_then_the_error() {
        let text: String = (1..=20).map(|i| format!("{}\n", record(&format!("u{i}")))).collect();
        let mut data = gz(text.as_bytes()).await;
        data.truncate(data.len() - 8);
        let mut lines = Lines::new(std::io::Cursor::new(data), "x.jsonl.gz", 1 << 20).await.unwrap();
        let got = lines.next_chunk(256).await.unwrap();
        assert_eq!(got.len(), 20);
        assert_eq!(got[19].item.as_deref(), Some("line 20"));
        let err = lines.next_chunk(256).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
        assert_eq!(lines.line(), 20);
    }

    #[tokio::test]
    async fn a_chosen_decoder_refuses_other_formats() {
        let debezium = r#"{"op":"c","after":{"id":1},"source":{"table":"pipeline_run","ts_ms":1762367011393}}"#;
        let text = format!("{}\n{debezium}\n", record("a"));
        let lines = Lines::new(std::io::Cursor::new(text.into_bytes()), "x.jsonl", 1 << 20).await.unwrap();
        let mut lines = lines.with_decoder(crate::decode::datastream::decode);
        let got = lines.next_chunk(10).await.unwrap();
        assert!(got[0].record.is_ok());
        let e = got[1].record.as_ref().unwrap_err();
        assert!(e.field.as_deref().unwrap_or_default().starts_with("line 2"), "{e:?}");
        // recognised by its shape, the same line is a Debezium change
        let text = format!("{debezium}\n");
        let mut lines = Lines::new(std::io::Cursor::new(text.into_bytes()), "x.jsonl", 1 << 20).await.unwrap();
        assert!(lines.next_chunk(10).await.unwrap()[0].record.is_ok());
    }

    #[test]
    fn avro_is_recognised() {
        assert_eq!(FileKind::of("a/b_postgresql-backfill_-96622484_0_771.avro"), FileKind::Avro);
        assert_eq!(FileKind::of("a/b.jsonl.gz"), FileKind::JsonLines);
        assert!(avro_error("x.avro").message.contains("json_file_format"));
    }

    async fn gz(data: &[u8]) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        async_compression::tokio::bufread::GzipEncoder::new(data).read_to_end(&mut out).await.unwrap();
        out
    }
}
