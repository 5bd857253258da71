//! `kiban_anon::Hierarchy::parse_arx_csv`: ARX generalization hierarchies (`;`-separated, one
//! row per original value). The first byte picks the separator (`;`, `,`, tab).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let sep = [';', ',', '\t'][sel as usize % 3];
    let text = String::from_utf8_lossy(body);
    let _ = kiban_anon::Hierarchy::parse_arx_csv("fuzz", &text, sep);
});
