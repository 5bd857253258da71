//! Blocking: which pairs are compared at all.
//!
//! Every rule maps a record to a few 64-bit keys built from interned ids; records sharing a
//! key are candidates. Each rule combines two pieces of evidence (a name with part of the
//! birth date, a birth date with part of the name, a postal code with the birth year …), so
//! blocks stay small on realistic populations — where a common full name alone (田中 実)
//! is shared by thousands — while a true pair is lost only if it disagrees on every rule.
//! Candidates are produced as packed integers, sorted in parallel and merged, with the set
//! of rules that produced each pair kept for the per-rule EM sessions.

use rayon::prelude::*;

use crate::compare::{C_ADDR, C_DOB, C_INS, C_NAME, C_PHONE, C_POSTAL, Name, Rec, dob_parts};
use crate::intern::Strs;

/// Rule names, in the order of the bits of a candidate's rule set.
pub(crate) const RULES: [&str; 9] = [
    "full_name+birth_year",
    "full_name+birth_month_day",
    "full_name+place",
    "birth_date+name_part",
    "phone",
    "insured_number",
    "postal_code+birth_year",
    "address (municipality+street)",
    "postal_code+name_part",
];

/// Comparisons a rule's key determines: masked when training m on that rule's pairs
/// (Splink's rule: a field used to select pairs says nothing about them).
pub(crate) const RULE_MASK: [&[usize]; 9] = [
    &[C_NAME, C_DOB],
    &[C_NAME, C_DOB],
    &[C_NAME, C_ADDR, C_POSTAL],
    &[C_NAME, C_DOB],
    &[C_PHONE],
    &[C_INS],
    &[C_POSTAL, C_DOB],
    &[C_ADDR],
    &[C_POSTAL, C_NAME],
];

/// Largest record count the packed pair format holds (28 bits per record index).
pub(crate) const MAX_RECORDS: usize = 1 << 28;

fn mix(mut h: u64, x: u64) -> u64 {
    h ^= x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

fn key(parts: &[u64]) -> u64 {
    parts.iter().fold(0x6b69_6261_6e00_0000, |h, &x| mix(h, x))
}

/// The birth date with day and month unordered (a transposition keeps the key).
fn dob_unordered(d: u32) -> u64 {
    let (y, m, dd) = dob_parts(d);
    (u64::from(y) << 10) | (u64::from(m.min(dd)) << 5) | u64::from(m.max(dd))
}

/// Pieces of a name that survive a typo or a change in the other half: the first and last
/// two characters of the full name (about the family and the given name whether or not the
/// source separated them: two-character family and given names dominate) and, for Latin
/// names, the family and given name. Pieces carry no position, so swapped family/given
/// names still share a key.
fn name_pieces(strs: &Strs, script: usize, n: &Name) -> ([u64; 4], usize) {
    let mut out = [0u64; 4];
    let mut k = 0;
    // Latin-alphabet sources swap family and given names (FEBRL does): their parts are
    // pieces too; Japanese names keep their order, and their two-character ends suffice
    if script == 2 && n.split {
        out[0] = (1 << 63) | u64::from(n.fam);
        out[1] = (1 << 63) | u64::from(n.giv);
        k = 2;
    }
    let cs = strs.get(n.full);
    if cs.len() >= 2 {
        let two = |a: char, b: char| (u64::from(a as u32) << 21) | u64::from(b as u32);
        out[k] = two(cs[0], cs[1]);
        out[k + 1] = two(cs[cs.len() - 2], cs[cs.len() - 1]);
        k += 2;
    }
    (out, k)
}

/// Collects a record's keys as (key, record) entries.
struct KeySink<'a>(&'a mut Vec<(u64, u32)>, u32);

impl KeySink<'_> {
    fn push(&mut self, key: u64) {
        self.0.push((key, self.1));
    }
}

#[allow(clippy::collapsible_match)] // one arm per rule reads better than guards
fn rule_keys(strs: &Strs, r: &Rec, rule: usize, out: &mut KeySink<'_>) {
    let rule_id = rule as u64;
    let dob = (r.dob != 0).then(|| dob_parts(r.dob));
    match rule {
        0 | 1 => {
            if let Some((y, m, d)) = dob {
                for (k, n) in r.names.iter().enumerate() {
                    if n.full != 0 {
                        let when = if rule == 0 {
                            u64::from(y)
                        } else {
                            (u64::from(m.min(d)) << 5) | u64::from(m.max(d))
                        };
                        out.push(key(&[rule_id, k as u64, u64::from(n.full), when]));
                    }
                }
            }
        }
        2 => {
            // name with a coarse place: for registrations without a birth date
            let postal = strs.get(r.postal);
            let area = (postal.len() >= 3).then(|| {
                postal[..3]
                    .iter()
                    .fold(0u64, |a, c| (a << 8) | u64::from(*c as u32 & 0xff))
            });
            for (k, n) in r.names.iter().enumerate() {
                if n.full != 0 {
                    if r.city != 0 {
                        out.push(key(&[
                            rule_id,
                            k as u64,
                            0,
                            u64::from(n.full),
                            u64::from(r.city),
                        ]));
                    }
                    // the postal area as well where a typo in the municipality is common
                    // (Latin localities) or the municipality is missing
                    if let Some(a) = area.filter(|_| r.city == 0 || k == 2) {
                        out.push(key(&[rule_id, k as u64, 1, u64::from(n.full), a]));
                    }
                }
            }
        }
        3 => {
            if r.dob != 0 {
                let d = dob_unordered(r.dob);
                for (k, n) in r.names.iter().enumerate() {
                    let (pieces, len) = name_pieces(strs, k, n);
                    for p in &pieces[..len] {
                        out.push(key(&[rule_id, k as u64, *p, d]));
                    }
                }
            }
        }
        4 => {
            if strs.get(r.phone).len() >= 4 {
                out.push(key(&[rule_id, u64::from(r.phone)]));
            }
        }
        5 => {
            if r.insured != 0 {
                out.push(key(&[rule_id, u64::from(r.insured)]));
            }
        }
        6 => {
            if let (true, Some((y, _, _))) = (r.postal != 0, dob) {
                out.push(key(&[rule_id, u64::from(r.postal), u64::from(y)]));
            }
        }
        7 => {
            if r.street != 0 {
                out.push(key(&[rule_id, u64::from(r.city), u64::from(r.street)]));
            }
        }
        8 => {
            if r.postal != 0 {
                for (k, n) in r.names.iter().enumerate() {
                    let (pieces, len) = name_pieces(strs, k, n);
                    for p in &pieces[..len] {
                        out.push(key(&[rule_id, k as u64, *p, u64::from(r.postal)]));
                    }
                }
            }
        }
        _ => {}
    }
}

/// What blocking found.
pub(crate) struct Candidates {
    /// `(a << 32) | b` with a < b, sorted.
    pub pairs: Vec<u64>,
    /// The rules (bits) that produced each pair.
    pub rules: Vec<u16>,
    pub per_rule: Vec<usize>,
    pub oversized: usize,
}

/// Candidate pairs (sorted, each with the rules that produced it). Only pairs with at least one record at index ≥ `new_from` are produced
/// (0: all pairs); incremental runs block the new records against the existing ones this way.
pub(crate) fn candidates(
    strs: &Strs,
    recs: &[Rec],
    within_source: bool,
    max_block: usize,
    new_from: u32,
) -> Candidates {
    // the pairs found so far, sorted, with their rule bits: each rule's pairs are sorted
    // and merged in, so at no time are all rules' (largely overlapping) pairs held at once
    let mut pairs: Vec<u64> = Vec::new();
    let mut rules: Vec<u16> = Vec::new();
    let mut per_rule = vec![0usize; RULES.len()];
    let mut oversized = 0;
    for rule in 0..RULES.len() {
        let mut entries: Vec<(u64, u32)> = recs
            .par_iter()
            .enumerate()
            .fold(Vec::new, |mut acc, (i, r)| {
                let start = acc.len();
                rule_keys(strs, r, rule, &mut KeySink(&mut acc, i as u32));
                acc[start..].sort_unstable();
                let mut k = start;
                for x in start..acc.len() {
                    if x == start || acc[x].0 != acc[k - 1].0 {
                        acc[k] = acc[x];
                        k += 1;
                    }
                }
                acc.truncate(k);
                acc
            })
            .flatten()
            .collect();
        entries.par_sort_unstable();
        let blocks: Vec<&[(u64, u32)]> = entries
            .chunk_by(|x, y| x.0 == y.0)
            .filter(|b| b.len() >= 2)
            .collect();
        oversized += blocks.iter().filter(|b| b.len() > max_block).count();
        let mut found: Vec<u64> = blocks
            .par_iter()
            .filter(|b| b.len() <= max_block)
            .filter(|b| new_from == 0 || b.iter().any(|e| e.1 >= new_from))
            .fold(Vec::new, |mut acc, block| {
                for (x, &(_, i)) in block.iter().enumerate() {
                    for &(_, j) in &block[x + 1..] {
                        if (i >= new_from || j >= new_from)
                            && (within_source || recs[i as usize].src != recs[j as usize].src)
                        {
                            // entries are sorted by (key, index): i < j
                            acc.push((u64::from(i) << 32) | u64::from(j));
                        }
                    }
                }
                acc
            })
            .flatten()
            .collect();
        drop(blocks);
        drop(entries);
        found.par_sort_unstable();
        found.dedup();
        per_rule[rule] = found.len();
        let bit = 1u16 << rule;
        let (mut p2, mut r2) = (
            Vec::with_capacity(pairs.len() + found.len()),
            Vec::with_capacity(pairs.len() + found.len()),
        );
        let (mut x, mut y) = (0, 0);
        while x < pairs.len() || y < found.len() {
            if y == found.len() || (x < pairs.len() && pairs[x] < found[y]) {
                p2.push(pairs[x]);
                r2.push(rules[x]);
                x += 1;
            } else if x == pairs.len() || found[y] < pairs[x] {
                p2.push(found[y]);
                r2.push(bit);
                y += 1;
            } else {
                p2.push(pairs[x]);
                r2.push(rules[x] | bit);
                x += 1;
                y += 1;
            }
        }
        pairs = p2;
        rules = r2;
    }
    pairs.shrink_to_fit();
    rules.shrink_to_fit();
    Candidates {
        pairs,
        rules,
        per_rule,
        oversized,
    }
}
