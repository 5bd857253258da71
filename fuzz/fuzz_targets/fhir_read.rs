//! The full FHIR mapping path (JP Core names and identifiers, Coverage, Conditions,
//! Observations, …). The mapping is only reachable through `Reader::read_file`, so the input
//! is written to a file in a per-process scratch folder (tmpfs when available). The first byte
//! picks the shape: a Bundle/resource `.json` file, a Bulk Data `Patient.ndjson` (which the
//! reader also scans for patient references) or an `Observation.ndjson` beside it.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use kiban_ingest::{Format, Reader, SourceFile};

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("kiban-fuzz-fhir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let name = match sel % 3 {
        0 => "bundle.json",
        1 => "Patient.ndjson",
        _ => "Observation.ndjson",
    };
    let dir = scratch();
    // Only one file at a time in the folder, so earlier inputs do not leak into this run.
    for other in ["bundle.json", "Patient.ndjson", "Observation.ndjson"] {
        let _ = std::fs::remove_file(dir.join(other));
    }
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write scratch file");
    let file = SourceFile {
        path,
        rel_path: format!("fhir/{name}"),
        label: format!("fhir/{name}"),
        format: Some(Format::Fhir),
        sha256: String::new(),
        size: body.len() as u64,
        superseded_by: None,
        attachment_of: None,
        raw_rel_path: None,
        refused: None,
    };
    let mut n = 0usize;
    let _ = Reader::new().read_file(&file, "H0001", &mut |_item| n += 1);
});
