//! Issue 13 (item 2): one spelling per patient. Properties of
//! [`PatientIdFormat::normalize`] (idempotent; NFKC-equivalent spellings and zero-padding
//! variants give one key), the format recorded on the handler, and the bulk import refusing
//! an ID that does not fit its handler's format (with its line) instead of storing it under a
//! key nothing else computes.

mod common;

use chrono::NaiveDate;
use kiban_consent::*;
use kiban_store::{SecretKey, patient_key};
use proptest::prelude::*;

fn index_key() -> SecretKey {
    SecretKey::from_bytes([3; 32])
}

fn key_of(handler: &str, f: PatientIdFormat, raw: &str) -> Result<String, PatientIdError> {
    f.normalize(raw)
        .map(|id| patient_key(&index_key(), handler, &id))
}

/// ASCII digits to their full-width forms (U+FF10..).
fn full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(0xFF10 + (c as u32 - '0' as u32)).unwrap_or(c),
            c => c,
        })
        .collect()
}

fn format_strategy() -> impl Strategy<Value = PatientIdFormat> {
    prop_oneof![
        Just(PatientIdFormat::AsIs),
        (1u8..=MAX_DIGITS_WIDTH).prop_map(|width| PatientIdFormat::Digits { width }),
    ]
}

proptest! {
    #[test]
    fn normalize_is_idempotent(f in format_strategy(), raw in "\\PC{0,24}") {
        if let Ok(once) = f.normalize(&raw) {
            prop_assert_eq!(f.normalize(&once), Ok(once.clone()));
        }
    }

    #[test]
    fn spellings_of_one_id_share_one_key(
        width in 1u8..=12,
        digits in "[0-9]{1,12}",
        extra_zeros in 0usize..6,
        pad in prop_oneof![Just(""), Just(" "), Just("\u{3000}"), Just("\t")],
        wide in any::<bool>(),
    ) {
        let f = PatientIdFormat::Digits { width };
        let plain = f.normalize(&digits);
        let mut variant = format!("{}{digits}", "0".repeat(extra_zeros));
        if wide {
            variant = full_width(&variant);
        }
        let variant = format!("{pad}{variant}{pad}");
        // Same verdict and, when accepted, the same key.
        prop_assert_eq!(plain.clone(), f.normalize(&variant));
        prop_assert_eq!(key_of("H", f, &digits), key_of("H", f, &variant));
        if let Ok(id) = plain {
            prop_assert_eq!(id.len(), usize::from(width));
            prop_assert!(id.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn nfkc_equivalent_spellings_share_one_key_as_is(id in "[0-9A-Za-z-]{1,16}") {
        // Full-width ASCII (U+FF01..U+FF5E) is NFKC-equivalent to ASCII.
        let wide: String = id
            .chars()
            .map(|c| char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c))
            .collect();
        let f = PatientIdFormat::AsIs;
        prop_assert_eq!(key_of("H", f, &id), key_of("H", f, &wide));
        prop_assert_eq!(key_of("H", f, &id), key_of("H", f, &format!("\u{3000}{wide} ")));
    }

    #[test]
    fn anything_but_digits_is_refused_by_a_digits_format(
        width in 1u8..=12,
        raw in "[0-9]{0,4}[A-Za-zア-ン#.-][0-9]{0,4}",
    ) {
        let f = PatientIdFormat::Digits { width };
        prop_assert_eq!(f.normalize(&raw), Err(PatientIdError::NotDigits { format: f }));
    }
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn hospital(code: &str, format: PatientIdFormat) -> HandlerInfo {
    let mut h = HandlerInfo::new(code, "みなと病院", "東京都港区1-2-3");
    h.filed_date = Some(d("2024-01-05"));
    h.minister_published_date = Some(d("2024-01-20"));
    h.own_published_date = Some(d("2024-01-25"));
    h.patient_id_format = format;
    h
}

#[tokio::test]
async fn the_format_is_recorded_on_the_handler_and_cannot_be_changed_by_update() {
    for t in common::backends().await {
        let db = &t.db;
        let f = PatientIdFormat::Digits { width: 7 };
        add_handler(db, &hospital("H7", f)).await.unwrap();
        add_handler(db, &HandlerInfo::new("HA", "あ病院", "東京都"))
            .await
            .unwrap();
        assert_eq!(
            get_handler(db, "H7")
                .await
                .unwrap()
                .unwrap()
                .patient_id_format,
            f
        );
        assert_eq!(
            get_handler(db, "HA")
                .await
                .unwrap()
                .unwrap()
                .patient_id_format,
            PatientIdFormat::AsIs
        );
        let mut changed = hospital("H7", PatientIdFormat::AsIs);
        changed.name = "改名".into();
        assert!(update_handler(db, &changed).await.is_err());
        let mut same = hospital("H7", f);
        same.name = "改名".into();
        update_handler(db, &same).await.unwrap();
    }
}

#[tokio::test]
async fn import_refuses_ids_that_do_not_fit_and_keys_every_spelling_alike() {
    for t in common::backends().await {
        let db = &t.db;
        let f = PatientIdFormat::Digits { width: 7 };
        add_handler(db, &hospital("H7", f)).await.unwrap();
        let key = |h: &str, f: PatientIdFormat, p: &str| key_of(h, f, p);
        let csv = "handler_code,patient_id,event,date\n\
                   H7,0016241,notice,2024-02-01\n\
                   H7,16241,stop,2024-03-01\n\
                   H7,ABC1234,stop,2024-03-01\n\
                   H7,123456789,stop,2024-03-01\n\
                   H7,０００３４２９０,notice,2024-02-01\n\
                   H7,34290,stop,2024-03-01\n";
        let rep = import_csv(db, csv.as_bytes(), "desk.csv", &key)
            .await
            .unwrap();
        assert_eq!((rep.imported, rep.rejected), (4, 2));
        let where_: Vec<(u64, Option<&str>)> = rep
            .rejections
            .iter()
            .map(|r| (r.line, r.column.as_deref()))
            .collect();
        assert_eq!(
            where_,
            vec![(4, Some("patient_id")), (5, Some("patient_id"))]
        );
        for r in &rep.rejections {
            let text = r.to_string();
            assert!(
                text.contains("digits:7"),
                "names the expected format: {text}"
            );
            assert!(text.contains("患者ID"), "Japanese first: {text}");
            for secret in ["ABC1234", "123456789"] {
                assert!(!text.contains(secret), "leaks the ID: {text}");
            }
        }
        // The stop filed as 16241 applies to the patient noticed as 0016241.
        for spelling in ["0016241", "16241", "００１６２４１"] {
            let k = key_of("H7", f, spelling).unwrap();
            let dec = eligibility(db, "H7", &k, d("2024-06-01")).await.unwrap();
            assert!(!dec.eligibility.is_eligible(), "{spelling}");
            assert_eq!(dec.events_considered, 2, "{spelling}");
        }
        let k = key_of("H7", f, "34290").unwrap();
        assert_eq!(
            eligibility(db, "H7", &k, d("2024-06-01"))
                .await
                .unwrap()
                .events_considered,
            2
        );
    }
}
