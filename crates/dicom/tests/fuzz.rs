//! The reader and de-identifier never panic on input (issue 3 item 10: fuzzed entry points).

use kiban_dicom::{DeidOptions, deidentify_bytes, read_dicom_bytes};
use proptest::prelude::*;

const CT: &[u8] =
    include_bytes!("../../../fixtures/dicom/pydicom-3.0.2-data/test_files/CT_small.dcm");
const H31: &[u8] =
    include_bytes!("../../../fixtures/dicom/pydicom-3.0.2-data/charset_files/chrH31.dcm");

fn both(bytes: &[u8]) {
    let _ = read_dicom_bytes(bytes, "H1", "fuzz.dcm");
    let _ = deidentify_bytes(bytes, "fuzz.dcm", &DeidOptions::new(vec![3u8; 32]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        both(&bytes);
    }

    #[test]
    fn random_bytes_after_a_part_10_header_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let mut b = vec![0u8; 128];
        b.extend_from_slice(b"DICM");
        b.extend_from_slice(&tail);
        both(&b);
    }

    #[test]
    fn mutated_samples_never_panic(
        which in 0..2usize,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut b = if which == 0 { CT.to_vec() } else { H31.to_vec() };
        for (i, v) in flips {
            let i = i.index(b.len());
            b[i] = v;
        }
        let n = cut.index(b.len() + 1);
        both(&b[..n.max(b.len() / 2)]);
    }
}
