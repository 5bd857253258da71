//! Reading a PDF back as a reader would, for the test suites of the crates that draw PDFs
//! (feature `testing`; never in a release build): poppler's `pdftotext` (Debian
//! `poppler-utils`). Absent outside CI, the check is skipped with a note; with `CI=true` its
//! absence fails the test.

use std::process::Command;

/// The text `pdftotext -enc UTF-8` extracts from `pdf`, or `None` when `pdftotext` is not
/// installed and `CI` is not `true`. Panics (it is a test helper) when the PDF cannot be
/// written to a temporary file or `pdftotext` fails on it.
pub fn pdftotext(pdf: &[u8]) -> Option<String> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).expect("write the PDF");
    let out = match Command::new("pdftotext")
        .args(["-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("pdftotext is required in CI (apt-get install poppler-utils): {e}");
            }
            eprintln!("NOTE: pdftotext not found (apt-get install poppler-utils); skipped");
            return None;
        }
    };
    assert!(out.status.success(), "pdftotext failed: {out:?}");
    Some(String::from_utf8(out.stdout).expect("pdftotext -enc UTF-8 writes UTF-8"))
}

/// `s` without any whitespace: pdftotext may break lines and put spaces between glyph runs.
pub fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}
