//! `kiban_ingest::parse_uke`: RECEIPTC.UKE claims (Shift_JIS, 和暦 dates, one receipt per
//! unit), plus the record counter and the date helpers the reader uses.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (items, summary) = kiban_ingest::parse_uke(data);
    let _ = (items.len(), summary);
    let _ = kiban_ingest::uke::record_counts(data);
    let s = String::from_utf8_lossy(&data[..data.len().min(16)]);
    let _ = kiban_ingest::uke::parse_uke_date(&s);
    let _ = kiban_ingest::uke::parse_uke_month(&s);
    let _ = kiban_ingest::uke::looks_like_uke("receiptc.uke", data);
});
