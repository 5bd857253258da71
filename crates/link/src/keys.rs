//! Deterministic linkage keys in the style of NDB's hashed IDs (R-PSEUDO-3).
//!
//! Why keyed: a plain SHA-256 of "insurer + number + birth date + sex" can be reversed by
//! enumerating the small input space; an HMAC under a secret cannot. Why after normalization:
//! NDB's ID1/ID2 missed links because one system wrote full-width digits, another dropped
//! leading zeros, a third used 渡邊 for 渡辺. The caller derives `key` from the workspace
//! secret (re-keyed per release), so the same person gets different keys in different releases.

use hmac::{Hmac, Mac};
use kiban_model::{Identity, Sex};
use sha2::Sha256;

use crate::normalize;

/// HMAC-SHA256 over length-prefixed parts, so ("ab","c") and ("a","bc") differ.
pub fn keyed_hash(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts any key length, so construction cannot fail for a 32-byte key.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn sex_code(s: Sex) -> Option<&'static str> {
    match s {
        Sex::Male => Some("1"),
        Sex::Female => Some("2"),
        _ => None,
    }
}

fn birth(id: &Identity) -> Option<String> {
    let d = normalize::parse_date(id.birth_date.as_deref()?)?;
    Some(format!("{:04}{:02}{:02}", d.year, d.month, d.day))
}

/// The normalized components of ID1: insurer number (8 digits), insured symbol, insured
/// number, branch, birth date `YYYYMMDD`, sex (1/2). `None` when insurer, number, birth date
/// or a male/female sex is missing (a key over partial data would collide across people).
pub fn id1_components(id: &Identity) -> Option<[String; 6]> {
    let insurer = normalize::insurer_number(id.insurer_number.as_deref()?)?;
    let number = normalize::insured_code(id.insured_number.as_deref()?)?;
    let symbol = id
        .insured_symbol
        .as_deref()
        .and_then(normalize::insured_code)
        .unwrap_or_default();
    let branch = id
        .insured_branch
        .as_deref()
        .and_then(normalize::insured_branch)
        .unwrap_or_default();
    Some([
        insurer,
        symbol,
        number,
        branch,
        birth(id)?,
        sex_code(id.sex)?.to_string(),
    ])
}

/// The normalized components of ID2: kana name key (family+given, spacing-insensitive),
/// birth date `YYYYMMDD`, sex. `None` when any is missing.
pub fn id2_components(id: &Identity) -> Option<[String; 3]> {
    let kana = normalize::normalize_kana_name(id.name_kana.as_deref()?).joined();
    if kana.is_empty() {
        return None;
    }
    Some([kana, birth(id)?, sex_code(id.sex)?.to_string()])
}

fn hex_key(key: &[u8; 32], tag: &str, comps: &[String]) -> String {
    let mut parts: Vec<&[u8]> = vec![tag.as_bytes()];
    parts.extend(comps.iter().map(|c| c.as_bytes()));
    hex::encode(keyed_hash(key, &parts))
}

/// ID1 = HMAC(insurer number + insured symbol/number/branch + birth date + sex), hex.
pub fn id1(key: &[u8; 32], id: &Identity) -> Option<String> {
    Some(hex_key(key, "kiban-ID1", &id1_components(id)?))
}

/// ID2 = HMAC(kana name + birth date + sex), hex.
pub fn id2(key: &[u8; 32], id: &Identity) -> Option<String> {
    Some(hex_key(key, "kiban-ID2", &id2_components(id)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> Identity {
        let mut id = Identity::new("P1");
        id.name_kana = Some("ヤマダ タロウ".into());
        id.birth_date = Some("1975-03-01".into());
        id.sex = Sex::Male;
        id.insurer_number = Some("138014".into());
        id.insured_symbol = Some("12".into());
        id.insured_number = Some("345".into());
        id.insured_branch = Some("1".into());
        id
    }

    #[test]
    fn r_pseudo_3_id1_is_stable_under_width_zero_fill_and_era() {
        let k = [9u8; 32];
        let a = person();
        let mut b = Identity::new("other-hospital-id");
        b.birth_date = Some("S50.3.1".into());
        b.sex = Sex::Male;
        b.insurer_number = Some("００１３８０１４".into());
        b.insured_symbol = Some("１２".into());
        b.insured_number = Some("000345".into());
        b.insured_branch = Some("01".into());
        assert_eq!(id1(&k, &a), id1(&k, &b));
        assert!(id1(&k, &a).is_some());
        b.insured_branch = Some("02".into());
        assert_ne!(id1(&k, &a), id1(&k, &b));
    }

    #[test]
    fn r_pseudo_3_id2_is_stable_under_kana_variants() {
        let k = [9u8; 32];
        let a = person();
        let mut b = person();
        b.name_kana = Some("ﾔﾏﾀﾞ　ﾀﾛｳ".into());
        assert_eq!(id2(&k, &a), id2(&k, &b));
        b.name_kana = Some("やまだたろう".into());
        assert_eq!(id2(&k, &a), id2(&k, &b));
        b.sex = Sex::Female;
        assert_ne!(id2(&k, &a), id2(&k, &b));
    }

    #[test]
    fn r_pseudo_3_keys_are_keyed_and_need_all_parts() {
        let a = person();
        assert_ne!(id1(&[1; 32], &a), id1(&[2; 32], &a));
        assert_ne!(id1(&[1; 32], &a), id2(&[1; 32], &a));
        let mut b = person();
        b.birth_date = None;
        assert_eq!(id1(&[1; 32], &b), None);
        assert_eq!(id2(&[1; 32], &b), None);
        let h = id1(&[1; 32], &a).unwrap();
        assert_eq!(h.len(), 64);
        // no plain hash: the output is not SHA-256 of the concatenated components
        use sha2::Digest;
        let plain = hex::encode(Sha256::digest(
            id1_components(&a).unwrap().concat().as_bytes(),
        ));
        assert_ne!(h, plain);
    }
}
