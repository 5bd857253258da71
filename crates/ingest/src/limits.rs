//! Intake limits: how much of one input a reader holds in memory at most.
//!
//! Every reader reads through these helpers, never `read_to_string`/`fs::read` of unbounded
//! input: a line-based file through [`BoundedLines`] (a line over the limit is skipped
//! without being buffered and reported, so the reader quarantines that unit), a file that is
//! one message or one JSON document through [`read_capped`] (a file over the limit is not
//! read at all, and the reader quarantines it whole with code `too_large`). The CSV reader
//! stops its csv parser from reading more than a record's limit ahead (the record and the
//! rest of the file quarantined `too_large`). UKE and DPC cap
//! their lines at [`crate::uke::MAX_LINE`] (1 MiB) the same way.

use std::io::{self, BufRead, Read};
use std::path::Path;

/// The readers' size limits, in bytes (`[ingest] max_*_bytes` in `kiban.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// One line of a line-based file: a FHIR NDJSON resource (and the Patient files a Bulk
    /// export's other files are resolved against), and one CSV record (quoted line breaks
    /// included).
    pub max_line: usize,
    /// One SS-MIX2 / HL7 v2 file (an SS-MIX2 file is one message), an extended-storage
    /// item's main document included.
    pub max_message: usize,
    /// One JSON document read whole: a FHIR Bundle or single-resource file.
    pub max_document: usize,
}

/// 16 MiB.
pub const DEFAULT_MAX_LINE: usize = 16 << 20;
/// 16 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 16 << 20;
/// 64 MiB.
pub const DEFAULT_MAX_DOCUMENT: usize = 64 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: DEFAULT_MAX_LINE,
            max_message: DEFAULT_MAX_MESSAGE,
            max_document: DEFAULT_MAX_DOCUMENT,
        }
    }
}

/// The quarantine reason of an input over `limit` (`what`: "line", "message", "document").
pub(crate) fn too_large_reason(what: &str, limit: usize, setting: &str) -> String {
    format!("{what} larger than the intake limit of {limit} bytes ([ingest] {setting})")
}

/// Reads the file at `path` whole when it holds at most `max` bytes; `None` (nothing read)
/// when it is larger — also when it grew after it was measured.
pub(crate) fn read_capped(path: &Path, max: usize) -> io::Result<Option<Vec<u8>>> {
    let f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len > max as u64 {
        return Ok(None);
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    f.take(max as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > max {
        return Ok(None);
    }
    Ok(Some(buf))
}

/// One line read by [`BoundedLines`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// The line (without its `\n`) is in the caller's buffer.
    Line,
    /// The line was longer than the limit: skipped up to its end, not buffered; `bytes` is
    /// its length.
    TooLong { bytes: u64 },
}

/// Splits a reader into `\n`-terminated lines holding at most `max` bytes of one line.
pub(crate) struct BoundedLines<R> {
    inner: R,
    max: usize,
}

impl<R: BufRead> BoundedLines<R> {
    pub(crate) fn new(inner: R, max: usize) -> Self {
        BoundedLines { inner, max }
    }

    /// The next line into `buf` (cleared first); `None` at the end of input.
    pub(crate) fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Line>> {
        buf.clear();
        let mut len: u64 = 0;
        let mut over = false;
        let mut any = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            len += take as u64;
            if !over {
                if buf.len() + take > self.max {
                    over = true;
                    buf.clear();
                    buf.shrink_to(64 * 1024);
                } else {
                    buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.inner.consume(take + usize::from(done));
            if done {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        Ok(Some(if over {
            Line::TooLong { bytes: len }
        } else {
            Line::Line
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_skipped_whole_and_the_next_line_is_read() {
        let mut data = b"ab\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 100));
        data.extend_from_slice(b"\ncd\n\nlast");
        let mut lines = BoundedLines::new(io::BufReader::with_capacity(7, &data[..]), 10);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some(l) = lines.next_line(&mut buf).expect("read") {
            got.push((l, String::from_utf8(buf.clone()).expect("utf8")));
        }
        assert_eq!(
            got,
            vec![
                (Line::Line, "ab".into()),
                (Line::TooLong { bytes: 100 }, String::new()),
                (Line::Line, "cd".into()),
                (Line::Line, String::new()),
                (Line::Line, "last".into()),
            ]
        );
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_kept() {
        let data = b"0123456789\n0123456789a\n";
        let mut lines = BoundedLines::new(&data[..], 10);
        let mut buf = Vec::new();
        assert_eq!(lines.next_line(&mut buf).expect("r"), Some(Line::Line));
        assert_eq!(buf, b"0123456789");
        assert_eq!(
            lines.next_line(&mut buf).expect("r"),
            Some(Line::TooLong { bytes: 11 })
        );
        assert_eq!(lines.next_line(&mut buf).expect("r"), None);
    }

    #[test]
    fn capped_reads_refuse_larger_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").expect("write");
        assert_eq!(read_capped(&p, 5).expect("r"), Some(b"12345".to_vec()));
        assert_eq!(read_capped(&p, 4).expect("r"), None);
    }
}
