//! `kiban_ingest::parse_fhir_json`: bytes → Bundle entries or a single resource.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kiban_ingest::parse_fhir_json(data);
});
