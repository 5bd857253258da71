//! Inputs found by `cargo fuzz` (fuzz/RESULTS.md), kept as regression tests.

#[test]
fn oom_input_from_fuzzing_is_refused_quickly() {
    let bytes = include_bytes!("regressions/oom-f1c9553c.dcm");
    let start = std::time::Instant::now();
    let _ = kiban_dicom::read_dicom_bytes(bytes, "H", "oom.dcm");
    assert!(
        start.elapsed().as_secs() < 5,
        "must not spin on hostile input"
    );
}

#[test]
fn oom_input_opens_and_is_checked_for_burned_in_text_quickly() {
    let bytes = include_bytes!("regressions/oom-f1c9553c.dcm");
    let start = std::time::Instant::now();
    if let Ok(f) = kiban_dicom::open_dicom_bytes(bytes, "oom.dcm") {
        let _ = kiban_dicom::burned_in_risk(&f);
    }
    let _ = kiban_dicom::deidentify_bytes(
        bytes,
        "oom.dcm",
        &kiban_dicom::DeidOptions::new(vec![7u8; 32]),
    );
    assert!(
        start.elapsed().as_secs() < 5,
        "must not spin on hostile input"
    );
}
