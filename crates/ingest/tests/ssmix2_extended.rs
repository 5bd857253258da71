//! SS-MIX2 extended storage (拡張ストレージ): item folders with `main_document.hl7` and
//! attachments, detected beside (or without) a standardized-storage root; on the hand-made
//! fixture in fixtures/ss-mix2-extended.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiban_ingest::*;
use kiban_model::Fact;
use sha2::{Digest, Sha256};

const TREE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/ss-mix2-extended/tree"
);
const KIND: &str = "L-OBSERVATIONS^OBSERVATIONS^99ZL01";

fn read_all(files: &[SourceFile]) -> Vec<(String, Item)> {
    let mut reader = Reader::new();
    let mut out = Vec::new();
    for f in files {
        reader
            .read_file(f, "H1", &mut |i| out.push((f.rel_path.clone(), i)))
            .expect("read");
    }
    out
}

fn measurements(items: &[(String, Item)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (file, i) in items {
        if let Item::Facts(sf) = i {
            for (f, _) in &sf.facts {
                if matches!(f, Fact::Measurement(_)) {
                    *out.entry(file.clone()).or_default() += 1;
                }
            }
        }
    }
    out
}

#[test]
fn extended_items_are_read_with_the_result_mapping_and_attachments() {
    let files = discover(&[PathBuf::from(TREE)], None).expect("discover");
    assert_eq!(files.len(), 9);
    assert!(
        files.iter().all(|f| f.format == Some(Format::Ssmix2)),
        "every file of both roots is SS-MIX2: {:?}",
        files
            .iter()
            .map(|f| (&f.rel_path, f.format))
            .collect::<Vec<_>>()
    );
    let attachments: Vec<&SourceFile> =
        files.iter().filter(|f| f.attachment_of.is_some()).collect();
    assert_eq!(
        attachments.len(),
        4,
        "pdf, png, xml, and the broken item's png"
    );
    for a in &attachments {
        let main = a.attachment_of.as_deref().expect("main");
        assert!(main.ends_with("/main_document.hl7"), "{main}");
        assert_eq!(
            Path::new(main).parent(),
            Path::new(&a.rel_path).parent(),
            "the main document of the same item folder"
        );
    }

    let items = read_all(&files);
    let per_file = measurements(&items);
    let counts: Vec<usize> = per_file.values().copied().collect();
    // Three good extended items (5, 3, 4 vital signs) and the standard OML-11 (2 results).
    assert_eq!(counts.iter().sum::<usize>(), 14, "{per_file:?}");
    assert_eq!(per_file.len(), 4);
    assert!(
        per_file
            .iter()
            .any(|(f, n)| f.starts_with("standard_root/") && *n == 2)
    );

    // The first vital sign of patient 1234567, mapped like an OML-11 result.
    let first = items
        .iter()
        .find_map(|(_, i)| match i {
            Item::Facts(sf) if sf.patient_id == "1234567" => {
                sf.facts.iter().find_map(|(f, p)| match f {
                    Fact::Measurement(m) if p.source_file.contains(KIND) => {
                        Some((m.clone(), p.clone()))
                    }
                    _ => None,
                })
            }
            _ => None,
        })
        .expect("a vital sign of 1234567");
    let (m, prov) = first;
    assert_eq!(m.code.as_deref(), Some("9A761000000000001"));
    assert_eq!(m.code_system.as_deref(), Some("JLAC10"));
    assert_eq!(m.source_name.as_deref(), Some("拡張期血圧（1回目）"));
    assert_eq!(m.value_number, Some(72.0));
    assert_eq!(m.unit.as_deref(), Some("mm(hg)"));
    assert_eq!((m.range_low, m.range_high), (None, Some(85.0)));
    assert_eq!(m.date.to_string(), "2024-01-05");
    assert!(prov.source_file.ends_with("_1/main_document.hl7"));
    assert_eq!(prov.source_record, "OBX[1]");
    // Identity from PID, decoded from ISO-2022-JP.
    let id = items
        .iter()
        .find_map(|(_, i)| match i {
            Item::Facts(sf) if sf.patient_id == "7654321" => sf.identity.clone(),
            _ => None,
        })
        .expect("identity");
    assert_eq!(id.name_kanji.as_deref(), Some("試験 花子"));
    assert_eq!(id.name_kana.as_deref(), Some("シケン ハナコ"));

    // Attachments: kind, media type, size and SHA-256 of the file.
    let mut kept: Vec<&Attachment> = items
        .iter()
        .filter_map(|(_, i)| match i {
            Item::Attachment(a) => Some(a),
            _ => None,
        })
        .collect();
    kept.sort_by(|a, b| a.file.cmp(&b.file));
    let kinds: Vec<(&str, &str)> = kept
        .iter()
        .map(|a| (a.kind.as_str(), a.mime.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("pdf", "application/pdf"),
            ("image", "image/png"),
            ("cda", "application/hl7-cda+xml")
        ]
    );
    for a in &kept {
        let bytes = std::fs::read(Path::new(TREE).join(&a.file)).expect("attachment");
        assert_eq!(a.size, bytes.len() as u64);
        assert_eq!(a.sha256, hex::encode(Sha256::digest(&bytes)));
        assert!(a.order.is_some(), "items carry a real order number");
    }
    assert_eq!(kept[0].patient_id, "1234567");
    assert_eq!(kept[2].patient_id, "7654321");

    // The broken item: its main document and its attachment, each with file, place, code.
    let quarantined: Vec<&Quarantined> = items
        .iter()
        .filter_map(|(_, i)| match i {
            Item::Quarantine(q) => Some(q),
            _ => None,
        })
        .collect();
    assert_eq!(quarantined.len(), 2, "{quarantined:?}");
    let main = quarantined
        .iter()
        .find(|q| q.file.ends_with("main_document.hl7"))
        .expect("main document quarantined");
    assert_eq!(main.code, QuarantineCode::Parse);
    assert!(main.reason.contains("segment 4"), "{}", main.reason);
    assert!(main.file.contains("20240111"));
    let dep = quarantined
        .iter()
        .find(|q| q.file.ends_with("scan.png"))
        .expect("attachment quarantined");
    assert_eq!(dep.code, QuarantineCode::Dependent);
    assert_eq!(dep.field.as_deref(), Some("main_document.hl7"));
}

#[test]
fn auto_detection_finds_extended_standard_and_mixed_roots() {
    for (root, n) in [("extended_root", 8usize), ("standard_root", 1), ("", 9)] {
        let path = Path::new(TREE).join(root);
        for forced in [None, Some(Format::Ssmix2)] {
            let files = discover(std::slice::from_ref(&path), forced).expect("discover");
            assert_eq!(files.len(), n, "{root}");
            assert!(
                files.iter().all(|f| f.format == Some(Format::Ssmix2)),
                "{root} {forced:?}"
            );
            assert_eq!(
                files.iter().filter(|f| f.attachment_of.is_some()).count(),
                if root == "standard_root" { 0 } else { 4 }
            );
        }
    }
    // Item folders are told from standardized file names.
    let item = format!("1234567_20240105_{KIND}_000000020240105_20240105150032100_1");
    let n = ExtendedItemName::parse(&item).expect("item name");
    assert_eq!(n.patient_id, "1234567");
    assert_eq!(n.kind, KIND);
    assert_eq!(n.order_no, "000000020240105");
    assert_eq!(n.condition_flag, 1);
    assert!(
        ExtendedItemName::parse("9999013_20110701_OMP-01_000000011000185_20110701224603984_01_1")
            .is_none()
    );
    let v = order_version(&format!("{item}/main_document.hl7")).expect("order version");
    assert_eq!(v.key.data_type, KIND);
    assert!(order_version(&format!("{item}/report.pdf")).is_none());
}

fn copy_tree(from: &Path, to: &Path) {
    for e in walk(from) {
        let rel = e.strip_prefix(from).expect("prefix");
        let dest = to.join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&e, &dest).expect("copy");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_flag_0_item_withdraws_the_item_and_its_attachments_in_one_delivery() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("extended_root");
    copy_tree(&Path::new(TREE).join("extended_root"), &root);
    // A later condition-flag-0 item for the order of 1234567's first item.
    let day = root.join(format!("123/456/1234567/20240105/{KIND}"));
    let src = day.join(format!(
        "1234567_20240105_{KIND}_000000020240105_20240105150032100_1"
    ));
    let z = day.join(format!(
        "1234567_20240105_{KIND}_000000020240105_20240107080000000_0"
    ));
    std::fs::create_dir_all(&z).expect("mkdir");
    std::fs::copy(src.join("main_document.hl7"), z.join("main_document.hl7")).expect("copy");

    let files = discover(std::slice::from_ref(&root), None).expect("discover");
    let items = read_all(&files);
    let superseded: Vec<&String> = items
        .iter()
        .filter(|(_, i)| matches!(i, Item::Superseded { .. }))
        .map(|(f, _)| f)
        .collect();
    assert_eq!(superseded.len(), 2, "the item's main document and its PDF");
    assert!(superseded.iter().any(|f| f.ends_with("vital_report.pdf")));
    assert!(
        items
            .iter()
            .any(|(f, i)| matches!(i, Item::Invalidated { .. })
                && f.contains("_20240107080000000_0/"))
    );
    assert!(
        !items
            .iter()
            .any(|(_, i)| matches!(i, Item::Attachment(a) if a.file.ends_with(".pdf"))),
        "a withdrawn item's attachment is not kept"
    );
    assert_eq!(
        measurements(&items).values().sum::<usize>(),
        7,
        "3 + 4 remain"
    );
}

#[test]
fn misplaced_items_and_orphan_attachments_are_quarantined() {
    let tmp = tempfile::tempdir().expect("tmp");
    let good = Path::new(TREE).join(format!(
        "extended_root/765/432/7654321/20240110/{KIND}/7654321_20240110_{KIND}_000000020240110_20240110103000300_1/main_document.hl7"
    ));
    // An item under another patient's folders.
    let wrong = tmp.path().join(format!(
        "111/111/1111111/20240110/{KIND}/7654321_20240110_{KIND}_000000020240110_20240110103000300_1"
    ));
    std::fs::create_dir_all(&wrong).expect("mkdir");
    std::fs::copy(&good, wrong.join("main_document.hl7")).expect("copy");
    // An item folder with an attachment but no main document.
    let orphan = tmp.path().join(format!(
        "222/222/2222222/20240110/{KIND}/2222222_20240110_{KIND}_000000020240111_20240110103000300_1"
    ));
    std::fs::create_dir_all(&orphan).expect("mkdir");
    std::fs::write(orphan.join("report.pdf"), b"%PDF-1.4\n%%EOF\n").expect("write");

    let files = discover(&[tmp.path().to_path_buf()], None).expect("discover");
    let items = read_all(&files);
    let q: Vec<&Quarantined> = items
        .iter()
        .filter_map(|(_, i)| match i {
            Item::Quarantine(q) => Some(q),
            _ => None,
        })
        .collect();
    assert_eq!(q.len(), 2, "{q:?}");
    let misplaced = q
        .iter()
        .find(|q| q.file.ends_with("main_document.hl7"))
        .expect("misplaced");
    assert_eq!(misplaced.code, QuarantineCode::Inconsistent);
    assert!(
        misplaced.reason.contains("patient-ID folder"),
        "{}",
        misplaced.reason
    );
    assert!(
        !misplaced.reason.contains("7654321"),
        "no values in reasons"
    );
    let orphan = q
        .iter()
        .find(|q| q.file.ends_with("report.pdf"))
        .expect("orphan");
    assert_eq!(orphan.code, QuarantineCode::Dependent);
    assert!(
        orphan.reason.contains("no main_document.hl7"),
        "{}",
        orphan.reason
    );
}
