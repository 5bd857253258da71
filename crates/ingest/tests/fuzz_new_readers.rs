//! No panic on arbitrary bytes for the UKE, DPC and CSV entry points, and every unit they
//! report ends accepted or quarantined (R-OPT-7).

use kiban_ingest::csvmap::SYNTH_CSV_MAPPING;
use kiban_ingest::{parse_csv, parse_dpc, parse_uke};
use proptest::prelude::*;

/// Bytes biased towards the formats' own delimiters and record IDs.
fn uke_like() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b"IR,".to_vec()),
            Just(b"RE,1,1112,202407,".to_vec()),
            Just(b"RE,1,1111,4310430,x,1,5010501,,20240701,".to_vec()),
            Just(b"SY,8833421,20240702,1,8002,,01".to_vec()),
            Just(b"SI,11,1,111000110,,288,1,,,,,,,1".to_vec()),
            Just(b"IY,21,1,620000001,3,30,14".to_vec()),
            Just(b"HO,06139999,,".to_vec()),
            Just(b"JD,1,,1".to_vec()),
            Just(b"GO,1,0,99".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b",".to_vec()),
            Just(vec![0x1A]),
            Just(vec![0x82, 0xA0, 0x8E, 0x52]),
            prop::collection::vec(any::<u8>(), 0..16),
        ],
        0..40,
    )
    .prop_map(|v| v.concat())
}

fn dpc_like() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b"000000000\t0000000001\t20240706\t20240704\t60\t0001\t001\t641300\t160098110\tD4132\tname\t0000000.000\t000\t0\t0\t0\t\t0\t0\t0\t001\t\t\t20240705\t\t310\t4678\t31\t0\t0\t".to_vec()),
            Just(b"\t".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"20240731".to_vec()),
            Just(b"000".to_vec()),
            prop::collection::vec(any::<u8>(), 0..16),
        ],
        0..40,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn parse_uke_never_panics(bytes in uke_like()) {
        let (items, s) = parse_uke(&bytes);
        prop_assert_eq!(items.len(), s.accepted + s.quarantined + s.flagged);
        prop_assert_eq!(s.units, s.accepted + s.quarantined);
    }

    #[test]
    fn parse_uke_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let (items, s) = parse_uke(&bytes);
        prop_assert_eq!(items.len(), s.accepted + s.quarantined + s.flagged);
    }

    #[test]
    fn parse_dpc_never_panics(bytes in dpc_like()) {
        let (items, s) = parse_dpc(&bytes);
        prop_assert_eq!(items.len(), s.accepted + s.quarantined + s.flagged);
        prop_assert_eq!(s.units, s.accepted + s.quarantined);
    }

    #[test]
    fn parse_dpc_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let (items, s) = parse_dpc(&bytes);
        prop_assert_eq!(items.len(), s.accepted + s.quarantined + s.flagged);
    }

    #[test]
    fn parse_csv_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), which in 0usize..5) {
        let name = ["persons.csv", "visits.csv", "conditions.csv", "drugs.csv", "labs.csv"][which];
        let (items, s) = parse_csv(&bytes, SYNTH_CSV_MAPPING, name).unwrap();
        prop_assert_eq!(items.len(), s.accepted + s.quarantined + s.flagged);
        prop_assert_eq!(s.units, s.accepted + s.quarantined);
    }

    #[test]
    fn csv_mapping_parser_never_panics(text in ".{0,300}") {
        let _ = kiban_ingest::CsvMapping::parse(&text);
    }
}
