//! The coded items of a release: what each code of each coded table is released as.
//!
//! Two models, both through `kiban_anon::setvalued` (one search, one checker):
//! - **longitudinal** (issue 13 item 5): over the spec's item tables (diagnoses, drugs,
//!   procedures by default), (k, k^m)-anonymity — every combination of a person's released
//!   quasi-identifiers with any m of their released codes is held by at least k persons. An
//!   attacker who knows someone's demographics and a few of their diagnoses can otherwise
//!   single them out (92 % of persons were unique on QIs + ICD-10 set). Codes climb their
//!   hierarchy (ICD-10 → category → chapter → 「その他」, YJ → ingredient → class, JLAC10 →
//!   analyte), single occurrences are suppressed where climbing is dearer. A code of another
//!   table given almost only to holders of a hidden code climbs too (a drug given only for a
//!   suppressed disease names it).
//! - **rare codes** (R-ANON-4) for every other coded table (measurements, observations…):
//!   the same search with m = 1 over one class, so every released code is held by at least
//!   `codes.rare_min_persons` persons.
//!
//! Items are counted on released persons only (after the person-level k-anonymity) and
//! addressed by integers: the collector interns each table's codes once.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;

use arrow::array::{Array, Date32Array, RecordBatch, StringArray};
use chrono::Datelike;
use kiban_anon::Hierarchy;
use kiban_anon::hierarchy::{icd10, jlac10, yj_code};
use kiban_anon::setvalued::{
    DEFAULT_IMPLICATION_SHARE, ItemForest, ItemSets, KmInput, KmSolution, KmUtility, km_anonymize,
    km_violations,
};
use kiban_model::Table;
use kiban_model::batch::days_to_date;
use serde::Serialize;

use crate::ReleaseError;
use crate::person::engine;

/// The released label of a hierarchy's top.
pub(crate) const OTHER: &str = "その他";

/// The codes of one table, interned, and the (person, code) pairs seen.
#[derive(Default)]
pub(crate) struct TableCodes {
    codes: Vec<String>,
    ids: hashbrown::HashMap<String, u32>,
    /// (released person index, code id), deduplicated when it has doubled.
    pairs: Vec<(u32, u32)>,
    mark: usize,
}

impl TableCodes {
    pub(crate) fn add(&mut self, person: u32, code: &str) {
        let id = match self.ids.get(code) {
            Some(id) => *id,
            None => {
                let id = self.codes.len() as u32;
                self.codes.push(code.to_string());
                self.ids.insert(code.to_string(), id);
                id
            }
        };
        self.pairs.push((person, id));
        if self.pairs.len() >= self.mark.max(1 << 20) {
            self.pairs.sort_unstable();
            self.pairs.dedup();
            self.mark = self.pairs.len() * 2;
        }
    }

    pub(crate) fn id(&self, code: &str) -> Option<u32> {
        self.ids.get(code).copied()
    }

    fn finish(&mut self) {
        self.pairs.sort_unstable();
        self.pairs.dedup();
    }
}

/// What one code of one table is released as.
pub(crate) struct TablePlan {
    /// The table's codes (their ids; the pairs are dropped once the models are solved).
    codes: TableCodes,
    /// Code id → released label (`None`: suppressed for everyone).
    label: Vec<Option<String>>,
    /// (released person, code id) occurrences suppressed, sorted.
    suppressed: Vec<(u32, u32)>,
}

impl TablePlan {
    /// The label the code of a released person's row is released as; `None` suppresses it.
    pub(crate) fn released(&self, person: u32, code: &str) -> Option<&str> {
        let id = self.codes.id(code)?;
        if self.suppressed.binary_search(&(person, id)).is_ok() {
            return None;
        }
        self.label.get(id as usize)?.as_deref()
    }
}

/// The longitudinal model's figures, for the manifest and the risk report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LongitudinalReport {
    /// The attacker's knowledge: up to m codes of a person (0: the model is off).
    pub m: u32,
    pub k: u32,
    pub item_tables: Vec<String>,
    /// (QI class, ≤ m codes) combinations held by 1..k−1 released persons, counted on the
    /// released values by the independent checker. A release is refused unless it is 0.
    pub violations: u64,
    pub persons_affected: u64,
    /// Codes climbed because a hidden code of another table is implied by them.
    pub implied_climbs: u64,
    pub utility: Option<KmUtility>,
    /// Minimum persons per released code in the other coded tables (R-ANON-4).
    pub rare_min_persons: u32,
    pub rare_tables: Vec<String>,
    pub rare_utility: Option<KmUtility>,
    /// Released persons measured.
    pub persons: u64,
    /// Persons unique on their released QI values + their set of released diagnosis codes
    /// (what an attacker who knows all of someone's diagnoses can single out), counted on
    /// the written files.
    pub sample_uniques: u64,
    /// … + the released codes of every coded table.
    pub sample_uniques_all_items: u64,
    /// … on QI values + the set of months with a released visit (as released).
    pub sample_uniques_visit_months: u64,
    /// … on QI values + all codes + visit months.
    pub sample_uniques_everything: u64,
}

/// Each released person's set of values of one column of one written table (codes, visit
/// months), reduced to a 64-bit digest, read off the written output — sorted by pseudonym, so
/// a person's rows are adjacent — so that the risk report measures exactly what is released.
pub(crate) struct SetDigest {
    column: &'static str,
    table: Table,
    current: Option<usize>,
    /// Where the next person's index is searched from (persons come in index order).
    from: usize,
    values: Vec<u64>,
    out: Vec<u64>,
}

impl SetDigest {
    pub(crate) fn new(column: &'static str, table: Table, persons: usize) -> SetDigest {
        SetDigest {
            column,
            table,
            current: None,
            from: 0,
            values: Vec::new(),
            out: vec![0; persons],
        }
    }

    /// Reads one written batch; `index_of(pseudonym, from)` gives a pseudonym's released
    /// index, searching from `from`. The output is sorted by pseudonym, so the index is looked
    /// up once per run of a person's rows, each search starting where the last one ended.
    pub(crate) fn observe(
        &mut self,
        batch: &RecordBatch,
        index_of: &dyn Fn(&str, usize) -> Option<usize>,
    ) -> Result<(), ReleaseError> {
        let missing = |c: &str| ReleaseError::Store(format!("{}: column {c} missing", self.table));
        let ids = batch
            .column_by_name("person_id")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .ok_or_else(|| missing("person_id"))?;
        let col = batch
            .column_by_name(self.column)
            .ok_or_else(|| missing(self.column))?;
        let text = col.as_any().downcast_ref::<StringArray>();
        let dates = col.as_any().downcast_ref::<Date32Array>();
        for i in 0..batch.num_rows() {
            if i == 0 || ids.value(i) != ids.value(i - 1) {
                let r = index_of(ids.value(i), self.from);
                if let Some(r) = r {
                    self.from = r + 1;
                }
                if r != self.current {
                    self.flush();
                    self.current = r;
                }
            }
            let v = if let Some(t) = text {
                (!t.is_null(i)).then(|| hash_of(t.value(i).as_bytes()))
            } else if let Some(d) = dates {
                (!d.is_null(i))
                    .then(|| days_to_date(d.value(i)))
                    .flatten()
                    .map(|d| (d.year() * 12 + d.month0() as i32) as u64)
            } else {
                None
            };
            if let Some(v) = v {
                self.values.push(v);
            }
        }
        Ok(())
    }

    fn flush(&mut self) {
        if let Some(r) = self.current
            && !self.values.is_empty()
        {
            self.values.sort_unstable();
            self.values.dedup();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for v in &self.values {
                h.write_u64(*v);
            }
            self.out[r] = h.finish() | 1;
        }
        self.values.clear();
    }

    pub(crate) fn finish(mut self) -> (Table, Vec<u64>) {
        self.flush();
        (self.table, self.out)
    }
}

/// SplitMix64's finalizer: a cheap bijective mix of 64 bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A stable 64-bit hash (SipHash with fixed keys: the same in every run).
fn hash_of(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// Uniqueness of released persons on their released QI values and longitudinal attributes —
/// whole sets, not only m of them: how far the (k, k^m) guarantee is from a guarantee against
/// an attacker who knows a whole history.
pub(crate) fn measure_uniqueness(
    report: &mut LongitudinalReport,
    classes: &[u32],
    digests: &[(Table, Vec<u64>)],
) {
    let persons = classes.len();
    let of = |t: Table, r: usize| {
        digests
            .iter()
            .find(|(d, _)| *d == t)
            .and_then(|(_, v)| v.get(r).copied())
            .unwrap_or(0)
    };
    let all = |r: usize| {
        digests
            .iter()
            .filter(|(t, _)| *t != Table::VisitOccurrence)
            .fold(0u64, |acc, (t, v)| {
                // Tables apart, order-free: one mixed term per table.
                let d = v.get(r).copied().unwrap_or(0);
                acc.wrapping_add(mix(d ^ (*t as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            })
    };
    let uniques = |key: &dyn Fn(usize) -> (u64, u64)| {
        let keys: Vec<(u32, u64, u64)> = (0..persons)
            .map(|r| {
                let (a, b) = key(r);
                (classes[r], a, b)
            })
            .collect();
        let mut counts: HashMap<(u32, u64, u64), u32> = HashMap::new();
        for k in &keys {
            *counts.entry(*k).or_default() += 1;
        }
        keys.iter().filter(|k| counts[*k] == 1).count() as u64
    };
    report.persons = persons as u64;
    report.sample_uniques = uniques(&|r| (of(Table::ConditionOccurrence, r), 0));
    report.sample_uniques_all_items = uniques(&|r| (all(r), 0));
    report.sample_uniques_visit_months = uniques(&|r| (of(Table::VisitOccurrence, r), 0));
    report.sample_uniques_everything = uniques(&|r| (all(r), of(Table::VisitOccurrence, r)));
}

/// Builds a table's code hierarchies: codes of a known shape climb their standard
/// hierarchy, any other code forms a kind of its own that can only go to the top.
fn hierarchies(table: Table, codes: &[String]) -> Result<Vec<(Hierarchy, Vec<u32>)>, ReleaseError> {
    let (standard, other): (Vec<u32>, Vec<u32>) =
        (0..codes.len() as u32).partition(|&c| standard_shape(table, &codes[c as usize]));
    let mut out = Vec::new();
    if !standard.is_empty() {
        let refs: Vec<&str> = standard
            .iter()
            .map(|&c| codes[c as usize].as_str())
            .collect();
        let name = format!("{}:standard", table.name());
        let h = match table {
            Table::ConditionOccurrence => icd10(&name, &refs, &[]),
            Table::DrugExposure => yj_code(&name, &refs),
            Table::Measurement => jlac10(&name, &refs),
            _ => flat(&name, &refs),
        }
        .map_err(engine)?;
        out.push((h, standard));
    }
    if !other.is_empty() {
        let refs: Vec<&str> = other.iter().map(|&c| codes[c as usize].as_str()).collect();
        let h = flat(&format!("{}:other", table.name()), &refs).map_err(engine)?;
        out.push((h, other));
    }
    Ok(out)
}

/// A one-level hierarchy: each code, then the top.
fn flat(name: &str, codes: &[&str]) -> Result<Hierarchy, kiban_anon::AnonError> {
    let mut seen = std::collections::HashSet::new();
    let rows = codes
        .iter()
        .filter(|c| seen.insert(**c))
        .map(|c| vec![c.to_string(), "*".to_string()])
        .collect();
    Hierarchy::from_rows(name, rows)
}

/// Whether a code has the shape of its table's standard code system (ICD-10, YJ, JLAC10).
fn standard_shape(table: Table, code: &str) -> bool {
    let alnum = |n: usize| code.len() == n && code.bytes().all(|b| b.is_ascii_alphanumeric());
    match table {
        Table::ConditionOccurrence => icd10("icd10", &[code], &[]).is_ok(),
        Table::DrugExposure => alnum(12),
        Table::Measurement => alnum(17),
        _ => false,
    }
}

/// One model run over a group of tables: the tables' codes as kinds of one forest.
struct Group {
    tables: Vec<Table>,
    forest: ItemForest,
    /// Per table: code id → leaf item id.
    leaf_of: Vec<Vec<u32>>,
    sets: ItemSets,
}

fn group(persons: usize, tables: &[(Table, &TableCodes)]) -> Result<Option<Group>, ReleaseError> {
    let mut hs = Vec::new();
    let mut kinds_of: Vec<Vec<(usize, Vec<u32>)>> = Vec::new();
    for (t, c) in tables {
        let mut kinds = Vec::new();
        for (h, members) in hierarchies(*t, &c.codes)? {
            kinds.push((hs.len(), members));
            hs.push(h);
        }
        kinds_of.push(kinds);
    }
    if hs.is_empty() {
        return Ok(None);
    }
    let forest = ItemForest::from_hierarchies(hs).map_err(engine)?;
    let mut leaf_of = Vec::new();
    for ((_, c), kinds) in tables.iter().zip(&kinds_of) {
        let mut map = vec![u32::MAX; c.codes.len()];
        for (kind, members) in kinds {
            for &m in members {
                map[m as usize] = forest.item(*kind, &c.codes[m as usize]).ok_or_else(|| {
                    ReleaseError::Spec("a code is missing from its own hierarchy".into())
                })?;
            }
        }
        leaf_of.push(map);
    }
    let mut lists: Vec<Vec<u32>> = vec![Vec::new(); persons];
    for ((_, c), map) in tables.iter().zip(&leaf_of) {
        for (p, id) in &c.pairs {
            lists[*p as usize].push(map[*id as usize]);
        }
    }
    for l in &mut lists {
        l.sort_unstable();
        l.dedup();
    }
    Ok(Some(Group {
        tables: tables.iter().map(|(t, _)| *t).collect(),
        forest,
        leaf_of,
        sets: ItemSets::from_lists(lists),
    }))
}

/// The plans of a group's tables from a solution.
fn plans(
    g: &Group,
    sol: &KmSolution,
    codes: &mut Vec<(Table, TableCodes)>,
) -> Vec<(Table, TablePlan)> {
    let mut leaf_back: HashMap<u32, (usize, u32)> = HashMap::new();
    for (ti, map) in g.leaf_of.iter().enumerate() {
        for (id, leaf) in map.iter().enumerate() {
            leaf_back.insert(*leaf, (ti, id as u32));
        }
    }
    let mut suppressed: Vec<Vec<(u32, u32)>> = vec![Vec::new(); g.tables.len()];
    for (p, leaf) in &sol.suppressed {
        if let Some((ti, id)) = leaf_back.get(leaf) {
            suppressed[*ti].push((*p, *id));
        }
    }
    let mut out = Vec::new();
    for (ti, t) in g.tables.iter().enumerate() {
        let Some(pos) = codes.iter().position(|(c, _)| c == t) else {
            continue;
        };
        let (_, mut c) = codes.swap_remove(pos);
        // The (person, code) pairs served the models; writing needs only the code ids.
        c.pairs = Vec::new();
        let label = g.leaf_of[ti]
            .iter()
            .map(|leaf| {
                let node = sol.recode.get(*leaf as usize).copied()?;
                Some(if g.forest.is_top(node) {
                    OTHER.to_string()
                } else {
                    g.forest.label(node).to_string()
                })
            })
            .collect();
        let mut s = std::mem::take(&mut suppressed[ti]);
        s.sort_unstable();
        out.push((
            *t,
            TablePlan {
                codes: c,
                label,
                suppressed: s,
            },
        ));
    }
    out
}

/// Solves both models. `classes` is each released person's QI class.
pub(crate) fn solve(
    mut collected: Vec<(Table, TableCodes)>,
    item_tables: &[Table],
    classes: &[u32],
    k: u32,
    m: u32,
    rare_min_persons: u32,
    suppression_weight: f64,
) -> Result<(BTreeMap<Table, TablePlan>, LongitudinalReport), ReleaseError> {
    for (_, c) in &mut collected {
        c.finish();
    }
    let persons = classes.len();
    let mut report = LongitudinalReport {
        m,
        k,
        rare_min_persons,
        ..LongitudinalReport::default()
    };
    let mut out = BTreeMap::new();
    let (items, rest): (Vec<Table>, Vec<Table>) = collected
        .iter()
        .map(|(t, _)| *t)
        .partition(|t| m > 0 && item_tables.contains(t));
    if !items.is_empty() {
        report.item_tables = items.iter().map(|t| t.name().to_string()).collect();
        let refs: Vec<(Table, &TableCodes)> = collected
            .iter()
            .filter(|(t, _)| items.contains(t))
            .map(|(t, c)| (*t, c))
            .collect();
        if let Some(g) = group(persons, &refs)? {
            let mut input = KmInput::new(k as usize, m as usize, &g.forest, classes, &g.sets);
            input.suppression_weight = suppression_weight;
            let mut sol = km_anonymize(&input).map_err(engine)?;
            // A code given almost only to holders of a hidden rare code of another table
            // (fewer than 10 k holders) climbs as well.
            report.implied_climbs = sol
                .climb_implied(&input, DEFAULT_IMPLICATION_SHARE, 10 * k as usize)
                .map_err(engine)? as u64;
            // The guarantee is counted again by the independent checker on what is released.
            let released = sol.released_sets(&g.sets);
            let v = km_violations(k as usize, m as usize, classes, &released).map_err(engine)?;
            report.violations = v.count as u64;
            report.persons_affected = v.persons_affected as u64;
            report.utility = Some(sol.utility.clone());
            out.extend(plans(&g, &sol, &mut collected));
        }
    }
    if rare_min_persons > 0 && !rest.is_empty() {
        report.rare_tables = rest.iter().map(|t| t.name().to_string()).collect();
        let refs: Vec<(Table, &TableCodes)> = collected
            .iter()
            .filter(|(t, _)| rest.contains(t))
            .map(|(t, c)| (*t, c))
            .collect();
        if let Some(g) = group(persons, &refs)? {
            let one = vec![0u32; persons];
            let mut input = KmInput::new(rare_min_persons as usize, 1, &g.forest, &one, &g.sets);
            input.suppression_weight = suppression_weight;
            let sol = km_anonymize(&input).map_err(engine)?;
            report.rare_utility = Some(sol.utility.clone());
            out.extend(plans(&g, &sol, &mut collected));
        }
    }
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(t: &mut TableCodes, person: u32, list: &[&str]) {
        for c in list {
            t.add(person, c);
        }
    }

    #[test]
    fn every_qi_class_and_pair_of_codes_is_held_by_k_persons() {
        // 12 persons in two QI classes; each has a common code and a rare one.
        let mut cond = TableCodes::default();
        let mut drug = TableCodes::default();
        for p in 0..12u32 {
            codes(
                &mut cond,
                p,
                &["E11.9", ["I10", "I21.0", "J45.9"][p as usize % 3]],
            );
            codes(&mut drug, p, &["396100XF1026"]);
        }
        codes(&mut cond, 3, &["E85.1"]); // one person: amyloidosis
        codes(&mut drug, 3, &["219004XF1020"]); // …and the drug given only for it
        let classes: Vec<u32> = (0..12).map(|p| p % 2).collect();
        let (plans, report) = solve(
            vec![
                (Table::ConditionOccurrence, cond),
                (Table::DrugExposure, drug),
            ],
            &[Table::ConditionOccurrence, Table::DrugExposure],
            &classes,
            3,
            2,
            0,
            1.0,
        )
        .expect("solve");
        assert_eq!(report.violations, 0);
        let c = &plans[&Table::ConditionOccurrence];
        assert_ne!(
            c.released(3, "E85.1"),
            Some("E85.1"),
            "the rare code is hidden"
        );
        let d = &plans[&Table::DrugExposure];
        assert_ne!(d.released(3, "219004XF1020"), Some("219004XF1020"));
        assert_eq!(d.released(0, "396100XF1026"), Some("396100XF1026"));
    }

    /// Issue 13 item 4 (R-ANON-4 across tables): a drug held by enough persons to pass the
    /// (k, k^m) model on its own, but given almost only to the holders of a disease code that
    /// the model hid, would name the disease: it climbs too.
    #[test]
    fn a_drug_given_almost_only_for_a_hidden_disease_climbs_with_it() {
        let mut cond = TableCodes::default();
        let mut drug = TableCodes::default();
        // 40 persons, one QI class; everybody has hypertension, so nobody is alone.
        for p in 0..40u32 {
            codes(&mut cond, p, &["I10"]);
        }
        // Amyloidosis E85.1: 4 persons (fewer than k = 5): hidden (climbs to E85 with E85.2).
        for p in 0..4u32 {
            codes(&mut cond, p, &["E85.1"]);
        }
        for p in 10..12u32 {
            codes(&mut cond, p, &["E85.2"]);
        }
        // Tafamidis: 5 persons — 4 of them the amyloidosis patients (80 %).
        for p in 0..5u32 {
            codes(&mut drug, p, &["219004XF1020"]);
        }
        // A common drug, given to half of everybody, stays as it is.
        for p in 0..20u32 {
            codes(&mut drug, p, &["214900XF1020"]);
        }
        let classes = vec![0u32; 40];
        let (plans, report) = solve(
            vec![
                (Table::ConditionOccurrence, cond),
                (Table::DrugExposure, drug),
            ],
            &[Table::ConditionOccurrence, Table::DrugExposure],
            &classes,
            5,
            1,
            0,
            1.0,
        )
        .expect("solve");
        assert_eq!(report.violations, 0);
        let c = &plans[&Table::ConditionOccurrence];
        assert_ne!(
            c.released(0, "E85.1"),
            Some("E85.1"),
            "the rare disease is hidden"
        );
        assert!(report.implied_climbs > 0, "{report:?}");
        let d = &plans[&Table::DrugExposure];
        assert_ne!(
            d.released(0, "219004XF1020"),
            Some("219004XF1020"),
            "the drug would name the hidden disease"
        );
        assert_eq!(d.released(0, "214900XF1020"), Some("214900XF1020"));
    }

    #[test]
    fn rare_codes_of_other_tables_reach_n_persons() {
        let mut lab = TableCodes::default();
        for p in 0..10u32 {
            codes(&mut lab, p, &["3D010000001926101"]);
        }
        codes(&mut lab, 4, &["3D046000002327101", "LOCAL-XYZ"]);
        let classes = vec![0u32; 10];
        let (plans, report) = solve(
            vec![(Table::Measurement, lab)],
            &[Table::ConditionOccurrence],
            &classes,
            5,
            2,
            5,
            1.0,
        )
        .expect("solve");
        assert!(report.item_tables.is_empty());
        assert_eq!(report.rare_tables, vec!["measurement".to_string()]);
        let m = &plans[&Table::Measurement];
        assert_eq!(
            m.released(0, "3D010000001926101"),
            Some("3D010000001926101")
        );
        assert_ne!(
            m.released(4, "3D046000002327101"),
            Some("3D046000002327101")
        );
        assert_ne!(m.released(4, "LOCAL-XYZ"), Some("LOCAL-XYZ"));
    }
}
