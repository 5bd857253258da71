//! Privacy-preserving record linkage (PPRL): a handler sends only Bloom-filter encodings of
//! its normalized identifiers, keyed by a secret shared among handlers and unknown to the
//! producer; the producer links on the encodings alone.
//!
//! Why this design:
//! * **Field-level Bloom filters (CLK per field)**: each field's character bigrams are hashed
//!   into its own filter, so the linkage keeps Fellegi–Sunter comparisons per field (Dice
//!   similarity bands as levels) — a single record-level CLK would leave one score and no EM.
//!   All filters together (`Clk::bits`) are the record's cryptographic long-term key.
//! * **HMAC-SHA256 keyed double hashing** (Schnell et al.): position_i = h1 + i·h2 mod bits,
//!   with h1, h2 from one HMAC of (field, bigram) under the shared secret. Without the
//!   secret, a dictionary attack cannot rebuild the filters.
//! * **Normalization first** (the same rules as plain linkage: variant kanji, kana folding,
//!   和暦, postal codes), so a spelling difference that normalization removes costs nothing.
//! * **Blocking on keyed values only**: a keyed hash of the birth date (day/month unordered),
//!   and MinHash-LSH bands of the name filter, combined with the keyed birth year or postal
//!   code. No plaintext value ever reaches the producer.
//!
//! What it costs is measured by the tests (`crates/link/tests/pprl.rs`) against plain
//! linkage on FEBRL4 and on the Japanese noise set.

use std::collections::{BTreeMap, HashMap};

use hmac::{Hmac, Mac};
use kiban_model::{Identity, Sex};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::normalize;

type HmacSha256 = Hmac<Sha256>;

/// Encoding parameters, agreed among the handlers together with the secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClkParams {
    /// Bits per field filter (a multiple of 64).
    pub bits: usize,
    /// Hash functions per bigram.
    pub hashes: usize,
    /// MinHash bands over the name filter used for blocking, and rows per band.
    pub lsh_bands: usize,
    pub lsh_rows: usize,
}

impl Default for ClkParams {
    fn default() -> Self {
        ClkParams {
            bits: 1024,
            hashes: 20,
            lsh_bands: 12,
            lsh_rows: 2,
        }
    }
}

/// Fields encoded, in filter order.
pub const PPRL_FIELDS: [&str; 6] = [
    "name",
    "birth_date",
    "postal_code",
    "address",
    "phone",
    "insurance",
];
const F_NAME: usize = 0;
const F_DOB: usize = 1;
const F_POSTAL: usize = 2;
const F_ADDR: usize = 3;
const F_PHONE: usize = 4;
const F_INS: usize = 5;
const N_F: usize = 6;

/// One record's encodings: what a handler sends instead of identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Clk {
    /// One Bloom filter per field of [`PPRL_FIELDS`] (empty when the field is missing).
    pub filters: Vec<Vec<u64>>,
    /// Bloom filter of the given name alone, kanji and kana only (empty without a split
    /// Japanese name): the twin guard — same family, same birth date, different given name
    /// must not link, and the joint name filter cannot tell that from a typo.
    pub given: Vec<u64>,
    /// Keyed tag of the sex (0 when unknown): equality only.
    pub sex: u64,
    /// Keyed blocking keys (birth date, LSH bands × birth year / postal code).
    pub blocks: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum PprlError {
    #[error("bits must be a positive multiple of 64 and hashes, lsh_bands, lsh_rows positive")]
    InvalidParams,
    #[error("the shared secret must be at least 16 bytes")]
    WeakSecret,
    #[error("record #{index} repeats the registration id of an earlier record")]
    DuplicateRegistration { index: usize },
}

fn check(secret: &[u8], p: &ClkParams) -> Result<(), PprlError> {
    if secret.len() < 16 {
        return Err(PprlError::WeakSecret);
    }
    if p.bits == 0
        || !p.bits.is_multiple_of(64)
        || p.hashes == 0
        || p.lsh_bands == 0
        || p.lsh_rows == 0
    {
        return Err(PprlError::InvalidParams);
    }
    Ok(())
}

fn keyed(mac: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    let mut m = mac.clone();
    for p in parts {
        m.update(&(p.len() as u32).to_le_bytes());
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn u64_at(b: &[u8; 32], k: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[k * 8..k * 8 + 8]);
    u64::from_le_bytes(a)
}

/// Padded character bigrams (`_a`, `ab`, …, `z_`): the units hashed into a filter.
fn bigrams(s: &str) -> Vec<String> {
    let cs: Vec<char> = std::iter::once('_')
        .chain(s.chars().filter(|c| !c.is_whitespace()))
        .chain(std::iter::once('_'))
        .collect();
    if cs.len() <= 2 {
        return Vec::new();
    }
    cs.windows(2).map(|w| w.iter().collect()).collect()
}

/// Encodes one identity. Normalizes first, then hashes each field's bigrams into its filter.
pub fn encode(identity: &Identity, secret: &[u8], params: &ClkParams) -> Result<Clk, PprlError> {
    check(secret, params)?;
    let mac = HmacSha256::new_from_slice(secret).map_err(|_| PprlError::WeakSecret)?;
    let opt = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    // Field texts: the name's scripts each carry a script tag so that kanji and kana grams
    // never collide by accident; all go into the one name filter (one joint comparison).
    let mut name_grams: Vec<String> = Vec::new();
    let mut given_grams: Vec<String> = Vec::new();
    for (tag, v) in [
        (
            "k",
            opt(&identity.name_kanji).map(|s| normalize::normalize_kanji_name(&s)),
        ),
        (
            "n",
            opt(&identity.name_kana).map(|s| normalize::normalize_kana_name(&s)),
        ),
        (
            "a",
            opt(&identity.name_alpha).map(|s| normalize::normalize_alpha_name(&s)),
        ),
    ] {
        if let Some(v) = v {
            name_grams.extend(
                bigrams(&v.joined())
                    .into_iter()
                    .map(|g| format!("{tag}{g}")),
            );
            if tag != "a" && v.split && !v.given.is_empty() && !v.family.is_empty() {
                given_grams.extend(bigrams(&v.given).into_iter().map(|g| format!("{tag}{g}")));
            }
        }
    }
    let dob = identity
        .birth_date_evidence()
        .and_then(normalize::parse_date_lenient);
    let dob_text = dob.map(|d| format!("{:04}{:02}{:02}", d.year, d.month, d.day));
    let postal = opt(&identity.postal_code).and_then(|s| normalize::postal_code(&s));
    let addr = opt(&identity.address).map(|s| {
        let a = normalize::normalize_address(&s);
        format!("{}{}", a.municipality, a.rest)
    });
    let mut grams: [Vec<String>; N_F] = Default::default();
    grams[F_NAME] = name_grams;
    grams[F_DOB] = dob_text.as_deref().map(bigrams).unwrap_or_default();
    grams[F_POSTAL] = postal.as_deref().map(bigrams).unwrap_or_default();
    grams[F_ADDR] = addr.as_deref().map(bigrams).unwrap_or_default();
    grams[F_PHONE] = opt(&identity.phone)
        .and_then(|s| normalize::phone(&s))
        .as_deref()
        .map(bigrams)
        .unwrap_or_default();
    grams[F_INS] = opt(&identity.insured_number)
        .and_then(|n| normalize::insured_code(&n))
        .map(|n| {
            let sym = opt(&identity.insured_symbol)
                .and_then(|s| normalize::insured_code(&s))
                .unwrap_or_default();
            format!("{sym}|{n}")
        })
        .as_deref()
        .map(bigrams)
        .unwrap_or_default();
    let bloom = |field: &str, gs: &[String]| -> Vec<u64> {
        if gs.is_empty() {
            return Vec::new();
        }
        let mut bf = vec![0u64; params.bits / 64];
        for g in gs {
            let d = keyed(&mac, &[field.as_bytes(), g.as_bytes()]);
            let (h1, h2) = (u64_at(&d, 0), u64_at(&d, 1) | 1);
            for i in 0..params.hashes as u64 {
                let pos = (h1.wrapping_add(i.wrapping_mul(h2)) % params.bits as u64) as usize;
                bf[pos / 64] |= 1 << (pos % 64);
            }
        }
        bf
    };
    let filters: Vec<Vec<u64>> = grams
        .iter()
        .enumerate()
        .map(|(f, gs)| bloom(PPRL_FIELDS[f], gs))
        .collect();
    let given = bloom("given", &given_grams);
    let sex = match identity.sex {
        Sex::Male => u64_at(&keyed(&mac, &[b"sex", b"M"]), 0) | 1,
        Sex::Female => u64_at(&keyed(&mac, &[b"sex", b"F"]), 0) | 1,
        _ => 0,
    };
    // blocking keys, all keyed
    let mut blocks = Vec::new();
    if let Some(d) = dob {
        let (a, b) = (d.month.min(d.day), d.month.max(d.day));
        blocks.push(u64_at(
            &keyed(
                &mac,
                &[b"blk-dob", format!("{}-{a}-{b}", d.year).as_bytes()],
            ),
            0,
        ));
    }
    let name_bits = &filters[F_NAME];
    if !name_bits.is_empty() {
        let set: Vec<u32> = (0..params.bits as u32)
            .filter(|&p| name_bits[p as usize / 64] >> (p % 64) & 1 == 1)
            .collect();
        // MinHash under keyed permutations (a keyed hash of the position), banded.
        for band in 0..params.lsh_bands {
            let mut sig = Vec::with_capacity(params.lsh_rows);
            for row in 0..params.lsh_rows {
                let salt = u64_at(
                    &keyed(
                        &mac,
                        &[
                            b"lsh",
                            &((band * params.lsh_rows + row) as u64).to_le_bytes(),
                        ],
                    ),
                    0,
                );
                let min = set
                    .iter()
                    .map(|&p| mix(u64::from(p) ^ salt))
                    .min()
                    .unwrap_or(0);
                sig.push(min);
            }
            let band_key = mix(sig.iter().fold(band as u64, |a, &x| mix(a ^ x)));
            if let Some(d) = dob {
                blocks.push(mix(
                    band_key ^ u64_at(&keyed(&mac, &[b"blk-y", &d.year.to_le_bytes()]), 0)
                ));
            }
            if let Some(p) = &postal {
                blocks.push(mix(
                    band_key ^ u64_at(&keyed(&mac, &[b"blk-p", p.as_bytes()]), 0)
                ));
            }
        }
    }
    Ok(Clk {
        filters,
        given,
        sex,
        blocks,
    })
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Dice coefficient of two Bloom filters: 2|A∩B| / (|A|+|B|).
pub fn dice(a: &[u64], b: &[u64]) -> Option<f64> {
    if a.is_empty() || b.is_empty() || a.len() != b.len() {
        return None;
    }
    let (mut inter, mut tot) = (0u32, 0u32);
    for (x, y) in a.iter().zip(b) {
        inter += (x & y).count_ones();
        tot += x.count_ones() + y.count_ones();
    }
    Some(if tot == 0 {
        0.0
    } else {
        2.0 * f64::from(inter) / f64::from(tot)
    })
}

/// One handler's encoded registration.
#[derive(Debug, Clone)]
pub struct PprlRecord {
    pub registration_id: String,
    pub source: String,
    pub clk: Clk,
}

/// Linkage settings on encodings.
#[derive(Debug, Clone)]
pub struct PprlConfig {
    pub upper: f64,
    /// Anti-chaining: a cluster merge is refused when a cross pair scores below this.
    pub min_cross_probability: f64,
    pub max_block_size: usize,
    pub u_sample_pairs: usize,
    pub em_max_iterations: usize,
    pub link_within_source: bool,
    pub seed: u64,
    /// Registrations whose group labels differ never merge (R-LINK-2).
    pub groups: HashMap<String, String>,
}

impl Default for PprlConfig {
    fn default() -> Self {
        PprlConfig {
            upper: 0.9,
            min_cross_probability: 0.01,
            max_block_size: 2000,
            u_sample_pairs: 50_000,
            em_max_iterations: 100,
            link_within_source: true,
            seed: 0x7070_726c,
            groups: HashMap::new(),
        }
    }
}

/// Outcome of a linkage on encodings.
#[derive(Debug, Clone, Serialize)]
pub struct PprlResult {
    /// registration_id → person key (smallest registration id of the cluster).
    pub clusters: BTreeMap<String, String>,
    pub candidate_pairs: usize,
    pub linked_pairs: usize,
    pub blocked_merges: usize,
    /// Fitted m and u per field comparison (levels: see [`DICE_LEVELS`]).
    pub m: Vec<Vec<f64>>,
    pub u: Vec<Vec<f64>>,
    pub lambda: f64,
}

/// Dice bands per level (level 0 strongest); below the last: "different".
pub const DICE_LEVELS: [f64; 4] = [0.99, 0.9, 0.8, 0.65];
const N_CMP_P: usize = N_F + 1; // + sex
const NULL: u8 = u8::MAX;

fn levels_of(c: usize) -> usize {
    if c == N_F { 2 } else { DICE_LEVELS.len() + 1 }
}

fn gamma(a: &Clk, b: &Clk) -> [u8; N_CMP_P] {
    let mut g = [NULL; N_CMP_P];
    for f in 0..N_F {
        if let Some(d) = dice(&a.filters[f], &b.filters[f]) {
            g[f] = DICE_LEVELS
                .iter()
                .position(|&t| d >= t)
                .unwrap_or(DICE_LEVELS.len()) as u8;
        }
    }
    if a.sex != 0 && b.sex != 0 {
        g[N_F] = u8::from(a.sex != b.sex);
    }
    g
}

/// Given-name Dice below which two records with one birth date are held apart (twins).
const TWIN_GIVEN_DICE: f64 = 0.5;

/// The twin guard: same birth date, whole names not close, Japanese given names clearly
/// different (a typo keeps the whole name close; a sibling's name is not).
fn twin(a: &Clk, b: &Clk, g: &[u8; N_CMP_P]) -> bool {
    g[F_DOB] == 0
        && g[F_NAME] != NULL
        && g[F_NAME] >= 3
        && dice(&a.given, &b.given).is_some_and(|d| d < TWIN_GIVEN_DICE)
}

fn weight(g: &[u8; N_CMP_P], m: &[Vec<f64>], u: &[Vec<f64>], lambda: f64) -> f64 {
    let mut w = (lambda / (1.0 - lambda)).log2();
    for c in 0..N_CMP_P {
        if g[c] != NULL {
            w += (m[c][g[c] as usize] / u[c][g[c] as usize]).log2();
        }
    }
    w
}

/// Links encoded records: blocking on keyed keys, Dice levels, u from random pairs, m and λ by
/// EM, then the same chaining-resistant clustering rule as plain linkage.
pub fn link_encoded(records: &[PprlRecord], cfg: &PprlConfig) -> Result<PprlResult, PprlError> {
    let mut seen = HashMap::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        if seen.insert(r.registration_id.as_str(), i).is_some() {
            return Err(PprlError::DuplicateRegistration { index: i });
        }
    }
    let n = records.len();
    let mut srcs: HashMap<&str, u32> = HashMap::new();
    let src: Vec<u32> = records
        .iter()
        .map(|r| {
            let k = srcs.len() as u32;
            *srcs.entry(r.source.as_str()).or_insert(k)
        })
        .collect();
    // blocking
    let mut entries: Vec<(u64, u32)> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let mut ks = r.clk.blocks.clone();
        ks.sort_unstable();
        ks.dedup();
        entries.extend(ks.into_iter().map(|k| (k, i as u32)));
    }
    entries.sort_unstable();
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for block in entries.chunk_by(|x, y| x.0 == y.0) {
        if block.len() < 2 || block.len() > cfg.max_block_size {
            continue;
        }
        for (x, &(_, i)) in block.iter().enumerate() {
            for &(_, j) in &block[x + 1..] {
                if cfg.link_within_source || src[i as usize] != src[j as usize] {
                    pairs.push((i.min(j), i.max(j)));
                }
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    let gammas: Vec<[u8; N_CMP_P]> = pairs
        .iter()
        .map(|&(a, b)| gamma(&records[a as usize].clk, &records[b as usize].clk))
        .collect();
    // u from random pairs (Laplace-smoothed)
    let mut ucount: Vec<Vec<f64>> = (0..N_CMP_P).map(|c| vec![1.0; levels_of(c)]).collect();
    let mut state = cfg.seed;
    let mut drawn = 0;
    let mut tries = 0;
    while n >= 2 && drawn < cfg.u_sample_pairs && tries < cfg.u_sample_pairs * 4 {
        tries += 1;
        state = mix(state);
        let i = (state % n as u64) as usize;
        state = mix(state);
        let j = (state % n as u64) as usize;
        if i == j || (!cfg.link_within_source && src[i] == src[j]) {
            continue;
        }
        drawn += 1;
        let g = gamma(&records[i].clk, &records[j].clk);
        for c in 0..N_CMP_P {
            if g[c] != NULL {
                ucount[c][g[c] as usize] += 1.0;
            }
        }
    }
    let u: Vec<Vec<f64>> = ucount
        .iter()
        .map(|v| {
            let t: f64 = v.iter().sum();
            v.iter().map(|x| x / t).collect()
        })
        .collect();
    // EM over distinct patterns, u fixed
    let mut pat: HashMap<[u8; N_CMP_P], f64> = HashMap::new();
    for g in &gammas {
        *pat.entry(*g).or_default() += 1.0;
    }
    let mut patterns: Vec<([u8; N_CMP_P], f64)> = pat.into_iter().collect();
    patterns.sort_unstable_by_key(|p| p.0);
    let mut m: Vec<Vec<f64>> = (0..N_CMP_P)
        .map(|c| {
            let l = levels_of(c);
            (0..l)
                .map(|k| if k == 0 { 0.9 } else { 0.1 / (l - 1) as f64 })
                .collect()
        })
        .collect();
    let mut lambda_c: f64 = 0.1;
    for _ in 0..cfg.em_max_iterations {
        let mut num: Vec<Vec<f64>> = (0..N_CMP_P).map(|c| vec![0.0; levels_of(c)]).collect();
        let (mut sp, mut sn) = (0.0, 0.0);
        for (g, cnt) in &patterns {
            let w = weight(g, &m, &u, lambda_c);
            let post = 1.0 / (1.0 + (-w).exp2());
            sp += post * cnt;
            sn += cnt;
            for c in 0..N_CMP_P {
                if g[c] != NULL {
                    num[c][g[c] as usize] += post * cnt;
                }
            }
        }
        let mut delta: f64 = 0.0;
        for c in 0..N_CMP_P {
            let tot: f64 = num[c].iter().sum();
            if tot <= 0.0 {
                continue;
            }
            let l = num[c].len() as f64;
            for k in 0..num[c].len() {
                let v = ((num[c][k] + 1e-6) / (tot + 1e-6 * l)).max(1e-7);
                delta = delta.max((v - m[c][k]).abs());
                m[c][k] = v;
            }
        }
        let nl = (sp / sn.max(1.0)).clamp(1e-9, 1.0 - 1e-9);
        delta = delta.max((nl - lambda_c).abs());
        lambda_c = nl;
        if delta < 1e-6 {
            break;
        }
    }
    let total_pairs = (n as f64) * (n as f64 - 1.0) / 2.0;
    let lambda = (lambda_c * pairs.len() as f64 / total_pairs.max(1.0)).clamp(1e-12, 0.5);
    let prob = |w: f64| 1.0 / (1.0 + (-w).exp2());
    let mut edges: Vec<(f64, u32, u32)> = pairs
        .iter()
        .zip(&gammas)
        .filter(|(p, g)| !twin(&records[p.0 as usize].clk, &records[p.1 as usize].clk, g))
        .map(|(&(a, b), g)| (weight(g, &m, &u, lambda), a, b))
        .filter(|e| prob(e.0) >= cfg.upper)
        .collect();
    edges.sort_unstable_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    // clustering with the anti-chaining and group rules
    let mut parent: Vec<u32> = (0..n as u32).collect();
    let mut members: Vec<Vec<u32>> = (0..n as u32).map(|i| vec![i]).collect();
    fn find(parent: &mut [u32], x: u32) -> u32 {
        let mut r = x;
        while parent[r as usize] != r {
            r = parent[r as usize];
        }
        let mut x = x;
        while parent[x as usize] != r {
            let nx = parent[x as usize];
            parent[x as usize] = r;
            x = nx;
        }
        r
    }
    let group = |i: u32| cfg.groups.get(records[i as usize].registration_id.as_str());
    let (mut linked, mut blocked) = (0, 0);
    for &(_, a, b) in &edges {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra == rb {
            continue;
        }
        let mut ok = true;
        let mut by_group = false;
        'x: for &x in &members[ra as usize] {
            for &y in &members[rb as usize] {
                if let (Some(gx), Some(gy)) = (group(x), group(y))
                    && gx != gy
                {
                    ok = false;
                    by_group = true;
                    break 'x;
                }
                if (x, y) == (a, b) || (x, y) == (b, a) {
                    continue;
                }
                let (cx, cy) = (&records[x as usize].clk, &records[y as usize].clk);
                let g = gamma(cx, cy);
                if twin(cx, cy, &g) || prob(weight(&g, &m, &u, lambda)) < cfg.min_cross_probability
                {
                    ok = false;
                    break 'x;
                }
            }
        }
        if ok {
            let (big, small) = if members[ra as usize].len() >= members[rb as usize].len() {
                (ra, rb)
            } else {
                (rb, ra)
            };
            let moved = std::mem::take(&mut members[small as usize]);
            members[big as usize].extend(moved);
            parent[small as usize] = big;
            linked += 1;
        } else if by_group {
            blocked += 1;
        }
    }
    let mut clusters = BTreeMap::new();
    for i in 0..n as u32 {
        let r = find(&mut parent, i);
        if let Some(key) = members[r as usize]
            .iter()
            .map(|&k| records[k as usize].registration_id.as_str())
            .min()
        {
            clusters.insert(records[i as usize].registration_id.clone(), key.to_string());
        }
    }
    Ok(PprlResult {
        clusters,
        candidate_pairs: pairs.len(),
        linked_pairs: linked,
        blocked_merges: blocked,
        m,
        u,
        lambda,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"shared-secret-of-the-handlers-0001";

    fn id(kanji: &str, kana: &str, dob: &str) -> Identity {
        let mut i = Identity::new("p");
        i.name_kanji = Some(kanji.into());
        i.name_kana = Some(kana.into());
        i.birth_date = Some(dob.into());
        i.sex = Sex::Female;
        i.postal_code = Some("100-0001".into());
        i
    }

    #[test]
    fn encoding_is_keyed_and_normalized() {
        let p = ClkParams::default();
        let a = encode(
            &id("渡邊 花子", "ワタナベ ハナコ", "1980-04-05"),
            SECRET,
            &p,
        )
        .unwrap();
        // variant kanji, half-width kana and 和暦 normalize to the same filters
        let b = encode(&id("渡辺花子", "ﾜﾀﾅﾍﾞ ﾊﾅｺ", "昭和55年4月5日"), SECRET, &p).unwrap();
        assert_eq!(dice(&a.filters[F_NAME], &b.filters[F_NAME]), Some(1.0));
        assert_eq!(dice(&a.filters[F_DOB], &b.filters[F_DOB]), Some(1.0));
        assert_eq!(a.blocks, b.blocks);
        // another secret gives unrelated filters
        let c = encode(
            &id("渡邊 花子", "ワタナベ ハナコ", "1980-04-05"),
            b"another-secret-0123456789",
            &p,
        )
        .unwrap();
        assert!(dice(&a.filters[F_NAME], &c.filters[F_NAME]).unwrap() < 0.5);
        // a typo keeps a high but not perfect Dice
        let d = encode(&id("渡辺花子", "ワタナベ ハナエ", "1980-04-05"), SECRET, &p).unwrap();
        let s = dice(&a.filters[F_NAME], &d.filters[F_NAME]).unwrap();
        assert!(s > 0.7 && s < 1.0, "{s}");
        assert_eq!(a.filters[F_NAME].len() * 64, p.bits);
    }

    #[test]
    fn bad_params_and_weak_secret_are_refused() {
        let i = id("山田太郎", "ヤマダタロウ", "1970-01-01");
        assert!(matches!(
            encode(&i, b"short", &ClkParams::default()),
            Err(PprlError::WeakSecret)
        ));
        let p = ClkParams {
            bits: 1000,
            ..ClkParams::default()
        };
        assert!(matches!(
            encode(&i, SECRET, &p),
            Err(PprlError::InvalidParams)
        ));
    }

    #[test]
    fn r_link_2_groups_never_merge_on_encodings() {
        let p = ClkParams::default();
        let mut recs = Vec::new();
        for (k, src) in ["A", "B", "C"].iter().enumerate() {
            recs.push(PprlRecord {
                registration_id: format!("{src}1"),
                source: src.to_string(),
                clk: encode(&id("山田 花子", "ヤマダ ハナコ", "1980-04-05"), SECRET, &p).unwrap(),
            });
            // fillers so that EM has non-matches
            for j in 0..30 {
                let mut f = id(
                    "佐藤 次郎",
                    "サトウ ジロウ",
                    &format!("19{:02}-0{}-1{}", 40 + j, 1 + k, j % 10),
                );
                f.name_kana = Some(format!("サトウ ジロウ{j}"));
                recs.push(PprlRecord {
                    registration_id: format!("{src}f{j}"),
                    source: src.to_string(),
                    clk: encode(&f, SECRET, &p).unwrap(),
                });
            }
        }
        let mut cfg = PprlConfig::default();
        let r = link_encoded(&recs, &cfg).unwrap();
        assert_eq!(r.clusters["A1"], r.clusters["B1"]);
        assert_eq!(r.clusters["A1"], r.clusters["C1"]);
        cfg.groups.insert("B1".into(), "ineligible".into());
        cfg.groups.insert("A1".into(), "eligible".into());
        let r = link_encoded(&recs, &cfg).unwrap();
        assert_ne!(r.clusters["A1"], r.clusters["B1"]);
        assert!(r.blocked_merges >= 1);
    }
}
