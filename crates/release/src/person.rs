//! Person-level quasi-identifiers and their generalization (R-ANON-5).
//!
//! A longitudinal release has many rows per person, so k-anonymity must hold per *person*:
//! each person contributes one tuple of quasi-identifiers (birth, sex, prefecture), the
//! tuples are generalized together, and persons left in classes smaller than k are
//! suppressed with all their rows.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use kiban_model::batch::{date_to_days, days_to_date};

use crate::ReleaseError;
use crate::population::{Demographics, Population};
use crate::spec::{Birth, Spec};
use kiban_anon::{AnonymizeConfig, Hierarchy, QiTable, anonymize_table};
use kiban_model::geo::region_of;

/// One person's quasi-identifier values at level 0. The values are shared (`Arc<str>`,
/// interned by [`QiDict`]): a 10 M-person release has only a few thousand distinct values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonQi {
    pub birth: Arc<str>,
    pub sex: Arc<str>,
    pub prefecture: Arc<str>,
}

impl PersonQi {
    pub fn new(spec: &Spec, d: &Demographics, on: NaiveDate, shift: i32) -> PersonQi {
        PersonQi {
            birth: birth_value(spec, d, on, shift).into(),
            sex: d.sex.code().into(),
            prefecture: d.prefecture.as_deref().unwrap_or_default().into(),
        }
    }

    pub(crate) fn get(&self, qi: &str) -> &str {
        match qi {
            "birth_year" => &self.birth,
            "sex" => &self.sex,
            _ => &self.prefecture,
        }
    }
}

/// Interns quasi-identifier values so that persons share them.
#[derive(Default)]
pub(crate) struct QiDict(HashSet<Arc<str>>);

impl QiDict {
    fn value(&mut self, v: &str) -> Arc<str> {
        if let Some(a) = self.0.get(v) {
            return a.clone();
        }
        let a: Arc<str> = v.into();
        self.0.insert(a.clone());
        a
    }

    /// The level-0 values of person `person` of `pop`.
    pub(crate) fn person(
        &mut self,
        spec: &Spec,
        pop: &Population,
        person: u32,
        on: NaiveDate,
        shift: i32,
    ) -> PersonQi {
        let d = pop.demographics(person);
        PersonQi {
            birth: self.value(&birth_value(spec, &d, on, shift)),
            sex: self.value(d.sex.code()),
            prefecture: self.value(pop.prefecture(person).unwrap_or_default()),
        }
    }
}

/// Number of generalization levels of a quasi-identifier (level 0 included).
fn levels(qi: &str) -> usize {
    match qi {
        // value → 5-year band → 10-year band → *
        "birth_year" => 4,
        // value → *
        "sex" => 2,
        // prefecture → region → *
        _ => 3,
    }
}

/// A value of `qi` generalized to `level`.
pub fn generalize(qi: &str, value: &str, level: usize) -> String {
    if value.is_empty() {
        // Unknown stays unknown, and joins everybody at the top of the hierarchy.
        return if level + 1 >= levels(qi) {
            "*".into()
        } else {
            String::new()
        };
    }
    if level == 0 {
        return value.to_string();
    }
    match qi {
        "birth_year" => {
            if level >= 3 || value.starts_with("<=") {
                // A top-coded value is already as coarse as the bands.
                return if level >= 3 { "*".into() } else { value.into() };
            }
            let Some(year) = value.get(..4).and_then(|y| y.parse::<i32>().ok()) else {
                return "*".into();
            };
            let width = if level == 1 { 5 } else { 10 };
            let lo = year - year.rem_euclid(width);
            format!("{lo}-{}", lo + width - 1)
        }
        "sex" => "*".into(),
        _ => {
            if level >= 2 {
                "*".into()
            } else {
                region_of(value).unwrap_or("*").to_string()
            }
        }
    }
}

/// The chosen transformation.
#[derive(Debug, Clone)]
pub struct Solution {
    /// Level per quasi-identifier, in the spec's order.
    pub levels: Vec<usize>,
    /// Indexes of suppressed persons.
    pub suppressed: HashSet<usize>,
    pub min_class: Option<u64>,
    /// The anonymization engine's information loss (ARX Loss metric) of the transformation.
    pub information_loss: Option<f64>,
    qis: Vec<String>,
}

impl Solution {
    fn level_of(&self, name: &str) -> usize {
        self.qis
            .iter()
            .position(|q| q == name)
            .map_or(0, |i| self.levels[i])
    }

    /// The released (birth, sex, prefecture) values of one person.
    pub fn values(&self, p: &PersonQi) -> [String; 3] {
        [
            generalize("birth_year", &p.birth, self.level_of("birth_year")),
            generalize("sex", &p.sex, self.level_of("sex")),
            generalize("prefecture", &p.prefecture, self.level_of("prefecture")),
        ]
    }

    /// [`Solution::values`] for many persons: each distinct value is generalized once.
    pub(crate) fn generalizer(&self) -> Generalizer<'_> {
        Generalizer {
            solution: self,
            cache: Default::default(),
        }
    }

    pub fn describe(&self, _spec: &Spec) -> BTreeMap<String, String> {
        self.qis
            .iter()
            .zip(&self.levels)
            .map(|(q, l)| (q.clone(), level_name(q, *l).to_string()))
            .collect()
    }
}

/// Generalizes persons' values with a cache per quasi-identifier (a release has millions of
/// persons but only hundreds of distinct values).
pub(crate) struct Generalizer<'a> {
    solution: &'a Solution,
    cache: [HashMap<Arc<str>, Arc<str>>; 3],
}

impl Generalizer<'_> {
    /// The released (birth, sex, prefecture) values of one person.
    pub(crate) fn values(&mut self, p: &PersonQi) -> [Arc<str>; 3] {
        let names = ["birth_year", "sex", "prefecture"];
        let values = [&p.birth, &p.sex, &p.prefecture];
        std::array::from_fn(|i| {
            if let Some(g) = self.cache[i].get(values[i]) {
                return g.clone();
            }
            let g: Arc<str> =
                generalize(names[i], values[i], self.solution.level_of(names[i])).into();
            self.cache[i].insert(values[i].clone(), g.clone());
            g
        })
    }
}

fn level_name(qi: &str, level: usize) -> &'static str {
    match (qi, level) {
        (_, 0) => "value",
        ("birth_year", 1) => "5-year band",
        ("birth_year", 2) => "10-year band",
        ("prefecture", 1) => "region",
        _ => "suppressed (*)",
    }
}

/// Chooses the generalization of the person-level quasi-identifiers with the least
/// information loss (ARX's Loss metric) that reaches k with at most `suppression_limit` of
/// persons suppressed, using the anonymization engine's optimal lattice search.
pub fn choose_generalization(spec: &Spec, persons: &[PersonQi]) -> Result<Solution, ReleaseError> {
    let qis = spec.person.quasi_identifiers.clone();
    // The longitudinal model's class size, or everybody in one class when fewer persons are
    // released; never below k.
    let k = (spec.qi_class_min() as usize)
        .min(persons.len())
        .max(spec.person.k as usize);
    if k == 0 || qis.is_empty() || persons.is_empty() {
        return Ok(Solution {
            levels: vec![0; qis.len()],
            suppressed: HashSet::new(),
            min_class: None,
            information_loss: None,
            qis,
        });
    }
    let table = qi_table(&qis, persons, &[])?;
    let cfg = AnonymizeConfig::k_anonymity(k, spec.person.suppression_limit);
    let sol = match anonymize_table(&table, &cfg) {
        Ok(s) => s,
        Err(kiban_anon::AnonError::NoSolution) => {
            return Err(ReleaseError::PrivacyModel { k: k as u32 });
        }
        Err(e) => return Err(engine(e)),
    };
    let suppressed: HashSet<usize> = sol.suppressed_rows.iter().copied().collect();
    // The smallest released class, recomputed here rather than trusted (R-ANON-5).
    let partial = Solution {
        levels: sol.levels.clone(),
        suppressed: HashSet::new(),
        min_class: None,
        information_loss: None,
        qis: qis.clone(),
    };
    let mut g = partial.generalizer();
    let used: Vec<usize> = ["birth_year", "sex", "prefecture"]
        .iter()
        .enumerate()
        .filter(|(_, n)| qis.iter().any(|q| q == *n))
        .map(|(i, _)| i)
        .collect();
    let mut classes: HashMap<[Option<Arc<str>>; 3], u64> = HashMap::new();
    for (i, p) in persons.iter().enumerate() {
        if suppressed.contains(&i) {
            continue;
        }
        let v = g.values(p);
        let key = std::array::from_fn(|j| used.contains(&j).then(|| v[j].clone()));
        *classes.entry(key).or_default() += 1;
    }
    let min_class = classes.values().copied().min();
    if min_class.is_some_and(|m| m < k as u64) {
        return Err(ReleaseError::PrivacyModel { k: k as u32 });
    }
    Ok(Solution {
        levels: sol.levels,
        suppressed,
        min_class,
        information_loss: Some(sol.information_loss),
        qis,
    })
}

pub(crate) fn engine(e: kiban_anon::AnonError) -> ReleaseError {
    ReleaseError::Spec(format!("anonymization engine: {e}"))
}

/// One hierarchy per quasi-identifier over the values of `values` (level 0 → top).
pub(crate) fn hierarchies(
    qis: &[String],
    values: &[&PersonQi],
) -> Result<Vec<Hierarchy>, ReleaseError> {
    let mut out = Vec::with_capacity(qis.len());
    for q in qis {
        let set: BTreeSet<&str> = values.iter().map(|p| p.get(q)).collect();
        let rows = set
            .into_iter()
            .map(|v| {
                (0..levels(q))
                    .map(|l| label(&generalize(q, v, l)))
                    .collect::<Vec<String>>()
            })
            .collect();
        out.push(Hierarchy::from_rows(q, rows).map_err(engine)?);
    }
    Ok(out)
}

/// The engine's table of `persons` over `qis`, with hierarchies that also cover the values
/// of `also` (so that an attack table built from the same hierarchies never meets an unknown
/// value).
pub(crate) fn qi_table(
    qis: &[String],
    persons: &[PersonQi],
    also: &[PersonQi],
) -> Result<QiTable, ReleaseError> {
    let all: Vec<&PersonQi> = persons.iter().chain(also).collect();
    let hs = hierarchies(qis, &all)?;
    table_with(qis, hs, persons)
}

/// Fills a table with `persons` over existing hierarchies.
pub(crate) fn table_with(
    qis: &[String],
    hs: Vec<Hierarchy>,
    persons: &[PersonQi],
) -> Result<QiTable, ReleaseError> {
    let mut table = QiTable::new(hs).map_err(engine)?;
    let mut row: Vec<&str> = Vec::with_capacity(qis.len());
    for p in persons {
        row.clear();
        row.extend(qis.iter().map(|q| label_str(p.get(q))));
        table.push_row(&row, None).map_err(engine)?;
    }
    Ok(table)
}

/// Hierarchy labels cannot be empty: an unknown value is the label 「不明」 (unknown).
fn label(v: &str) -> String {
    label_str(v).to_string()
}

fn label_str(v: &str) -> &str {
    if v.is_empty() { "不明" } else { v }
}

/// The released birth value before generalization.
pub(crate) fn birth_value(spec: &Spec, d: &Demographics, on: NaiveDate, shift: i32) -> String {
    let Some(b) = d.birth_date else {
        return String::new();
    };
    if let Some(cap) = spec.person.top_code_age {
        let floor_year = on.year() - cap as i32;
        if b.year() <= floor_year {
            // 「90歳以上」: everybody this old shares one value.
            return format!("<={floor_year}");
        }
    }
    match spec.person.birth {
        Birth::Year => b.year().to_string(),
        Birth::YearMonth => format!("{:04}-{:02}", b.year(), b.month()),
        Birth::Date => days_to_date(date_to_days(b).saturating_add(shift))
            .map(|x| x.to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Spec;

    fn qi(b: &str, s: &str, p: &str) -> PersonQi {
        PersonQi {
            birth: b.into(),
            sex: s.into(),
            prefecture: p.into(),
        }
    }

    #[test]
    fn generalization_levels() {
        assert_eq!(generalize("birth_year", "1953", 1), "1950-1954");
        assert_eq!(generalize("birth_year", "1953", 2), "1950-1959");
        assert_eq!(generalize("birth_year", "1953-04", 1), "1950-1954");
        assert_eq!(generalize("birth_year", "<=1936", 1), "<=1936");
        assert_eq!(generalize("birth_year", "1953", 3), "*");
        assert_eq!(generalize("prefecture", "大阪府", 1), "近畿地方");
        assert_eq!(generalize("prefecture", "大阪府", 2), "*");
        assert_eq!(generalize("sex", "F", 1), "*");
    }

    #[test]
    fn every_prefecture_has_a_region() {
        for p in ["北海道", "東京都", "沖縄県", "京都府", "鹿児島県"] {
            assert!(region_of(p).is_some(), "{p}");
        }
    }

    /// R-ANON-5: the chosen solution leaves no released class smaller than k.
    #[test]
    fn classes_reach_the_longitudinal_class_size_or_hold_everybody() {
        // Issue 13: the (k, k^m) model counts codes within demographic classes, so the
        // anonymized profile makes them hold at least `longitudinal.qi_class_min` persons.
        let class_sizes = |spec: &Spec, n: usize| {
            let ps: Vec<PersonQi> = (0..n)
                .map(|i| {
                    let year = 1940 + (i % 37);
                    let pref = ["東京都", "大阪府", "北海道", "沖縄県"][i % 4];
                    qi(&year.to_string(), if i % 3 == 0 { "M" } else { "F" }, pref)
                })
                .collect();
            let sol = choose_generalization(spec, &ps).expect("solution");
            let mut classes: HashMap<[String; 3], usize> = HashMap::new();
            for (i, p) in ps.iter().enumerate() {
                if !sol.suppressed.contains(&i) {
                    *classes.entry(sol.values(p)).or_default() += 1;
                }
            }
            classes.into_values().collect::<Vec<usize>>()
        };
        let mut spec = Spec::profile("anonymized").expect("profile");
        spec.longitudinal.qi_class_min = 60;
        assert!(class_sizes(&spec, 600).iter().all(|n| *n >= 60));
        // Fewer persons than the class size: one class of everybody, not an error.
        assert_eq!(class_sizes(&spec, 40), vec![40]);
        // Without the longitudinal model, k alone decides.
        spec.longitudinal.m = 0;
        assert!(class_sizes(&spec, 600).iter().any(|n| *n < 60));
    }

    #[test]
    fn chosen_solution_is_k_anonymous_r_anon_5() {
        let spec = Spec::profile("anonymized").expect("profile");
        let mut ps = Vec::new();
        for i in 0..200 {
            let year = 1940 + (i % 37);
            let pref = ["東京都", "大阪府", "北海道", "沖縄県"][i % 4];
            let sex = if i % 3 == 0 { "M" } else { "F" };
            ps.push(qi(&year.to_string(), sex, pref));
        }
        let sol = choose_generalization(&spec, &ps).expect("solution");
        let mut classes: HashMap<[String; 3], usize> = HashMap::new();
        for (i, p) in ps.iter().enumerate() {
            if !sol.suppressed.contains(&i) {
                *classes.entry(sol.values(p)).or_default() += 1;
            }
        }
        assert!(classes.values().all(|n| *n >= spec.person.k as usize));
        assert!(sol.suppressed.len() as f64 <= 0.05 * ps.len() as f64);
        assert!(
            sol.levels.iter().any(|l| *l > 0),
            "this data needs generalization"
        );
    }

    #[test]
    fn unreachable_k_is_an_error() {
        let text = crate::spec::profile_text("anonymized")
            .expect("text")
            .replace("suppression_limit = 0.05", "suppression_limit = 0.0");
        let spec = Spec::parse(&text).expect("spec");
        // Three persons can never form a class of five.
        let ps = vec![qi("1950", "M", "東京都"); 3];
        assert!(matches!(
            choose_generalization(&spec, &ps),
            Err(ReleaseError::PrivacyModel { .. })
        ));
    }
}
