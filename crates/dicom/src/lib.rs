//! kiban-dicom: DICOM headers in, kiban facts out; DICOM objects de-identified by the
//! PS3.15 Annex E Basic Application Level Confidentiality Profile.
//!
//! What it owns:
//! * [`read_dicom`] / [`read_dicom_bytes`]: one file is one unit. Identity (Patient ID, the
//!   three-group Person Name `Yamada^Tarou=山田^太郎=やまだ^たろう` → alphabetic / kanji / kana,
//!   birth date, sex, address, phone) for the vault and one [`kiban_model::ImageStudy`] fact
//!   for the lake (R-STD-1). dicom-rs parses; [`charset`] adds what dicom-rs lacks, the
//!   ISO 2022 code extensions Japanese sources use (`\ISO 2022 IR 87`,
//!   `ISO 2022 IR 13\ISO 2022 IR 87`). Pixel data is never decoded (no codecs are linked).
//! * [`deidentify`] / [`deidentify_file`]: the Basic Profile's action codes (X, Z, D, U and
//!   the combined codes, resolved to the strictest for an IOD-agnostic de-identifier) from the
//!   standard's own table, embedded from `data/` ([`profile`]), applied recursively through
//!   sequences, with the options kiban needs: dates shifted by a per-person offset (Retain
//!   Longitudinal Temporal Information with Modified Dates), UIDs remapped by a keyed hash
//!   under `2.25.` (consistent within a release, unlinkable across releases), private
//!   attributes removed unless their creator is on an allow-list, a supplied pseudonym as
//!   Patient ID / Patient's Name, and a burned-in-annotation risk flag (R-ANON-1, R-ANON-2,
//!   R-ANON-6(a)).
//! * [`annex_e_violations`]: a checker written apart from the de-identifier that re-reads an
//!   object and lists every attribute the profile says must not be there as it is.
//!
//! What it must never do: panic on input (a structural [`guard`] runs before dicom-rs so that
//! corrupt lengths cannot make it allocate gigabytes; the entry points are fuzzed); put values
//! (names, IDs, dates, UIDs) into errors — they name the file, the tag and the reason; touch
//! pixel data when de-identifying (burned-in text is flagged, not cleaned); print, log, or
//! touch the database, keys or the consent gate (the pipeline does that).

pub mod charset;
pub mod check;
pub mod deid;
pub mod guard;
pub mod profile;
pub mod read;

pub use check::{CheckOptions, Violation, annex_e_violations};
pub use deid::{
    DeidOptions, DeidReport, deidentify, deidentify_bytes, deidentify_file, deidentify_object,
    remap_uid,
};
pub use read::{
    DicomFile, DicomUnit, burned_in_risk, identity_from_object, instance_uids, looks_like_dicom,
    open_dicom, open_dicom_bytes, read_dicom, read_dicom_bytes, unit_from_object,
};

pub use dicom_object::{FileDicomObject, InMemDicomObject};

/// Errors of this crate. None carries a value from the file: only the file (as the caller
/// named it), the tag `(gggg,eeee)` and a reason.
#[derive(Debug, thiserror::Error)]
pub enum DicomError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    /// The bytes are not a DICOM object kiban can parse (quarantine the file).
    #[error("{file}: not a readable DICOM object{}: {reason}", at(.tag))]
    Malformed {
        file: String,
        tag: Option<String>,
        reason: String,
    },
    /// The object parses but an attribute kiban needs is missing or invalid (quarantine).
    #[error("{file}: attribute {tag} {name}: {reason}")]
    Attribute {
        file: String,
        tag: String,
        name: &'static str,
        reason: String,
    },
    /// The de-identified object could not be encoded or written.
    #[error("{file}: cannot write the de-identified object: {reason}")]
    Write { file: String, reason: String },
    #[error("invalid de-identification option: {0}")]
    Option(String),
}

fn at(tag: &Option<String>) -> String {
    tag.as_ref().map(|t| format!(" at {t}")).unwrap_or_default()
}

/// `(gggg,eeee)` in upper-case hex, the way the standard writes tags.
pub fn fmt_tag(group: u16, element: u16) -> String {
    format!("({group:04X},{element:04X})")
}

/// Describes a dicom-rs error without its messages (which may quote values): the chain of
/// error variant names, and the first tag any message mentions.
pub(crate) fn describe_error(err: &(dyn std::error::Error + 'static)) -> (Option<String>, String) {
    let mut names = Vec::new();
    let mut tag = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let dbg = format!("{e:?}");
        let name: String = dbg
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && names.last() != Some(&name) {
            names.push(name);
        }
        if tag.is_none() {
            tag = find_tag(&e.to_string());
        }
        cur = e.source();
    }
    let reason = if names.is_empty() {
        "the DICOM parser rejected the data".to_string()
    } else {
        format!("the DICOM parser rejected the data ({})", names.join(" > "))
    };
    (tag, reason)
}

/// The first `(gggg,eeee)` hex tag in a message.
fn find_tag(s: &str) -> Option<String> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(10)).find_map(|i| {
        let w = b.get(i..i + 11)?;
        let hex = |r: &[u8]| r.iter().all(u8::is_ascii_hexdigit);
        (w[0] == b'(' && w[5] == b',' && w[10] == b')' && hex(&w[1..5]) && hex(&w[6..10]))
            .then(|| String::from_utf8_lossy(w).to_ascii_uppercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_found_in_messages() {
        assert_eq!(
            find_tag("bad value at (0010,0010) here").as_deref(),
            Some("(0010,0010)")
        );
        assert_eq!(find_tag("no tag"), None);
        assert_eq!(fmt_tag(0x7fe0, 0x10), "(7FE0,0010)");
    }
}
