//! Rare-value handling (R-ANON-4, 特異な記述): a code held by fewer than N distinct persons
//! is replaced by its lowest hierarchy ancestor that is held by at least N persons (a rare
//! disease becomes its ICD-10 category, then its chapter, then 「その他」/`*`), or suppressed
//! when even the top level is too rare. Counting is by *persons*, not events, because one
//! patient with many visits must not make a rare code look common.

use std::collections::{HashMap, HashSet};

use crate::AnonError;
use crate::hierarchy::Hierarchy;

/// Replacement of each observed code.
#[derive(Debug, Clone, PartialEq)]
pub struct RareValueMap {
    /// code → Some(released label) or None (suppress).
    map: HashMap<String, Option<String>>,
    /// Codes replaced by an ancestor label.
    pub generalized: usize,
    /// Codes suppressed (too rare at every level, or not in the hierarchy).
    pub suppressed: usize,
}

impl RareValueMap {
    /// The released form of `code`: `Some(label)` (possibly the code itself) or `None` when it
    /// must be suppressed. Codes never observed are suppressed too (they were not assessed).
    pub fn apply(&self, code: &str) -> Option<&str> {
        self.map.get(code).and_then(|v| v.as_deref())
    }
}

/// Builds the replacement map from (person, code) occurrences.
pub fn rare_value_map<'a>(
    hierarchy: &Hierarchy,
    occurrences: impl IntoIterator<Item = (&'a str, &'a str)>,
    min_persons: usize,
) -> Result<RareValueMap, AnonError> {
    if min_persons == 0 {
        return Err(AnonError::Config("min_persons must be at least 1".into()));
    }
    let mut per_leaf: HashMap<u32, HashSet<&'a str>> = HashMap::new();
    let mut unknown: HashSet<&'a str> = HashSet::new();
    for (person, code) in occurrences {
        match hierarchy.leaf_code(code) {
            Some(leaf) => {
                per_leaf.entry(leaf).or_default().insert(person);
            }
            None => {
                unknown.insert(code);
            }
        }
    }
    // persons per (level, label): union of the leaves below
    let mut per_label: Vec<HashMap<u32, HashSet<&'a str>>> =
        vec![HashMap::new(); hierarchy.levels()];
    for (leaf, persons) in &per_leaf {
        for (l, m) in per_label.iter_mut().enumerate() {
            m.entry(hierarchy.generalize(*leaf, l))
                .or_default()
                .extend(persons.iter().copied());
        }
    }
    let mut out = RareValueMap {
        map: HashMap::new(),
        generalized: 0,
        suppressed: 0,
    };
    for leaf in per_leaf.keys() {
        let code = hierarchy.label(0, *leaf).to_string();
        let level = (0..hierarchy.levels()).find(|l| {
            per_label[*l]
                .get(&hierarchy.generalize(*leaf, *l))
                .is_some_and(|s| s.len() >= min_persons)
        });
        let released = match level {
            Some(0) => Some(code.clone()),
            Some(l) => {
                out.generalized += 1;
                Some(
                    hierarchy
                        .label(l, hierarchy.generalize(*leaf, l))
                        .to_string(),
                )
            }
            None => {
                out.suppressed += 1;
                None
            }
        };
        out.map.insert(code, released);
    }
    for code in unknown {
        out.suppressed += 1;
        out.map.insert(code.to_string(), None);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hierarchy::icd10;

    #[test]
    fn r_anon_4_rare_codes_climb_the_hierarchy_by_person_count() {
        let h = icd10("dx", &["E11.9", "E11.2", "E10.1", "Q87.4", "I21.0"], &[]).unwrap();
        let mut occ: Vec<(String, String)> = Vec::new();
        for p in 0..5 {
            occ.push((format!("p{p}"), "E11.9".into()));
        }
        // E11.2: 2 persons → category E11 has ≥ 3 persons
        occ.push(("p0".into(), "E11.2".into()));
        occ.push(("p9".into(), "E11.2".into()));
        // E10.1: one person with many events → E10 (1 person) → chapter IV (≥ 3)
        for _ in 0..20 {
            occ.push(("p7".into(), "E10.1".into()));
        }
        // Q87.4 (Marfan): one person → Q87 → chapter XVII, still 1 → '*' needs ≥ 3 persons overall
        occ.push(("p8".into(), "Q87.4".into()));
        occ.push(("p1".into(), "ZZZ".into()));
        let refs: Vec<(&str, &str)> = occ.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let m = rare_value_map(&h, refs, 3).unwrap();
        assert_eq!(m.apply("E11.9"), Some("E11.9"));
        assert_eq!(m.apply("E11.2"), Some("E11"));
        assert_eq!(m.apply("E10.1"), Some("Chapter IV"));
        assert_eq!(m.apply("Q87.4"), Some("*"));
        assert_eq!(
            m.apply("ZZZ"),
            None,
            "codes outside the hierarchy are suppressed"
        );
        assert_eq!(m.apply("I21.0"), None, "never observed");
        assert_eq!((m.generalized, m.suppressed), (3, 1));
        // with a threshold above the population, everything is suppressed
        let refs: Vec<(&str, &str)> = occ.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let m = rare_value_map(&h, refs, 100).unwrap();
        assert_eq!(m.apply("E11.9"), None);
        assert!(rare_value_map(&h, Vec::<(&str, &str)>::new(), 0).is_err());
    }
}
