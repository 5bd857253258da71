//! `kiban_ingest::parse_dpc`: DPC 入院EF統合ファイル (tab-separated, Shift_JIS or UTF-8, one
//! admission per unit), plus format detection.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (items, summary) = kiban_ingest::parse_dpc(data);
    let _ = (items.len(), summary);
    let _ = kiban_ingest::dpc::looks_like_dpc("efn_xxxxxxxxx_2407.txt", data);
});
