//! Per-value transforms used by every release profile: keyed pseudonyms (R-ANON-3),
//! per-person date shifts (R-ANON-6c), top coding of ages and birth date → year (R-ANON-1/4).
//!
//! Everything keyed takes a *release key*: a fresh 32-byte secret per release, so two releases
//! never share a pseudonym or an offset, and without the key neither can be linked back to
//! the internal ID. Domain-separation labels keep the pseudonym and the date offset of the same
//! person independent even under the same key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::AnonError;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 over length-prefixed parts (so ("ab","c") ≠ ("a","bc")).
fn keyed_hash(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so a 32-byte key can never be rejected.
    let mut mac = match <HmacSha256 as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes any key length"),
    };
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Crockford base32 alphabet (no I, L, O, U): unambiguous when read aloud or retyped.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Length of the base32 body of a pseudonym: 16 characters = 80 bits, so collisions stay
/// below 1e-4 even for 10^7 persons in one release (birthday bound n²/2^81).
pub const PSEUDONYM_BODY_LEN: usize = 16;

/// The release pseudonym of one person: `"P"` + 16 Crockford-base32 characters of
/// HMAC-SHA256(release key, "kiban-pseudonym", internal id).
///
/// Why keyed and per release: R-ANON-3 requires that the link between release rows and the
/// producer's internal keys cannot be rebuilt, and that two releases are unlinkable; a plain
/// hash would be reversible by hashing all internal IDs.
pub fn keyed_pseudonym(release_key: &[u8; 32], internal_id: &str) -> String {
    let h = keyed_hash(release_key, &[b"kiban-pseudonym", internal_id.as_bytes()]);
    let mut out = String::with_capacity(1 + PSEUDONYM_BODY_LEN);
    out.push('P');
    // 80 bits = first 10 bytes, read as 16 groups of 5 bits.
    let mut acc: u128 = 0;
    for b in &h[..10] {
        acc = (acc << 8) | u128::from(*b);
    }
    for i in (0..PSEUDONYM_BODY_LEN).rev() {
        let idx = ((acc >> (5 * i)) & 0x1f) as usize;
        out.push(char::from(CROCKFORD[idx]));
    }
    out
}

/// The date offset of one person, in days, uniform in `[-max_abs_days, +max_abs_days]`.
///
/// Every date of the person must be shifted by this same value, so intervals (drug → adverse
/// event) survive exactly (R-ANON-6c). Derived by rejection sampling over successive HMAC
/// blocks, so the distribution is exactly uniform (no modulo bias). `max_abs_days == 0`
/// returns 0.
pub fn date_shift_days(release_key: &[u8; 32], internal_id: &str, max_abs_days: u32) -> i32 {
    if max_abs_days == 0 {
        return 0;
    }
    // Clamp so the result always fits an i32 (≈ 5.8 million years: far beyond any use).
    let max = max_abs_days.min(i32::MAX as u32) as u64;
    let range = 2 * max + 1; // ≤ 2^32
    // Largest multiple of `range` not exceeding 2^64: values at or above are rejected.
    let zone = u64::MAX - (u64::MAX % range + 1) % range;
    let mut counter: u64 = 0;
    loop {
        let h = keyed_hash(
            release_key,
            &[
                b"kiban-date-shift",
                internal_id.as_bytes(),
                &counter.to_be_bytes(),
            ],
        );
        for chunk in h.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            let v = u64::from_be_bytes(b);
            if v <= zone {
                return ((v % range) as i64 - max as i64) as i32;
            }
        }
        counter += 1;
    }
}

/// Top coding of an age: ages at or above `cap` become `"{cap}歳以上"` (the basic policy's
/// example「90歳以上」), others are returned as their decimal string. Extreme ages are
/// peculiar values (R-ANON-4).
pub fn top_code_age(age: u32, cap: u32) -> String {
    if age >= cap {
        format!("{cap}歳以上")
    } else {
        age.to_string()
    }
}

/// Top/bottom coding of a numeric value (e.g. extreme lab results): values above `high`
/// become `"{high}以上"`, below `low` become `"{low}以下"`; others are unchanged.
pub fn top_bottom_code(value: f64, low: f64, high: f64) -> String {
    if value >= high {
        format!("{high}以上")
    } else if value <= low {
        format!("{low}以下")
    } else {
        value.to_string()
    }
}

/// Birth date `YYYY-MM-DD` (or `YYYYMMDD`, or `YYYY-MM`) → birth year, so the exact birth
/// date (an identifying description, R-ANON-1) never leaves the producer.
///
/// The error names the field but never echoes the value (it is personal data).
pub fn birth_year(birth_date: &str) -> Result<i32, AnonError> {
    let s = birth_date.trim();
    let bad = || AnonError::InvalidValue {
        field: "birth_date".into(),
        reason: "expected YYYY-MM-DD, YYYYMMDD or YYYY-MM".into(),
    };
    if !s.is_ascii() {
        return Err(bad());
    }
    let digits_ok = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let (y, m, d) = match s.len() {
        10 if s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' => (&s[0..4], &s[5..7], &s[8..10]),
        8 if digits_ok(s) => (&s[0..4], &s[4..6], &s[6..8]),
        7 if s.as_bytes()[4] == b'-' => (&s[0..4], &s[5..7], "01"),
        _ => return Err(bad()),
    };
    if !(digits_ok(y) && digits_ok(m) && digits_ok(d)) {
        return Err(bad());
    }
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u32 = m.parse().map_err(|_| bad())?;
    let day: u32 = d.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    Ok(year)
}

/// Character masking: keeps the first `keep` characters and replaces the rest with `mask`
/// (e.g. postal code "1000001" → "100****"). Counts characters, not bytes, so Japanese text
/// is masked correctly.
pub fn mask_suffix(value: &str, keep: usize, mask: char) -> String {
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i < keep { c } else { mask })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: [u8; 32] = [1; 32];
    const K2: [u8; 32] = [2; 32];

    #[test]
    fn r_anon_3_pseudonym_stable_per_key_and_unlinkable_across_keys() {
        let a = keyed_pseudonym(&K1, "reg-000123");
        assert_eq!(a, keyed_pseudonym(&K1, "reg-000123"));
        assert_eq!(a.len(), 1 + PSEUDONYM_BODY_LEN);
        assert!(a.starts_with('P'));
        assert!(a[1..].bytes().all(|b| CROCKFORD.contains(&b)));
        assert_ne!(a, keyed_pseudonym(&K2, "reg-000123"));
        assert_ne!(a, keyed_pseudonym(&K1, "reg-000124"));
        assert!(!a.contains("000123"));
    }

    #[test]
    fn r_anon_3_no_collisions_in_many_ids() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..20_000 {
            assert!(seen.insert(keyed_pseudonym(&K1, &format!("id{i}"))));
        }
    }

    #[test]
    fn r_anon_6c_date_shift_stable_and_in_range() {
        let s = date_shift_days(&K1, "reg-1", 365);
        assert_eq!(s, date_shift_days(&K1, "reg-1", 365));
        let mut min = i32::MAX;
        let mut max = i32::MIN;
        let mut differs_across_keys = 0;
        for i in 0..5000 {
            let id = format!("reg-{i}");
            let v = date_shift_days(&K1, &id, 30);
            assert!((-30..=30).contains(&v));
            min = min.min(v);
            max = max.max(v);
            if v != date_shift_days(&K2, &id, 30) {
                differs_across_keys += 1;
            }
        }
        // Both ends of the range are reached (uniform over 61 values, 5000 draws).
        assert_eq!((min, max), (-30, 30));
        assert!(differs_across_keys > 4500);
        assert_eq!(date_shift_days(&K1, "x", 0), 0);
        let big = date_shift_days(&K1, "x", u32::MAX);
        assert!(big >= -i32::MAX);
    }

    #[test]
    fn r_anon_6c_date_shift_roughly_uniform() {
        let mut counts = [0u32; 7];
        for i in 0..7000 {
            let v = date_shift_days(&K1, &format!("p{i}"), 3);
            counts[(v + 3) as usize] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn r_anon_4_top_coding() {
        assert_eq!(top_code_age(89, 90), "89");
        assert_eq!(top_code_age(90, 90), "90歳以上");
        assert_eq!(top_code_age(104, 90), "90歳以上");
        assert_eq!(top_bottom_code(500.0, 1.0, 400.0), "400以上");
        assert_eq!(top_bottom_code(0.5, 1.0, 400.0), "1以下");
        assert_eq!(top_bottom_code(7.5, 1.0, 400.0), "7.5");
    }

    #[test]
    fn r_anon_1_birth_year() {
        assert_eq!(birth_year("1956-03-07").unwrap(), 1956);
        assert_eq!(birth_year("19560307").unwrap(), 1956);
        assert_eq!(birth_year("1956-03").unwrap(), 1956);
        let e = birth_year("1956-13-07").unwrap_err().to_string();
        assert!(!e.contains("1956"), "value must not leak: {e}");
        assert!(birth_year("abc").is_err());
        assert!(birth_year("１９５６-03-07").is_err());
    }

    #[test]
    fn masking_counts_characters() {
        assert_eq!(mask_suffix("1000001", 3, '*'), "100****");
        assert_eq!(mask_suffix("東京都港区", 3, '*'), "東京都**");
    }
}
