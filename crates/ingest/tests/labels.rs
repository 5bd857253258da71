//! `SourceFile::label`: readers parse the real relative path in memory (SS-MIX2 name
//! convention, tree, extended-storage item folders) but every name they emit is the label —
//! quarantine `file`, `Provenance::source_file`, `Superseded`, `Invalidated`, attachments —
//! and `relabel` keeps `superseded_by` / `attachment_of` pointing at the right files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiban_ingest::{Item, Reader, SourceFile, discover, relabel};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");

/// The fixtures, and a delivery in `tmp` holding two versions of one order and a
/// condition-flag-0 file withdrawing it (both versions are superseded).
fn roots(tmp: &Path) -> Vec<PathBuf> {
    let sample = Path::new(FIXTURES).join("ss-mix2/nhoHQ-SSMIX2DataTestingTool/sampleData");
    let dir = "999/901/9999013/20110701/OMP-01";
    let name = |ts: &str, flag: u8| {
        format!("{dir}/9999013_20110701_OMP-01_000000011000185_{ts}_01_{flag}")
    };
    let body = std::fs::read(sample.join(name("20110701224603984", 1))).expect("sample");
    std::fs::create_dir_all(tmp.join(dir)).expect("mkdir");
    for (ts, flag) in [
        ("20110701224603985", 1),
        ("20110702224603984", 1),
        ("20110703224603984", 0),
    ] {
        std::fs::write(tmp.join(name(ts, flag)), &body).expect("write");
    }
    let mut roots: Vec<PathBuf> = [
        "ss-mix2/nhoHQ-SSMIX2DataTestingTool/sampleData",
        "ss-mix2-extended/tree",
        "synthea/bundles",
    ]
    .iter()
    .map(|r| Path::new(FIXTURES).join(r))
    .collect();
    roots.push(tmp.to_path_buf());
    roots
}

/// Every name an item gives a file, with the kind of item.
fn names(item: &Item) -> Vec<(&'static str, String)> {
    match item {
        Item::Facts(u) => u
            .facts
            .iter()
            .map(|(_, p)| ("provenance", p.source_file.clone()))
            .collect(),
        Item::Quarantine(q) => vec![("quarantine", q.file.clone())],
        Item::Superseded { file, by, .. } => {
            vec![("superseded", file.clone()), ("superseded_by", by.clone())]
        }
        Item::Invalidated { file, .. } => vec![("invalidated", file.clone())],
        Item::Attachment(a) => vec![
            ("attachment", a.file.clone()),
            ("main_document", a.main_document.clone()),
        ],
    }
}

/// (kind, name) → count over every item of `files`, each name mapped through `back`.
fn read_all(files: &[SourceFile], back: &dyn Fn(&str) -> String) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut reader = Reader::new();
    for f in files {
        reader
            .read_file(f, "H1", &mut |item| {
                for (kind, name) in names(&item) {
                    *out.entry(format!("{kind} {}", back(&name))).or_default() += 1;
                }
                if let Item::Quarantine(q) = &item {
                    *out.entry(format!("reason {}", q.reason)).or_default() += 1;
                }
            })
            .expect("read");
    }
    out
}

#[test]
fn readers_emit_labels_only_and_relabel_keeps_the_links() {
    let tmp = tempfile::tempdir().expect("tmp");
    let plain = discover(&roots(tmp.path()), None).expect("discover");
    assert!(
        plain.iter().all(|f| f.label == f.rel_path),
        "discover labels files with their rel_path"
    );
    let mut labelled = plain.clone();
    let label_of = |rel: &str| format!("L{:016x}", fnv(rel));
    relabel(&mut labelled, label_of);
    let back: BTreeMap<String, String> = plain
        .iter()
        .map(|f| (label_of(&f.rel_path), f.rel_path.clone()))
        .collect();
    for (p, l) in plain.iter().zip(&labelled) {
        assert_eq!(l.label, label_of(&p.rel_path));
        assert_eq!(l.rel_path, p.rel_path, "the path stays for parsing");
        assert_eq!(
            l.superseded_by,
            p.superseded_by.as_deref().map(label_of),
            "superseded_by names the superseding file's label"
        );
        assert_eq!(l.attachment_of, p.attachment_of.as_deref().map(label_of));
    }
    assert!(labelled.iter().any(|f| f.superseded_by.is_some()));
    assert!(labelled.iter().any(|f| f.attachment_of.is_some()));

    // The same items either way, names mapped back; and every name emitted is a label.
    let with_paths = read_all(&plain, &|n| n.to_string());
    let with_labels = read_all(&labelled, &|n| {
        back.get(n)
            .cloned()
            .unwrap_or_else(|| panic!("an item names a file by {n:?}, not by its label"))
    });
    assert_eq!(with_labels, with_paths);
    for k in [
        "quarantine",
        "provenance",
        "superseded",
        "invalidated",
        "attachment",
    ] {
        assert!(
            with_paths.keys().any(|n| n.starts_with(&format!("{k} "))),
            "the fixtures exercise {k}"
        );
    }
    // Quarantine reasons name no path either.
    for key in with_labels.keys().filter(|k| k.starts_with("reason ")) {
        for f in &plain {
            let name = f.rel_path.rsplit('/').next().unwrap_or_default();
            if name.len() > 20 {
                assert!(!key.contains(name), "{key}");
            }
        }
        assert!(
            !key.contains("9999013") && !key.contains("1234567"),
            "{key}"
        );
    }
}

/// FNV-1a, so that the test needs no hashing crate.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}
