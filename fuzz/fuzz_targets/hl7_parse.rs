//! `kiban_ingest::parse_hl7_message`: the tolerant HL7 v2.5 tokenizer (ISO-2022-JP decoded
//! per segment line). Also walks every accessor the SS-MIX2 mapping uses, so that an index
//! past the end of a segment is caught here and not in production.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The multi-message splitter runs on whole files before the per-message parser.
    for (_line, lines) in kiban_ingest::hl7::split_messages(data) {
        let _ = lines.len();
    }
    if let Ok(msg) = kiban_ingest::parse_hl7_message(data) {
        let d = msg.delimiters;
        for seg in msg.segments.iter().take(64) {
            for n in 0..8 {
                let _ = seg.raw(n);
                let _ = seg.f(n);
                let _ = seg.c(n, 2);
                let _ = seg.rc(n, 1, 1);
                let _ = seg.sub(n, 0, 1, 2);
                for rep in seg.reps(n) {
                    let _ = kiban_ingest::hl7::comp_of(rep, d, 3);
                    let _ = kiban_ingest::hl7::unescape(rep, d);
                }
            }
        }
    }
});
