//! Person-level anonymization for longitudinal releases: one row of quasi-identifiers per
//! *person* (e.g. birth year, sex, prefecture, rare-code flags), so k-anonymity holds per
//! person however many events each person has (issue 6 §3). The release pipeline calls this.

use std::collections::HashSet;

use serde::Serialize;

use crate::AnonError;
use crate::hierarchy::Hierarchy;
use crate::search::{AnonymizeConfig, anonymize_table};
use crate::table::QiTable;

/// The chosen generalization for a set of persons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonSolution {
    /// (attribute, level) in hierarchy order.
    pub levels: Vec<(String, usize)>,
    pub information_loss: f64,
    /// Persons whose every quasi-identifier must be suppressed (or who must be left out).
    pub suppressed: HashSet<String>,
    pub classes: usize,
    pub transformations_checked: usize,
}

impl PersonSolution {
    /// The released label of `value` for attribute index `d` (None if not in the hierarchy).
    pub fn generalize<'h>(
        &self,
        hierarchies: &'h [Hierarchy],
        d: usize,
        value: &str,
    ) -> Option<&'h str> {
        hierarchies
            .get(d)?
            .generalize_str(value, self.levels.get(d)?.1)
    }
}

/// Finds the optimal levels for per-person QI tuples (`qi[d]` matches `hierarchies[d]`) and
/// the persons to suppress. Person IDs must be unique; errors never contain IDs or values.
pub fn anonymize_persons(
    persons: &[(String, Vec<String>)],
    hierarchies: Vec<Hierarchy>,
    cfg: &AnonymizeConfig,
) -> Result<PersonSolution, AnonError> {
    let names: Vec<String> = hierarchies.iter().map(|h| h.name().to_string()).collect();
    let mut table = QiTable::new(hierarchies)?;
    let mut seen = HashSet::with_capacity(persons.len());
    for (i, (id, qi)) in persons.iter().enumerate() {
        if !seen.insert(id.as_str()) {
            return Err(AnonError::Table {
                path: "<persons>".into(),
                line: i + 1,
                reason: "duplicate person".into(),
            });
        }
        let refs: Vec<&str> = qi.iter().map(|s| s.as_str()).collect();
        table.push_row(&refs, None).map_err(|e| match e {
            AnonError::Table { reason, .. } => AnonError::Table {
                path: "<persons>".into(),
                line: i + 1,
                reason,
            },
            other => other,
        })?;
    }
    let sol = anonymize_table(&table, cfg)?;
    Ok(PersonSolution {
        levels: names.into_iter().zip(sol.levels.iter().copied()).collect(),
        information_loss: sol.information_loss,
        suppressed: sol
            .suppressed_rows
            .iter()
            .map(|r| persons[*r].0.clone())
            .collect(),
        classes: sol.classes,
        transformations_checked: sol.transformations_checked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hierarchy::age_intervals;

    #[test]
    fn r_anon_5_person_level_k_anonymity() {
        let age = age_intervals("birth_age", 0, 99, &[10, 50], Some(90)).unwrap();
        let sex = Hierarchy::from_rows(
            "sex",
            vec![vec!["M".into(), "*".into()], vec!["F".into(), "*".into()]],
        )
        .unwrap();
        let mut persons = Vec::new();
        for i in 0..40u32 {
            let a = 20 + (i % 30);
            persons.push((
                format!("p{i}"),
                vec![
                    a.to_string(),
                    if i % 2 == 0 { "M" } else { "F" }.to_string(),
                ],
            ));
        }
        persons.push(("outlier".into(), vec!["97".into(), "F".into()]));
        let hs = vec![age, sex];
        let cfg = AnonymizeConfig::k_anonymity(3, 0.05);
        let sol = anonymize_persons(&persons, hs.clone(), &cfg).unwrap();
        // decade × sex gives classes ≥ 3 for the regular persons; the 97-year-old is alone
        // in 「90歳以上」 and is suppressed rather than generalizing everyone.
        assert_eq!(
            sol.levels,
            vec![("birth_age".to_string(), 1), ("sex".to_string(), 0)]
        );
        assert_eq!(sol.suppressed, HashSet::from(["outlier".to_string()]));
        assert_eq!(sol.generalize(&hs, 0, "43"), Some("40-49"));
        // every kept class has ≥ 3 persons
        let mut counts = std::collections::HashMap::new();
        for (id, qi) in &persons {
            if sol.suppressed.contains(id) {
                continue;
            }
            let key = (
                sol.generalize(&hs, 0, &qi[0]).unwrap(),
                sol.generalize(&hs, 1, &qi[1]).unwrap(),
            );
            *counts.entry(key).or_insert(0) += 1;
        }
        assert!(counts.values().all(|c| *c >= 3));
        let dup = vec![("a".to_string(), vec!["1".to_string(), "M".to_string()]); 2];
        assert!(matches!(
            anonymize_persons(&dup, hs, &cfg),
            Err(AnonError::Table { line: 2, .. })
        ));
    }
}
