//! `kiban_dicom::deidentify_bytes` with an oracle: whatever the input, when de-identification
//! succeeds, its output must re-read (`open_dicom_bytes`) and the independent Annex E checker
//! must find no violation — the same property crates/dicom/tests/fixtures.rs asserts on the
//! pydicom samples, here on arbitrary inputs (R-ANON-1, R-ANON-2). The first byte picks the
//! options (date shift on/off, pseudonym on/off, a safe private creator).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = kiban_dicom::check::deid_roundtrip(data) {
        panic!("{e}");
    }
});
