//! Generator configuration and its validation.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::SynthError;

/// An output format a hospital can export in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SynthFormat {
    /// SS-MIX2 standardized storage (HL7 v2.5, ISO-2022-JP).
    Ssmix2,
    /// FHIR R4 collection bundles, JP Core style (JSON, UTF-8).
    Fhir,
    /// レセプト電算 医科 claims file RECEIPTC.UKE (Shift_JIS).
    Uke,
    /// Plain CSV tables (UTF-8).
    Csv,
}

impl SynthFormat {
    pub const ALL: [SynthFormat; 4] = [
        SynthFormat::Ssmix2,
        SynthFormat::Fhir,
        SynthFormat::Uke,
        SynthFormat::Csv,
    ];

    /// The name used on the command line, in folder names and in `summary.json`.
    pub fn name(self) -> &'static str {
        match self {
            SynthFormat::Ssmix2 => "ssmix2",
            SynthFormat::Fhir => "fhir",
            SynthFormat::Uke => "uke",
            SynthFormat::Csv => "csv",
        }
    }

    /// Parses a command-line spelling (`ssmix2`, `ss-mix2`, `fhir`, `uke`, `csv`).
    pub fn parse(s: &str) -> Option<SynthFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ssmix2" | "ss-mix2" | "ssmix" => Some(SynthFormat::Ssmix2),
            "fhir" => Some(SynthFormat::Fhir),
            "uke" | "receipt" => Some(SynthFormat::Uke),
            "csv" => Some(SynthFormat::Csv),
            _ => None,
        }
    }
}

/// How identities drift between hospitals. Rates are probabilities in `[0, 1]`; the
/// per-registration ones apply independently to each (hospital, patient) registration, the
/// per-person ones decide whether a life event happened, and each registration then shows the
/// old or the new value at random.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NoiseConfig {
    /// Per registration: one kanji of the name written as a variant (邊/邉/辺, 髙/高 …).
    pub variant_kanji: f64,
    /// Per registration: kana name stored in half-width katakana.
    pub halfwidth_kana: f64,
    /// Per registration: unusual separator between family and given name (half-width space
    /// or none instead of the full-width space) in formats that carry one name string.
    pub spacing: f64,
    /// Per registration: one kana substituted (voicing, small kana, long vowel, shapes).
    pub typo: f64,
    /// Per registration: address written in another style (full-width digits, 丁目番地号 vs
    /// hyphens, building dropped).
    pub address_format: f64,
    /// Per person (women aged 20+): family name changed by marriage.
    pub marriage: f64,
    /// Per person: moved during the period (a previous address exists).
    pub moves: f64,
    /// Per person: changed insurance (a previous insurer/symbol/number exists).
    pub insurance_change: f64,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        NoiseConfig {
            variant_kanji: 0.05,
            halfwidth_kana: 0.05,
            spacing: 0.10,
            typo: 0.02,
            address_format: 0.15,
            marriage: 0.05,
            moves: 0.08,
            insurance_change: 0.10,
        }
    }
}

impl NoiseConfig {
    /// No drift at all: every registration of a person carries the identical identity.
    pub fn none() -> Self {
        NoiseConfig {
            variant_kanji: 0.0,
            halfwidth_kana: 0.0,
            spacing: 0.0,
            typo: 0.0,
            address_format: 0.0,
            marriage: 0.0,
            moves: 0.0,
            insurance_change: 0.0,
        }
    }

    fn rates(&self) -> [(&'static str, f64); 8] {
        [
            ("variant_kanji", self.variant_kanji),
            ("halfwidth_kana", self.halfwidth_kana),
            ("spacing", self.spacing),
            ("typo", self.typo),
            ("address_format", self.address_format),
            ("marriage", self.marriage),
            ("moves", self.moves),
            ("insurance_change", self.insurance_change),
        ]
    }
}

/// Everything `generate` needs. `Default` gives a small mixed population over three fiscal
/// years (2022-04-01 … 2025-03-31) in all four formats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthConfig {
    /// Number of true persons.
    pub persons: u64,
    /// Number of hospitals (handlers).
    pub hospitals: u32,
    /// RNG seed: the same config and seed give byte-identical output.
    pub seed: u64,
    /// Formats to write; hospitals are assigned round-robin over this list (in this order)
    /// unless `all_formats_per_hospital`.
    pub formats: Vec<SynthFormat>,
    /// Write every requested format for every hospital (per-format count checks).
    pub all_formats_per_hospital: bool,
    /// First day of clinical data.
    pub start_date: NaiveDate,
    /// Last day of clinical data.
    pub end_date: NaiveDate,
    /// The day the handlers provide the data to the producer; opt-out notices are dated so
    /// that most are past the 30-day waiting period on this day. `None` = end_date + 30 days.
    pub provision_date: Option<NaiveDate>,
    pub noise: NoiseConfig,
    /// Per person: probability that the person is the first of a twin pair (the next person
    /// is the twin: same family name, address, phone, birth date; different given name).
    pub twins_rate: f64,
    /// Per person: probability that the person is a namesake of a recent earlier person
    /// (same kanji and kana name, sex and birth date; different everything else).
    pub namesake_rate: f64,
    /// Per person: probability that the family name comes from the long tail of rare
    /// surnames (勅使河原, 小鳥遊 … and two-element compounds, each held by a handful of
    /// persons) and, for half of them, the given name too. 0 keeps the common-name tables
    /// alone (and the output of earlier versions byte for byte).
    pub rare_names: f64,
    /// Insurance changes follow life events (see `population::InsuranceEvent`): everyone who
    /// turns 75 inside the window moves to 後期高齢者医療 on the birthday, and the
    /// `noise.insurance_change` share of the others changes for a reason fitting their age
    /// and card — a dependant who starts work leaves the family card, a job change (often
    /// to an insurer of another prefecture: a company's 健保組合 sits at its head office), a
    /// retirement to 国民健康保険. Off: one change to a random card, as earlier versions.
    pub life_events: bool,
    /// Namesakes (see `namesake_rate`) copy an earlier person chosen with a probability
    /// proportional to how common their name is (as real namesakes: common names collide,
    /// rare ones almost never); off: any recent person alike.
    pub namesakes_by_frequency: bool,
    /// FHIR: patients per bundle file.
    pub fhir_patients_per_bundle: u32,
    /// Opt-out file: share of registrations that receive a notice.
    pub notice_rate: f64,
    /// Opt-out file: share of registrations with a stop request.
    pub stop_rate: f64,
    /// Opt-out file: share of registrations with a delete request.
    pub delete_rate: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            persons: 1000,
            hospitals: 4,
            seed: 42,
            formats: SynthFormat::ALL.to_vec(),
            all_formats_per_hospital: false,
            start_date: NaiveDate::from_ymd_opt(2022, 4, 1).unwrap_or_default(),
            end_date: NaiveDate::from_ymd_opt(2025, 3, 31).unwrap_or_default(),
            provision_date: None,
            noise: NoiseConfig::default(),
            twins_rate: 0.01,
            namesake_rate: 0.01,
            rare_names: 0.0,
            life_events: false,
            namesakes_by_frequency: false,
            fhir_patients_per_bundle: 100,
            notice_rate: 0.97,
            stop_rate: 0.02,
            delete_rate: 0.005,
        }
    }
}

impl SynthConfig {
    /// A claims-only population (レセプト電算, UKE) over `hospitals` hospitals, as a
    /// producer receives it from claims: no address and no phone, only name, kana, birth
    /// date, sex and the card of each service month; insurance changes by life event, a
    /// fifth of the persons with a rare surname, twins, and namesakes as often as their
    /// names are common. The identity drift of registrations stays the default's.
    pub fn claims(persons: u64, hospitals: u32, seed: u64) -> Self {
        SynthConfig {
            persons,
            hospitals,
            seed,
            formats: vec![SynthFormat::Uke],
            noise: NoiseConfig {
                insurance_change: 0.15,
                ..NoiseConfig::default()
            },
            twins_rate: 0.01,
            namesake_rate: 0.003,
            rare_names: 0.2,
            life_events: true,
            namesakes_by_frequency: true,
            ..Default::default()
        }
    }

    /// The provision date actually used.
    pub fn effective_provision_date(&self) -> NaiveDate {
        self.provision_date
            .unwrap_or(self.end_date + chrono::Duration::days(30))
    }

    /// Rejects configurations that cannot produce sensible output, naming the field.
    pub fn validate(&self) -> Result<(), SynthError> {
        let bad = |field: &'static str, reason: &str| {
            Err(SynthError::Config {
                field,
                reason: reason.to_string(),
            })
        };
        if self.hospitals == 0 {
            return bad("hospitals", "must be at least 1");
        }
        if self.hospitals > 9999 {
            return bad("hospitals", "at most 9999 hospitals are supported");
        }
        if self.formats.is_empty() {
            return bad("formats", "at least one format is required");
        }
        let mut seen = self.formats.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.formats.len() {
            return bad("formats", "a format is listed twice");
        }
        if self.end_date < self.start_date {
            return bad("end_date", "must not be before start_date");
        }
        if self.start_date < NaiveDate::from_ymd_opt(2021, 1, 1).unwrap_or_default() {
            return bad(
                "start_date",
                "must be 2021-01-01 or later (birth dates reach 2020)",
            );
        }
        if self.effective_provision_date() <= self.end_date {
            return bad("provision_date", "must be after end_date");
        }
        if self.fhir_patients_per_bundle == 0 {
            return bad("fhir_patients_per_bundle", "must be at least 1");
        }
        let mut rates: Vec<(&'static str, f64)> = self.noise.rates().to_vec();
        rates.extend([
            ("twins_rate", self.twins_rate),
            ("namesake_rate", self.namesake_rate),
            ("rare_names", self.rare_names),
            ("notice_rate", self.notice_rate),
            ("stop_rate", self.stop_rate),
            ("delete_rate", self.delete_rate),
        ]);
        for (field, r) in rates {
            if !(0.0..=1.0).contains(&r) {
                return bad(field, "must be a probability between 0 and 1");
            }
        }
        if self.stop_rate + self.delete_rate > 1.0 {
            return bad("stop_rate", "stop_rate + delete_rate must not exceed 1");
        }
        Ok(())
    }

    /// The formats hospital `index` (0-based) writes.
    pub fn formats_of_hospital(&self, index: u32) -> Vec<SynthFormat> {
        if self.all_formats_per_hospital {
            self.formats.clone()
        } else {
            vec![self.formats[index as usize % self.formats.len()]]
        }
    }
}
