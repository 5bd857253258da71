//! Every quarantined unit carries a stable machine code derived from the reader's typed
//! error (what `kiban stats` counts), next to the human reason.

use std::collections::BTreeSet;
use std::path::Path;

use kiban_ingest::*;

fn write(dir: &Path, rel: &str, body: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, body).expect("write");
}

/// (rel_path, code) of every quarantined unit under `dir`.
fn codes(dir: &Path) -> Vec<(String, QuarantineCode)> {
    let files = discover(&[dir.to_path_buf()], None).expect("discover");
    let mut reader = Reader::new();
    let mut out = Vec::new();
    for f in files.iter().filter(|f| f.format.is_some()) {
        reader
            .read_file(f, "H1", &mut |i| {
                if let Item::Quarantine(q) = i {
                    assert!(!q.reason.is_empty());
                    out.push((q.file.clone(), q.code));
                }
            })
            .expect("read");
    }
    out.sort();
    out
}

fn code_of(all: &[(String, QuarantineCode)], file: &str) -> QuarantineCode {
    let hits: Vec<QuarantineCode> = all
        .iter()
        .filter(|(f, _)| f.ends_with(file))
        .map(|(_, c)| *c)
        .collect();
    assert_eq!(hits.len(), 1, "{file}: {all:?}");
    hits[0]
}

const D: &str = "123/456/1234567/20200101/OMP-01";

#[test]
fn readers_classify_what_they_quarantine() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    // SS-MIX2: binary content, text that is not HL7, an empty file, a missing code, a
    // PID-3 that contradicts the storage path.
    write(
        t,
        &format!("{D}/1234567_20200101_OMP-01_1_20200101100000000_01_1"),
        &[0xFF, 0x00, 0xFE, 0x01, 0x02],
    );
    write(
        t,
        &format!("{D}/1234567_20200101_OMP-01_2_20200101100000000_01_1"),
        b"hello, this is a letter\n",
    );
    write(
        t,
        &format!("{D}/1234567_20200101_OMP-01_3_20200101100000000_01_1"),
        b"",
    );
    write(
        t,
        &format!("{D}/1234567_20200101_OMP-01_4_20200101100000000_01_1"),
        b"MSH|^~\\&|H|S|G|R|20200101120000||RDE^O11^RDE_O11|1|P|2.5\rPID|1||1234567^^^^PI\rORC|NW|4\rRXE||^^HOT9|1\r",
    );
    write(
        t,
        &format!("{D}/1234567_20200101_OMP-01_5_20200101100000000_01_1"),
        b"MSH|^~\\&|H|S|G|R|20200101120000||RDE^O11^RDE_O11|1|P|2.5\rPID|1||7777777^^^^PI\rORC|NW|5\rRXE||111^X^HOT9|1\r",
    );
    write(
        t,
        &format!("{D}/1234567_20200101_OMP-01_6_20200101100000000_01_1"),
        b"MSH|^~\\&|H|S|G|R|20200101120000||RDE^O11^RDE_O11|1|P|2.5\rPID|1||1234567^^^^PI\rnot a segment\r",
    );
    // FHIR: not UTF-8, not JSON, a reference nothing resolves.
    write(
        t,
        "fhir/a.json",
        b"{\"resourceType\": \"Patient\", \"name\": \"\xff\xfe\"}",
    );
    write(t, "fhir/b.json", b"{\"resourceType\": \"Patient\", ");
    write(
        t,
        "bulk/Observation.ndjson",
        b"{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},\"subject\":{\"reference\":\"Patient/nobody\"},\"effectiveDateTime\":\"2020-01-01\",\"valueQuantity\":{\"value\":1}}\n",
    );
    let all = codes(t);
    assert_eq!(
        code_of(&all, "_1_20200101100000000_01_1"),
        QuarantineCode::Encoding
    );
    assert_eq!(
        code_of(&all, "_2_20200101100000000_01_1"),
        QuarantineCode::Parse
    );
    assert_eq!(
        code_of(&all, "_3_20200101100000000_01_1"),
        QuarantineCode::Empty
    );
    assert_eq!(
        code_of(&all, "_4_20200101100000000_01_1"),
        QuarantineCode::MissingField
    );
    assert_eq!(
        code_of(&all, "_5_20200101100000000_01_1"),
        QuarantineCode::Inconsistent
    );
    assert_eq!(
        code_of(&all, "_6_20200101100000000_01_1"),
        QuarantineCode::Parse
    );
    assert_eq!(code_of(&all, "fhir/a.json"), QuarantineCode::Encoding);
    assert_eq!(code_of(&all, "fhir/b.json"), QuarantineCode::Parse);
    assert_eq!(
        code_of(&all, "bulk/Observation.ndjson"),
        QuarantineCode::UnresolvedReference
    );
}

#[test]
fn codes_are_stable_and_distinct() {
    let names: BTreeSet<&str> = QuarantineCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(names.len(), QuarantineCode::ALL.len());
    for c in QuarantineCode::ALL {
        assert_eq!(QuarantineCode::from_code(c.as_str()), Some(c));
        assert!(
            c.as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{c}"
        );
    }
    // Part of the interface (stats --json): these spellings never change.
    assert_eq!(QuarantineCode::UnknownFormat.as_str(), "unknown_format");
    assert_eq!(QuarantineCode::MissingField.as_str(), "missing_field");
    assert_eq!(QuarantineCode::Encoding.as_str(), "encoding");
    assert_eq!(QuarantineCode::Parse.as_str(), "parse");
    assert_eq!(QuarantineCode::from_code("nonsense"), None);
}
