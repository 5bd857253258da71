//! `kiban_dicom::read_dicom_bytes`: DICOM Part 10 headers (dicom-rs) → identity (ISO 2022 IR 87
//! Japanese names) + image study facts, plus the burned-in-annotation risk check.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kiban_dicom::looks_like_dicom(data);
    let _ = kiban_dicom::read_dicom_bytes(data, "H", "f.dcm");
    if let Ok(f) = kiban_dicom::open_dicom_bytes(data, "f.dcm") {
        let _ = kiban_dicom::burned_in_risk(&f);
    }
});
