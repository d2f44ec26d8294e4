//! What a value may become when the function repeats it: bounded excerpts for answer bodies,
//! fingerprints for logs, and the maximum length of the identifiers the function keeps.
//!
//! * Identifiers (Datastream `uuid`, Pub/Sub message id, CloudEvent id) longer than
//!   [`MAX_ID_BYTES`] are refused when decoded (400), so that nothing kept per event or written to a
//!   log line grows with what a sender chooses.
//! * An offending value is echoed in an answer at most once, as an [`excerpt`] of at most
//!   [`EXCERPT_CHARS`] characters.
//! * Logs never carry a payload variable's value: its name and a [`Fingerprint`] instead, a fixed
//!   16-hex-digit keyed hash (the key is random per process, so that a fingerprint cannot be
//!   matched against guessed e-mail addresses; the answer to the same event carries the same
//!   fingerprint, which ties the two together).
//! * Free text that may quote a sender's input (a JSON parser's error, a content type) goes
//!   through [`quoted`], which shortens every quoted part and the whole text.

use std::sync::OnceLock;

/// The longest identifier (uuid, message id, CloudEvent id) accepted, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// The most characters of an offending value an answer repeats.
pub const EXCERPT_CHARS: usize = 64;

/// The longest message (decode errors, error texts) an answer or a log line carries, in
/// characters.
pub const MAX_MESSAGE_CHARS: usize = 512;

/// The first `max` characters of `s`; a longer value is cut and says how long it was.
pub fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes)", &s[..cut], s.len()),
    }
}

/// `text` with every quoted part (`'…'`, `"…"`, `` `…` ``) longer than 32 characters cut to an
/// excerpt, and the whole cut to [`MAX_MESSAGE_CHARS`]. An apostrophe between two letters or
/// digits (`Datastream's`) is part of a word, not a quote: the function's own sentences keep
/// them whole. For texts that may quote input (a JSON parser's "invalid type: string \"…\"", an
/// unknown field's name).
pub fn quoted(text: &str) -> String {
    const PART: usize = 32;
    let mut out = String::with_capacity(text.len().min(MAX_MESSAGE_CHARS + 64));
    let mut rest = text;
    while let Some(open) = rest.find(['\'', '"', '`']) {
        let q = rest[open..].chars().next().expect("found");
        out.push_str(&rest[..=open]);
        let inner = &rest[open + 1..];
        // an apostrophe inside a word ("Datastream's") opens no quote
        let before = out[..out.len() - 1].chars().next_back();
        if q == '\'' && before.is_some_and(char::is_alphanumeric) && inner.starts_with(char::is_alphanumeric) {
            rest = inner;
            continue;
        }
        match closing(inner, q) {
            Some(close) => {
                out.push_str(&recut(&inner[..close], PART));
                out.push(q);
                rest = &inner[close + 1..];
            }
            None => {
                out.push_str(&recut(inner, PART));
                rest = "";
            }
        }
        if out.len() > MAX_MESSAGE_CHARS * 4 {
            break;
        }
    }
    out.push_str(rest);
    excerpt(&out, MAX_MESSAGE_CHARS)
}

/// Where the quote `q` that opened `inner` closes: its next occurrence, but for `'` not an
/// apostrophe inside a word.
fn closing(inner: &str, q: char) -> Option<usize> {
    inner.match_indices(q).map(|(i, _)| i).find(|&i| {
        q != '\''
            || !(inner[..i].chars().next_back().is_some_and(char::is_alphanumeric)
                && inner[i + 1..].starts_with(char::is_alphanumeric))
    })
}

/// [`excerpt`] of a part that may be an excerpt already (a message that quoted a long value
/// through [`excerpt`]): cut again, it keeps the length of the value it was cut from, not the
/// length of the first excerpt.
fn recut(part: &str, max: usize) -> String {
    let first_cut = part
        .strip_suffix(" bytes)")
        .and_then(|p| p.rsplit_once("… ("))
        .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    match first_cut {
        Some((head, len)) => match head.char_indices().nth(max) {
            None => part.to_string(),
            Some((cut, _)) => format!("{}… ({len} bytes)", &head[..cut]),
        },
        None => excerpt(part, max),
    }
}

/// A fixed-length stand-in for a value in logs: 16 hex digits of a hash keyed per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(u64);

impl Fingerprint {
    pub fn of(value: &str) -> Fingerprint {
        static KEY: OnceLock<u64> = OnceLock::new();
        let key = *KEY.get_or_init(|| {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
            );
            h.write_u32(std::process::id());
            h.finish()
        });
        Fingerprint(xxhash_rust::xxh3::xxh3_64_with_seed(value.as_bytes(), key))
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// An offending value as an answer may show it (an excerpt) and a log may name it (a
/// fingerprint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offending {
    /// At most [`EXCERPT_CHARS`] characters of the value.
    pub excerpt: String,
    pub fingerprint: Fingerprint,
}

impl Offending {
    pub fn of(value: &str) -> Offending {
        Offending { excerpt: excerpt(value, EXCERPT_CHARS), fingerprint: Fingerprint::of(value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded_and_cut_at_characters() {
        assert_eq!(excerpt("short", 64), "short");
        let long = "é".repeat(100);
        let e = excerpt(&long, 10);
        assert!(e.starts_with(&"é".repeat(10)) && e.ends_with("(200 bytes)"), "{e}");
    }

    /// A value quoted through `excerpt` and cut again keeps its own length (a trial saw a value
    /// of 5,000 bytes reported as "(80 bytes)").
    #[test]
    fn a_value_cut_twice_keeps_its_length() {
        for n in [79usize, 80, 81, 200, 5000] {
            let value = "C".repeat(n);
            let message = format!("change_type '{}' is not one of INSERT, UPDATE", excerpt(&value, 80));
            let shown = quoted(&message);
            if n > 32 {
                assert!(shown.contains(&format!("… ({n} bytes)'")), "{n}: {shown}");
                assert_eq!(shown.matches("bytes)").count(), 1, "{n}: {shown}");
            }
        }
        assert_eq!(recut("short", 32), "short");
        // a text that only looks like an excerpt in part is cut as any other
        let odd = format!("{}… (many bytes)", "x".repeat(40));
        assert!(recut(&odd, 32).ends_with(&format!("… ({} bytes)", odd.len())));
    }

    #[test]
    fn quoted_parts_and_whole_texts_are_bounded() {
        let big = "x".repeat(10_000);
        let msg = format!("invalid type: string \"{big}\", expected u32 at line 1 column 10020");
        let q = quoted(&msg);
        assert!(q.len() < 200, "{q}");
        assert!(q.starts_with("invalid type: string \"xxxx") && q.contains("expected u32"), "{q}");
        assert_eq!(quoted("missing field `message`"), "missing field `message`");
        assert!(quoted(&format!("unterminated '{big}")).len() < 100);
        assert!(quoted(&big).chars().count() < MAX_MESSAGE_CHARS + 20);
    }

    /// A trial saw the Avro answer cut in its own sentence: "Datastream's … stream's" was taken
    /// for a quoted value of 65 bytes.
    #[test]
    fn apostrophes_inside_words_are_not_quotes() {
        let text = "x.avro is an Avro file: this function reads Datastream's JSON output (JSON Lines, optionally \
                    GZIP); configure the stream's Cloud Storage destination with json_file_format";
        assert_eq!(quoted(text), text);
        assert_eq!(quoted("it's 'short' and isn't cut"), "it's 'short' and isn't cut");
        // a quoted value is still cut, apostrophes in it or not
        let value = format!("O'{}", "x".repeat(100));
        let shown = quoted(&format!("table '{value}' can't be read"));
        assert_eq!(shown, format!("table 'O'{}… (102 bytes)' can't be read", "x".repeat(30)));
    }

    #[test]
    fn fingerprints_have_a_fixed_length_and_tell_values_apart() {
        let a = Fingerprint::of("ops@example.com").to_string();
        assert_eq!(a.len(), 16);
        assert_eq!(a, Fingerprint::of("ops@example.com").to_string());
        assert_ne!(a, Fingerprint::of("ops@example.org").to_string());
        assert_eq!(Fingerprint::of(&"x".repeat(1_000_000)).to_string().len(), 16);
    }
}
