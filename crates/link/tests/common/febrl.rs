//! FEBRL → kiban adapter shared by the FEBRL4 test and the `febrl` example.
//!
//! Mapping (FEBRL is Latin-alphabet Australian data): `surname^given_name` → name_alpha
//! (family first, DICOM style); `street_number address_1, address_2, suburb, state` → address
//! (comma-separated from most to least specific, as the normalizer expects for Latin
//! addresses); postcode → postal_code; date_of_birth YYYYMMDD → birth_date; soc_sec_id →
//! phone (a 7-digit identifier compared like a phone number). Sex is not in FEBRL.

use std::collections::HashMap;
use std::path::Path;

use kiban_link::LinkRecord;
use kiban_model::Identity;

pub fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/febrl")
        .join(name)
}

/// Reads one FEBRL CSV as `source`; returns records and registration → entity_id.
pub fn load(path: &Path, source: &str) -> (Vec<LinkRecord>, HashMap<String, String>) {
    let mut rdr = csv::Reader::from_path(path).expect("open FEBRL csv");
    let headers = rdr.headers().expect("headers").clone();
    let col = |n: &str| headers.iter().position(|h| h == n).expect("column");
    let (rec_id, entity, given, surname) = (
        col("rec_id"),
        col("entity_id"),
        col("given_name"),
        col("surname"),
    );
    let (num, a1, a2, suburb) = (
        col("street_number"),
        col("address_1"),
        col("address_2"),
        col("suburb"),
    );
    let (postcode, state, dob, ssid) = (
        col("postcode"),
        col("state"),
        col("date_of_birth"),
        col("soc_sec_id"),
    );
    let mut records = Vec::new();
    let mut truth = HashMap::new();
    for row in rdr.records() {
        let row = row.expect("row");
        let f = |i: usize| row.get(i).unwrap_or("").trim().to_string();
        let some = |s: String| if s.is_empty() { None } else { Some(s) };
        let reg = format!("{source}:{}", f(rec_id));
        let mut id = Identity::new(f(rec_id));
        if !(f(surname).is_empty() && f(given).is_empty()) {
            id.name_alpha = Some(format!("{}^{}", f(surname), f(given)));
        }
        let street = format!("{} {}", f(num), f(a1)).trim().to_string();
        let addr = format!("{street}, {}, {}, {}", f(a2), f(suburb), f(state));
        if addr.chars().any(|c| c.is_alphanumeric()) {
            id.address = Some(addr);
        }
        id.postal_code = some(f(postcode));
        let d = f(dob);
        id.birth_date = some(if d.len() == 8 {
            format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..])
        } else {
            d
        });
        id.phone = some(f(ssid));
        truth.insert(reg.clone(), f(entity));
        records.push(LinkRecord {
            registration_id: reg,
            source: source.to_string(),
            identity: id,
        });
    }
    (records, truth)
}

/// FEBRL4 A and B together.
pub fn febrl4() -> (Vec<LinkRecord>, HashMap<String, String>) {
    let (mut recs, mut truth) = load(&fixture("febrl4a.csv"), "A");
    let (rb, tb) = load(&fixture("febrl4b.csv"), "B");
    recs.extend(rb);
    truth.extend(tb);
    (recs, truth)
}
