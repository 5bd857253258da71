//! DICOM files through the generic reader: detected, read or quarantined whole (R-STD-1).

use std::path::PathBuf;

use kiban_ingest::{Format, Item, discover, read_file};

const DICOM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/dicom");

#[test]
fn every_dicom_fixture_is_read_or_quarantined_with_a_reason() {
    let files = discover(&[PathBuf::from(DICOM)], None).expect("discover");
    let dcm: Vec<_> = files
        .iter()
        .filter(|f| f.rel_path.to_ascii_lowercase().ends_with(".dcm"))
        .collect();
    assert!(dcm.len() > 50);
    let (mut accepted, mut quarantined) = (0, 0);
    for f in dcm {
        let mut items = Vec::new();
        match read_file(f, "H1", &mut |i| items.push(i)) {
            Ok(_) => {}
            // A file the detector did not recognize as DICOM is reported by the caller.
            Err(kiban_ingest::IngestError::NoFormat { .. }) => {
                quarantined += 1;
                continue;
            }
            Err(e) => panic!("{}: {e}", f.rel_path),
        }
        assert_eq!(items.len(), 1, "{}: one unit per file", f.rel_path);
        match &items[0] {
            Item::Facts(sf) => {
                assert_eq!(f.format, Some(Format::Dicom));
                assert!(!sf.patient_id.is_empty());
                assert!(
                    sf.facts
                        .iter()
                        .any(|(fact, _)| fact.table().name() == "image_study")
                );
                accepted += 1;
            }
            Item::Quarantine(q) => {
                assert!(!q.reason.is_empty(), "{}", f.rel_path);
                quarantined += 1;
            }
            other => panic!("{}: unexpected {other:?}", f.rel_path),
        }
    }
    assert!(accepted >= 40, "accepted {accepted}");
    assert!(quarantined >= 1);
}
