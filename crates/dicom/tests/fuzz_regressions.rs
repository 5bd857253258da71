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

/// The `dicom_deid` fuzz target's property on one input (see `kiban_dicom::check::deid_roundtrip`).
fn deid_oracle(data: &[u8]) {
    if let Err(e) = kiban_dicom::check::deid_roundtrip(data) {
        panic!("{e}");
    }
}

#[test]
fn a_non_ascii_implementation_version_name_does_not_break_the_output() {
    // fuzzing (dicom_deid): (0002,0013) SH holding 0xFE/0xFF bytes was copied into the
    // de-identified object's meta, re-encoded longer than its length, and the output did not
    // re-read. kiban now writes its own implementation UID and name.
    let data = include_bytes!("regressions/deid-impl-version-f2fff11b.bin");
    deid_oracle(data);
    let (out, _) = kiban_dicom::deidentify_bytes(
        &data[1..],
        "f.dcm",
        &kiban_dicom::DeidOptions::new(*b"fuzz-release-key-0123456789abcdef"),
    )
    .expect("the input de-identifies");
    let back = kiban_dicom::open_dicom_bytes(&out, "out.dcm").expect("re-reads");
    assert_eq!(
        back.meta()
            .implementation_version_name
            .as_deref()
            .map(str::trim_end),
        Some("KIBAN")
    );
}

#[test]
fn item_tags_read_as_elements_are_not_written_back() {
    // fuzzing (dicom_deid): a damaged encapsulated pixel data stream left (FFFE,E000) and
    // (FFFE,E0DD) as top-level UN elements; written back they read as items and the
    // de-identified output did not parse.
    let data = include_bytes!("regressions/deid-stray-item-eee5ccb3.bin");
    deid_oracle(data);
    let orig = kiban_dicom::open_dicom_bytes(&data[1..], "f.dcm").expect("the input opens");
    assert!(orig.iter().any(|e| e.header().tag.group() == 0xFFFE));
    let (out, report) = kiban_dicom::deidentify_bytes(
        &data[1..],
        "f.dcm",
        &kiban_dicom::DeidOptions::new(*b"fuzz-release-key-0123456789abcdef"),
    )
    .expect("the input de-identifies");
    assert!(report.removed >= 2);
    let back = kiban_dicom::open_dicom_bytes(&out, "out.dcm").expect("re-reads");
    assert!(!back.iter().any(|e| e.header().tag.group() == 0xFFFE));
}

#[test]
fn the_file_meta_written_holds_only_valid_uids() {
    // fuzzing (dicom_deid): the de-identified file meta did not re-read (InvalidUid).
    deid_oracle(include_bytes!("regressions/deid-meta-uid-94f9c9e9.bin"));
}

#[test]
fn an_output_that_would_not_read_back_is_an_error() {
    // fuzzing (dicom_deid): dicom-rs read a damaged sequence leniently and wrote it in a form
    // it does not read. De-identification verifies what it writes: an error, never an
    // unreadable object.
    let data = include_bytes!("regressions/deid-unreadable-6c4935ef.bin");
    deid_oracle(data);
    let r = kiban_dicom::deidentify_bytes(
        &data[1..],
        "f.dcm",
        &kiban_dicom::DeidOptions::new(*b"fuzz-release-key-0123456789abcdef"),
    );
    match r {
        Ok((out, _)) => {
            kiban_dicom::open_dicom_bytes(&out, "out.dcm").expect("a result reads back");
        }
        Err(e) => assert!(e.to_string().contains("does not read back"), "{e}"),
    }
}

#[test]
fn a_remapped_uid_never_equals_an_original_one() {
    // fuzzing (dicom_deid): the input carried, in one attribute, the remapped value of a UID
    // it held in another; remapping that one produced a UID of the original object.
    deid_oracle(include_bytes!(
        "regressions/deid-remap-collision-0df38fac.bin"
    ));
}
