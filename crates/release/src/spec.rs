//! Release specs: a declarative TOML document (design principle 4). The built-in profiles
//! are ordinary specs shipped in `crates/release/profiles/`, printable so that a user can
//! start their own from one.

use kiban_model::Table;
use serde::{Deserialize, Serialize};

use crate::ReleaseError;

/// The processing level of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// 匿名加工医療情報: all five steps (R-ANON-1..5).
    Anonymized,
    /// 仮名加工医療情報: three steps (R-PSEUDO-1), certified users only (R-PSEUDO-2).
    Pseudonymized,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Anonymized => "anonymized",
            Level::Pseudonymized => "pseudonymized",
        }
    }
}

/// How much of the birth date a release keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Birth {
    Year,
    YearMonth,
    Date,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateSpec {
    pub shift: bool,
    #[serde(default)]
    pub max_shift_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonSpec {
    pub birth: Birth,
    /// Persons at least this old on the release date share one birth value (top coding).
    #[serde(default)]
    pub top_code_age: Option<u32>,
    #[serde(default)]
    pub quasi_identifiers: Vec<String>,
    /// k of k-anonymity on the person level; 0 = none.
    #[serde(default)]
    pub k: u32,
    #[serde(default)]
    pub suppression_limit: f64,
    /// NDB-compatible linkage keys (R-PSEUDO-3): the person table gets `id1`/`id2`, keyed
    /// per release. They come from identities, so the caller computes them
    /// ([`crate::ReleaseInput::ndb_keys`]); pseudonymized releases only.
    #[serde(default)]
    pub ndb_keys: bool,
}

/// Rare-value handling of codes (R-ANON-4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodesSpec {
    /// Every code of a coded table that is not one of the longitudinal item tables
    /// (measurements, observations…) must be held by at least this many released persons:
    /// rarer codes climb their hierarchy (JLAC10 → analyte → 「その他」) or are suppressed.
    /// 0 = off.
    #[serde(default)]
    pub rare_min_persons: u32,
    /// Older name of `rare_min_persons` (it applied to diagnoses only; diagnoses are now a
    /// longitudinal item table). Read when `rare_min_persons` is 0.
    #[serde(default)]
    pub rare_condition_min_persons: u32,
}

impl CodesSpec {
    /// The minimum persons per released code outside the longitudinal item tables.
    pub fn min_persons(&self) -> u32 {
        if self.rare_min_persons > 0 {
            self.rare_min_persons
        } else {
            self.rare_condition_min_persons
        }
    }
}

/// The longitudinal privacy model (issue 13): (k, k^m)-anonymity over the item tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongitudinalSpec {
    /// How many of a person's codes the attacker is assumed to know besides their
    /// quasi-identifiers; every such combination is held by ≥ `person.k` persons. 0 = off.
    #[serde(default)]
    pub m: u32,
    /// The tables whose codes are the person's items.
    #[serde(default = "default_item_tables")]
    pub item_tables: Vec<String>,
    /// The smallest class of persons sharing released demographics (birth, sex, prefecture)
    /// that the person-level generalization must reach when the model is on (at least
    /// `person.k`). The model counts codes within such a class: classes of ~10 persons force
    /// nearly every code to 「その他」, larger ones keep codes and coarsen demographics
    /// (birth year → 5/10-year band, prefecture → region) instead.
    #[serde(default)]
    pub qi_class_min: u32,
    /// What suppressing one code occurrence costs against climbing codes up their hierarchy
    /// (information loss of the climbed occurrences). Lower prefers suppressing the few
    /// occurrences that make a rare combination over coarsening a common code for everyone.
    #[serde(default = "default_suppression_weight")]
    pub suppression_weight: f64,
}

fn default_suppression_weight() -> f64 {
    1.0
}

fn default_item_tables() -> Vec<String> {
    [
        "condition_occurrence",
        "drug_exposure",
        "procedure_occurrence",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Default for LongitudinalSpec {
    fn default() -> LongitudinalSpec {
        LongitudinalSpec {
            m: 0,
            item_tables: default_item_tables(),
            qi_class_min: 0,
            suppression_weight: default_suppression_weight(),
        }
    }
}

/// The tables with a `code` column that rare-code handling and the longitudinal model know.
pub const CODED_TABLES: [Table; 5] = [
    Table::ConditionOccurrence,
    Table::DrugExposure,
    Table::Measurement,
    Table::ProcedureOccurrence,
    Table::Observation,
];

/// Extreme lab values (R-ANON-4).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasurementSpec {
    /// Per analyte, values at or below this percentile (in %) and at or above its mirror
    /// (100 − p) lose `value_number` and get `value_text` 「X以下」/「X以上」. 0 = off.
    #[serde(default)]
    pub top_bottom_percentile: f64,
}

/// The risk report (R-ANON-7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSpec {
    /// A record is "at risk" when its prosecutor risk 1/|class| exceeds this.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Share of the population the release covers (released persons / population); used by
    /// the population-uniqueness estimate and the journalist risk. 1.0 = the release is the
    /// population (the conservative default, ARX's without a population model).
    #[serde(default = "default_fraction")]
    pub sampling_fraction: f64,
    /// A release whose share of records at risk exceeds this is refused (1.0 = never).
    #[serde(default = "default_max_at_risk")]
    pub max_records_at_risk: f64,
}

fn default_max_at_risk() -> f64 {
    1.0
}

fn default_threshold() -> f64 {
    0.2
}
fn default_fraction() -> f64 {
    1.0
}

impl Default for RiskSpec {
    fn default() -> RiskSpec {
        RiskSpec {
            threshold: default_threshold(),
            sampling_fraction: default_fraction(),
            max_records_at_risk: default_max_at_risk(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    pub include: Vec<String>,
}

/// A release spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    pub level: Level,
    pub dates: DateSpec,
    pub person: PersonSpec,
    #[serde(default)]
    pub codes: CodesSpec,
    #[serde(default)]
    pub longitudinal: LongitudinalSpec,
    #[serde(default)]
    pub measurement: MeasurementSpec,
    #[serde(default)]
    pub risk: RiskSpec,
    pub tables: TableSpec,
}

/// The person-level quasi-identifiers a spec may name.
pub const KNOWN_QIS: [&str; 3] = ["birth_year", "sex", "prefecture"];

const ANONYMIZED: &str = include_str!("../profiles/anonymized.toml");
const PSEUDONYMIZED: &str = include_str!("../profiles/pseudonymized.toml");

/// Names of the built-in profiles.
pub const PROFILES: [&str; 2] = ["anonymized", "pseudonymized"];

/// The TOML text of a built-in profile.
pub fn profile_text(name: &str) -> Option<&'static str> {
    match name {
        "anonymized" => Some(ANONYMIZED),
        "pseudonymized" => Some(PSEUDONYMIZED),
        _ => None,
    }
}

impl Spec {
    /// Parses and validates a spec.
    pub fn parse(text: &str) -> Result<Spec, ReleaseError> {
        let spec: Spec = toml::from_str(text).map_err(|e| ReleaseError::Spec(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// A built-in profile.
    pub fn profile(name: &str) -> Result<Spec, ReleaseError> {
        let text = profile_text(name).ok_or_else(|| ReleaseError::UnknownProfile(name.into()))?;
        Spec::parse(text)
    }

    /// The k the person-level generalization must reach: `person.k`, or with the
    /// longitudinal model on, at least `longitudinal.qi_class_min`.
    pub fn qi_class_min(&self) -> u32 {
        if self.longitudinal.m > 0 {
            self.person.k.max(self.longitudinal.qi_class_min)
        } else {
            self.person.k
        }
    }

    /// The longitudinal model's item tables that this spec releases (empty when m = 0).
    pub fn item_tables(&self) -> Vec<Table> {
        if self.longitudinal.m == 0 {
            return Vec::new();
        }
        self.tables()
            .into_iter()
            .filter(|t| self.longitudinal.item_tables.iter().any(|n| n == t.name()))
            .collect()
    }

    /// The tables this spec releases, in the store's order.
    pub fn tables(&self) -> Vec<Table> {
        Table::ALL
            .into_iter()
            .filter(|t| self.tables.include.iter().any(|n| n == t.name()))
            .collect()
    }

    fn validate(&self) -> Result<(), ReleaseError> {
        let bad = |m: String| Err(ReleaseError::Spec(m));
        for t in &self.tables.include {
            match Table::from_name(t) {
                None => return bad(format!("tables.include: unknown table {t:?}")),
                // Free text can name the patient; it is released only once the free-text
                // de-identification exists.
                Some(Table::Note) => {
                    return bad(
                        "tables.include: \"note\" (free text) cannot be released yet".into(),
                    );
                }
                Some(_) => {}
            }
        }
        for q in &self.person.quasi_identifiers {
            if !KNOWN_QIS.contains(&q.as_str()) {
                return bad(format!(
                    "person.quasi_identifiers: unknown {q:?} (known: {})",
                    KNOWN_QIS.join(", ")
                ));
            }
        }
        for t in &self.longitudinal.item_tables {
            if !Table::from_name(t).is_some_and(|t| CODED_TABLES.contains(&t)) {
                return bad(format!(
                    "longitudinal.item_tables: {t:?} is not a coded table (known: {})",
                    CODED_TABLES.map(|t| t.name()).join(", ")
                ));
            }
        }
        let w = self.longitudinal.suppression_weight;
        if !(w.is_finite() && w >= 0.0) {
            return bad("longitudinal.suppression_weight must be a number >= 0".into());
        }
        if self.longitudinal.m as usize > kiban_anon::setvalued::MAX_M {
            return bad(format!(
                "longitudinal.m must be at most {}",
                kiban_anon::setvalued::MAX_M
            ));
        }
        if !(0.0..=1.0).contains(&self.person.suppression_limit) {
            return bad("person.suppression_limit must be between 0 and 1".into());
        }
        if self.level == Level::Anonymized {
            // R-ANON-1/3/5: an anonymized release without these is not anonymized.
            if self.person.birth == Birth::Date && !self.dates.shift {
                return bad("an anonymized release may not keep exact birth dates".into());
            }
            if self.person.k < 2 {
                return bad("an anonymized release needs person.k >= 2 (R-ANON-5)".into());
            }
            if self.person.quasi_identifiers.is_empty() {
                return bad("an anonymized release needs person.quasi_identifiers".into());
            }
            // Issue 13: k on demographics alone left 92 % of persons unique on their codes.
            if self.longitudinal.m == 0 || self.longitudinal.item_tables.is_empty() {
                return bad(
                    "an anonymized release needs longitudinal.m >= 1 and item_tables (an attacker knows some of a person's diagnoses)".into(),
                );
            }
        }
        if self.person.k > 0 && self.person.quasi_identifiers.is_empty() {
            return bad("person.k is set but no quasi_identifiers are named".into());
        }
        if self.person.ndb_keys && self.level != Level::Pseudonymized {
            // R-PSEUDO-3 keys join a release with NDB: that is pseudonymized data's privilege.
            return bad("person.ndb_keys is allowed only at level pseudonymized".into());
        }
        let p = self.measurement.top_bottom_percentile;
        if !(0.0..50.0).contains(&p) {
            return bad("measurement.top_bottom_percentile must be in [0, 50)".into());
        }
        if !(self.risk.threshold > 0.0 && self.risk.threshold <= 1.0) {
            return bad("risk.threshold must be in (0, 1]".into());
        }
        if !(0.0..=1.0).contains(&self.risk.max_records_at_risk) {
            return bad("risk.max_records_at_risk must be in [0, 1]".into());
        }
        if !(self.risk.sampling_fraction > 0.0 && self.risk.sampling_fraction <= 1.0) {
            return bad("risk.sampling_fraction must be in (0, 1]".into());
        }
        if self.dates.shift && self.dates.max_shift_days == 0 {
            return bad("dates.shift needs dates.max_shift_days > 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse() {
        for p in PROFILES {
            let s = Spec::profile(p).expect("profile parses");
            assert_eq!(s.name, p);
            assert!(!s.tables().is_empty());
            assert!(!s.tables().contains(&Table::Note));
        }
        let a = Spec::profile("anonymized").expect("anonymized");
        assert_eq!(a.level, Level::Anonymized);
        assert_eq!(a.person.birth, Birth::Year);
        assert!(a.person.k >= 2);
        assert!(a.codes.min_persons() >= 2, "R-ANON-4");
        assert!(
            a.longitudinal.m >= 2,
            "issue 13: the longitudinal model is on"
        );
        assert!(a.measurement.top_bottom_percentile > 0.0, "R-ANON-4");
        let p = Spec::profile("pseudonymized").expect("pseudonymized");
        assert!(!p.dates.shift, "R-PSEUDO-1 keeps exact dates");
        assert_eq!(p.codes.min_persons(), 0, "R-PSEUDO-1 keeps peculiar values");
        assert_eq!(p.longitudinal.m, 0);
        assert_eq!(p.measurement.top_bottom_percentile, 0.0);
    }

    #[test]
    fn rejects_weak_anonymized_specs() {
        let text = profile_text("anonymized")
            .expect("text")
            .replace("k = 5", "k = 1");
        assert!(matches!(Spec::parse(&text), Err(ReleaseError::Spec(_))));
        let text = profile_text("anonymized")
            .expect("text")
            .replace("\"image_study\"]", "\"image_study\", \"note\"]");
        assert!(matches!(Spec::parse(&text), Err(ReleaseError::Spec(_))));
        let text = profile_text("anonymized").expect("text").replace(
            "suppression_limit = 0.05",
            "suppression_limit = 0.05\nndb_keys = true",
        );
        assert!(matches!(Spec::parse(&text), Err(ReleaseError::Spec(_))));
        let text = profile_text("pseudonymized")
            .expect("text")
            .replace("ndb_keys = false", "ndb_keys = true");
        assert!(
            Spec::parse(&text)
                .expect("pseudonymized + ndb")
                .person
                .ndb_keys
        );
        assert!(matches!(
            Spec::profile("nope"),
            Err(ReleaseError::UnknownProfile(_))
        ));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let text = format!(
            "{}\nextra = 1\n",
            profile_text("pseudonymized").expect("text")
        );
        assert!(Spec::parse(&text).is_err());
    }
}
