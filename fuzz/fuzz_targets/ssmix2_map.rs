//! The full SS-MIX2 mapping path: `parse_hl7_message`, then `ssmix2::map_message`, once with a
//! default context (a file that does not follow the naming convention) and once with a context
//! as a well-named file in the storage tree gives it (data type, expected patient ID, date),
//! which enables the PID-3 agreement and data-type checks. Also the file-name parser.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

use kiban_ingest::ssmix2::{MessageContext, Ssmix2Name, map_message};

fuzz_target!(|data: &[u8]| {
    // The file-name convention parser sees untrusted names too (walked from hospital trees).
    let head = String::from_utf8_lossy(&data[..data.len().min(160)]);
    if let Some(name) = Ssmix2Name::parse(&head) {
        let _ = name.order_key();
    }
    let _ = Ssmix2Name::from_rel_path(&head);

    let Ok(msg) = kiban_ingest::parse_hl7_message(data) else {
        return;
    };
    let mut ignored = BTreeMap::new();
    let _ = map_message(&msg, &MessageContext::default(), &mut ignored);

    let data_type = msg.msh().map(|m| {
        let t = m.c(9, 1);
        let e = m.c(9, 2);
        if e.is_empty() { t } else { format!("{t}-{e}") }
    });
    let ctx = MessageContext {
        handler_code: "H0001".into(),
        source_file: "999/901/9999013/20111220/OML-11/x".into(),
        data_type,
        expected_patient_id: Some("9999013".into()),
        file_date: chrono::NaiveDate::from_ymd_opt(2011, 12, 20),
        department: Some("01".into()),
        record_prefix: "message 1 ".into(),
    };
    let _ = map_message(&msg, &ctx, &mut ignored);
});
