//! `kiban_ingest::parse_csv`: CSV/TSV rows under a declared TOML column mapping. The first byte
//! picks one of the repository's real mappings and file entries (UTF-8 with header, Shift_JIS
//! with Japanese headers, header-less TSV); selector 255 fuzzes the mapping parser itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SYNTH: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/csv/synth/kiban-csv.toml"
));
const SJIS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/csv/custom-sjis/kiban-csv.toml"
));

const FILES: [(&str, &str); 7] = [
    (SYNTH, "persons.csv"),
    (SYNTH, "visits.csv"),
    (SYNTH, "conditions.csv"),
    (SYNTH, "drugs.csv"),
    (SYNTH, "labs.csv"),
    (SJIS, "kanja.csv"),
    (SJIS, "byomei.tsv"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    if sel == 255 {
        if let Ok(m) = kiban_ingest::CsvMapping::parse(&String::from_utf8_lossy(body)) {
            let _ = m.spec_for("persons.csv");
        }
        return;
    }
    let (mapping, file) = FILES[sel as usize % FILES.len()];
    let _ = kiban_ingest::parse_csv(body, mapping, file);
});
