//! Intake limits (issue 14 item 9): a line, message or document over its limit is
//! quarantined (`too_large`) and never held in memory whole; symbolic links are followed only
//! inside the ingest folder and reported otherwise; names that are not UTF-8 keep distinct
//! labels.

use std::io::Write;
use std::path::{Path, PathBuf};

use kiban_ingest::{Format, Item, Limits, QuarantineCode, Reader, SourceFile, discover};

const MIB: usize = 1 << 20;

fn source(path: &Path, format: Format) -> SourceFile {
    let rel = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_string();
    SourceFile {
        path: path.to_path_buf(),
        label: format!("L-{rel}"),
        rel_path: rel,
        format: Some(format),
        sha256: "0".repeat(64),
        size: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        superseded_by: None,
        attachment_of: None,
        raw_rel_path: None,
        refused: None,
    }
}

fn read(reader: &mut Reader, file: &SourceFile) -> Vec<Item> {
    let mut items = Vec::new();
    reader
        .read_file(file, "H1", &mut |i| items.push(i))
        .expect("read");
    items
}

fn quarantined(items: &[Item]) -> Vec<(String, QuarantineCode)> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Quarantine(q) => Some((q.location.clone(), q.code)),
            _ => None,
        })
        .collect()
}

const PATIENT: &str = r#"{"resourceType":"Patient","id":"p1","identifier":[{"system":"urn:oid:1.2.392.100495.20.3.51.11234567890","value":"12345"}],"name":[{"text":"山田 太郎"}],"gender":"male","birthDate":"1970-01-01"}"#;
const CONDITION: &str = r#"{"resourceType":"Patient","id":"p2","identifier":[{"system":"urn:oid:1.2.392.100495.20.3.51.11234567890","value":"12346"}],"gender":"female","birthDate":"1980-01-01"}"#;

/// Writes `dir/name`: a valid line, a line of `big` bytes (sparse zeros, written lazily), a
/// valid line.
fn ndjson_with_big_line(dir: &Path, name: &str, big: usize) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).expect("create");
    writeln!(f, "{PATIENT}").expect("w");
    let start = PATIENT.len() as u64 + 1;
    f.set_len(start + big as u64).expect("sparse line");
    drop(f);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&p)
        .expect("open");
    writeln!(f).expect("w");
    writeln!(f, "{CONDITION}").expect("w");
    p
}

/// The child half of [`a_64_mib_line_is_quarantined_in_bounded_memory`]: reads the files
/// named in the environment with a 16 MiB limit and prints its peak memory.
#[test]
fn child_reads_oversized_inputs() {
    let Ok(dir) = std::env::var("KIBAN_LIMITS_CHILD") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let limits = Limits {
        max_line: 16 * MIB,
        max_message: 16 * MIB,
        max_document: 16 * MIB,
    };
    let mut reader = Reader::with_limits(limits);
    let mut codes = Vec::new();
    for (name, format) in [
        ("big.ndjson", Format::Fhir),
        ("big_bundle.json", Format::Fhir),
        ("big_ssmix2.hl7", Format::Ssmix2),
        ("p.csv", Format::Csv),
    ] {
        let items = read(&mut reader, &source(&dir.join(name), format));
        for (loc, code) in quarantined(&items) {
            codes.push(format!("{name}:{loc}:{code}"));
        }
        let facts = items.iter().filter(|i| matches!(i, Item::Facts(_))).count();
        codes.push(format!("{name}:facts:{facts}"));
    }
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .expect("VmHWM")
        .trim()
        .to_string();
    println!("RESULT {} HWM {hwm}", codes.join(","));
}

#[test]
fn a_64_mib_line_is_quarantined_in_bounded_memory() {
    if !Path::new("/proc/self/status").exists() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    ndjson_with_big_line(tmp.path(), "big.ndjson", 64 * MIB);
    // A Bundle file and an SS-MIX2 message over the limit: not read at all.
    let bundle = tmp.path().join("big_bundle.json");
    std::fs::write(&bundle, br#"{"resourceType":"Bundle","entry":["#).expect("w");
    std::fs::File::options()
        .append(true)
        .open(&bundle)
        .and_then(|f| f.set_len(64 * MIB as u64))
        .expect("sparse");
    let hl7 = tmp.path().join("big_ssmix2.hl7");
    std::fs::write(&hl7, b"MSH|^~\\&|").expect("w");
    std::fs::File::options()
        .append(true)
        .open(&hl7)
        .and_then(|f| f.set_len(64 * MIB as u64))
        .expect("sparse");

    // A CSV record of 64 MiB between two rows.
    std::fs::write(tmp.path().join("kiban-csv.toml"), CSV_MAPPING).expect("mapping");
    let csv = tmp.path().join("p.csv");
    std::fs::write(&csv, "ID,氏名,生年月日\nP1,山田 太郎,1970-01-01\nP2,").expect("w");
    let len = std::fs::metadata(&csv).expect("len").len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&csv)
        .expect("open");
    f.set_len(len + 64 * MIB as u64).expect("sparse");
    f.write_all(b",1980-01-01\nP3,x,1990-01-01\n").expect("w");
    drop(f);

    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["child_reads_oversized_inputs", "--exact", "--nocapture"])
        .env("KIBAN_LIMITS_CHILD", tmp.path())
        .output()
        .expect("child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .expect("result line");
    let (codes, hwm) = line["RESULT ".len()..].split_once(" HWM ").expect("hwm");
    assert_eq!(
        codes,
        "big.ndjson:line 2:too_large,big.ndjson:facts:2,\
         big_bundle.json:file:too_large,big_bundle.json:facts:0,\
         big_ssmix2.hl7:file:too_large,big_ssmix2.hl7:facts:0,\
         p.csv:line 3:too_large,p.csv:facts:1",
        "the oversized line is one quarantined unit, the lines beside it are read"
    );
    let kb: u64 = hwm.trim_end_matches("kB").trim().parse().expect("kB");
    eprintln!("peak memory of the child reading 64 MiB inputs with 16 MiB limits: {kb} kB");
    // Reading the line whole would take at least 64 MiB; the bounded reader holds at most
    // the 16 MiB limit (and its buffer's growth).
    assert!(kb < 48 * 1024, "peak memory {kb} kB");
}

const CSV_MAPPING: &str = r#"
[[file]]
name = "p.csv"
table = "person"
patient_id = "ID"
[file.columns]
name_kanji = "氏名"
birth_date = "生年月日"
"#;

/// A CSV record over `max_line_bytes` (here a quoted field running over many short lines, as
/// a stray quote makes it) is quarantined `too_large` with the rest of the file; the records
/// before it are read and the reader never buffers more than the limit and its read-ahead.
#[test]
fn a_csv_record_over_the_line_limit_is_quarantined() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("kiban-csv.toml"), CSV_MAPPING).expect("mapping");
    let p = tmp.path().join("p.csv");
    let mut csv = String::from("ID,氏名,生年月日\nP1,山田 太郎,1970-01-01\n");
    csv.push_str("P2,\"");
    for _ in 0..20_000 {
        csv.push_str("abcdefghij\n");
    }
    csv.push_str("\",1980-01-01\nP3,鈴木 花子,1990-01-01\n");
    std::fs::write(&p, &csv).expect("csv");
    let limits = Limits {
        max_line: 1000,
        ..Limits::default()
    };
    let items = read(&mut Reader::with_limits(limits), &source(&p, Format::Csv));
    assert_eq!(
        quarantined(&items),
        vec![("line 3".to_string(), QuarantineCode::TooLarge)]
    );
    let facts = items.iter().filter(|i| matches!(i, Item::Facts(_))).count();
    assert_eq!(facts, 1, "the record before the oversized one is read");
    // The same file under the default limit is read whole.
    let items = read(&mut Reader::new(), &source(&p, Format::Csv));
    assert_eq!(quarantined(&items), vec![]);
    let facts = items.iter().filter(|i| matches!(i, Item::Facts(_))).count();
    assert_eq!(facts, 3);
}

#[test]
fn limits_default_to_16_mib_lines_and_messages() {
    let l = Limits::default();
    assert_eq!(
        (l.max_line, l.max_message, l.max_document),
        (16 * MIB, 16 * MIB, 64 * MIB)
    );
}

#[cfg(unix)]
#[test]
fn symbolic_links_are_followed_inside_the_root_only_and_reported_otherwise() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("in");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(root.join("sub")).expect("dir");
    std::fs::create_dir_all(&outside).expect("dir");
    std::fs::write(root.join("sub/a.ndjson"), format!("{PATIENT}\n")).expect("w");
    std::fs::write(outside.join("secret.ndjson"), format!("{PATIENT}\n")).expect("w");
    std::fs::write(root.join("b.txt"), "other").expect("w");
    // inside, to a file read anyway under its own name
    symlink(root.join("sub/a.ndjson"), root.join("dup.ndjson")).expect("ln");
    // a relative link inside, to a file read anyway
    symlink("b.txt", root.join("c.txt")).expect("ln");
    symlink(outside.join("secret.ndjson"), root.join("out.ndjson")).expect("ln");
    symlink(&outside, root.join("outdir")).expect("ln");
    symlink(root.join("sub"), root.join("subdir")).expect("ln");
    symlink(root.join("missing"), root.join("dangling")).expect("ln");
    let files = discover(std::slice::from_ref(&root), None).expect("discover");
    let got: Vec<(String, Option<QuarantineCode>)> = files
        .iter()
        .map(|f| (f.rel_path.clone(), f.refused.as_ref().map(|r| r.0)))
        .collect();
    let link = Some(QuarantineCode::Link);
    assert_eq!(
        got,
        vec![
            ("b.txt".to_string(), None),
            ("c.txt".into(), link),
            ("dangling".into(), link),
            ("dup.ndjson".into(), link),
            ("out.ndjson".into(), link),
            ("outdir".into(), link),
            ("sub/a.ndjson".into(), None),
            ("subdir".into(), link),
        ]
    );
    let reason = |rel: &str| {
        files
            .iter()
            .find(|f| f.rel_path == rel)
            .and_then(|f| f.refused.clone())
            .expect("refused")
            .1
    };
    assert!(reason("out.ndjson").contains("outside the ingest folder"));
    assert!(reason("outdir").contains("outside the ingest folder"));
    assert!(reason("subdir").contains("folder"));
    assert!(reason("dangling").contains("does not exist"));
    assert!(reason("dup.ndjson").contains("another name"));
    assert!(reason("c.txt").contains("another name"));
    // Reasons name no path.
    for f in &files {
        if let Some((_, r)) = &f.refused {
            assert!(!r.contains("secret") && !r.contains('/'), "{r}");
        }
    }
    // A refused link is never read: its reader quarantines it with the reason.
    let out = files
        .iter()
        .find(|f| f.rel_path == "out.ndjson")
        .expect("out");
    assert_eq!(out.format, None);
    let mut items = Vec::new();
    Reader::new()
        .read_file(out, "H1", &mut |i| items.push(i))
        .expect("read");
    assert_eq!(
        quarantined(&items),
        vec![("file".into(), QuarantineCode::Link)]
    );

    // A link given directly is followed (it is the file given); inside a folder given, a link
    // to a file inside it always names a file the walk reads under its own name.
    let only = tmp.path().join("only");
    std::fs::create_dir_all(only.join("real")).expect("dir");
    std::fs::write(only.join("real/p.ndjson"), format!("{PATIENT}\n")).expect("w");
    symlink(only.join("real/p.ndjson"), only.join("link.ndjson")).expect("ln");
    let files = discover(&[only.join("link.ndjson")], None).expect("discover");
    assert_eq!(files.len(), 1, "a link given directly is the file given");
    let files = discover(std::slice::from_ref(&only), None).expect("discover");
    let followed: Vec<_> = files
        .iter()
        .map(|f| (f.rel_path.as_str(), f.refused.is_some(), f.format))
        .collect();
    assert_eq!(
        followed,
        vec![
            ("link.ndjson", true, None),
            ("real/p.ndjson", false, Some(Format::Fhir)),
        ]
    );
}

#[cfg(unix)]
#[test]
fn names_that_are_not_utf8_keep_distinct_labels() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("in");
    std::fs::create_dir_all(&root).expect("dir");
    // Two names that the lossy conversion makes equal (both become "a\u{FFFD}.ndjson"), and a
    // UTF-8 name spelling that text.
    for name in [
        &b"a\xff.ndjson"[..],
        b"a\xfe.ndjson",
        "a\u{FFFD}.ndjson".as_bytes(),
    ] {
        std::fs::write(root.join(OsStr::from_bytes(name)), format!("{PATIENT}\n")).expect("w");
    }
    let mut files = discover(std::slice::from_ref(&root), None).expect("discover");
    assert_eq!(files.len(), 3);
    let raw: std::collections::BTreeSet<Vec<u8>> =
        files.iter().map(|f| f.rel_bytes().to_vec()).collect();
    assert_eq!(raw.len(), 3, "distinct byte paths");
    let shown: std::collections::BTreeSet<&str> =
        files.iter().map(|f| f.rel_path.as_str()).collect();
    assert!(shown.contains("a\\xff.ndjson") && shown.contains("a\\xfe.ndjson"));
    assert!(shown.contains("a\u{FFFD}.ndjson"));
    kiban_ingest::relabel_bytes(&mut files, |b| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        b.hash(&mut h);
        format!("L{:016x}", h.finish())
    });
    let labels: std::collections::BTreeSet<&str> = files.iter().map(|f| f.label.as_str()).collect();
    assert_eq!(labels.len(), 3, "one label per distinct byte path");
}
