//! `kiban_dicom::deidentify_bytes` with an oracle: whatever the input, when de-identification
//! succeeds, its output must re-read (`open_dicom_bytes`) and the independent Annex E checker
//! must find no violation — the same property crates/dicom/tests/fixtures.rs asserts on the
//! pydicom samples, here on arbitrary inputs (R-ANON-1, R-ANON-2). The first byte picks the
//! options (date shift on/off, pseudonym on/off, a safe private creator).
#![no_main]

use libfuzzer_sys::fuzz_target;

use kiban_dicom::{CheckOptions, DeidOptions, annex_e_violations, deidentify_bytes, open_dicom_bytes};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let mut opts = DeidOptions::new(*b"fuzz-release-key-0123456789abcdef");
    if sel & 1 != 0 {
        opts.date_shift_days = Some(-(i32::from(sel >> 2)) - 1);
    }
    if sel & 2 != 0 {
        opts.pseudonym = Some("P000123".into());
    }
    if sel & 0x80 != 0 {
        opts.safe_private_creators = vec!["SIEMENS CSA HEADER".into()];
    }
    let Ok((out, _report)) = deidentify_bytes(body, "f.dcm", &opts) else {
        return;
    };
    let orig = open_dicom_bytes(body, "f.dcm").expect("input de-identified but not re-openable");
    let back = match open_dicom_bytes(&out, "out.dcm") {
        Ok(b) => b,
        Err(e) => panic!("de-identified output does not re-read: {e}"),
    };
    let v = annex_e_violations(&back, Some(&*orig), &CheckOptions::from(&opts));
    assert!(v.is_empty(), "Annex E violations after de-identification: {v:#?}");
});
