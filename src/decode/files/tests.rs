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
    let text = format!("{}\n\nnot json\n{}\n{{\"source_timestamp\":true}}\n{}", record("a"), record("b"), record("c"));
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

/// A JSON line of no record shape in a Cloud Storage file says so, in the words replay uses
/// for it, instead of "source_timestamp is required"; lines of a record's shape keep their
/// decoder's own error.
#[tokio::test]
async fn a_line_of_no_record_shape_says_so() {
    let text = format!("{}\n{{\"a\":1}}\n[1]\n{{\"payload\":{{}}}}\n", record("a"));
    let got = all(text.into_bytes(), "x.jsonl", 1 << 20).await;
    assert!(got[0].record.is_ok());
    let errors: Vec<(Option<&str>, &str)> = got[1..]
        .iter()
        .map(|r| r.record.as_ref().unwrap_err())
        .map(|e| (e.field.as_deref(), e.message.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (Some("line 2: format"), "a JSON object is no change record"),
            (Some("line 3: format"), "a JSON array is no change record"),
            (Some("line 4: source_timestamp"), "source_timestamp is required"),
        ]
    );
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
