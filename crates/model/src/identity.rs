//! The identity record: everything that identifies a patient. It is kept apart from clinical
//! facts, encrypted in the vault, and read only by linkage (名寄せ).

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Administrative sex as the sources carry it (HL7 table 0001, FHIR AdministrativeGender,
/// UKE 男女区分 1/2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Sex {
    Male,
    Female,
    Other,
    #[default]
    Unknown,
}

impl Sex {
    /// Parses the spellings used by HL7 v2 (M/F/O/U), FHIR (male/female/other/unknown) and
    /// Japanese claims (1 = 男, 2 = 女).
    pub fn parse(s: &str) -> Sex {
        match s.trim().to_ascii_lowercase().as_str() {
            "m" | "male" | "1" | "男" => Sex::Male,
            "f" | "female" | "2" | "女" => Sex::Female,
            "o" | "other" | "a" => Sex::Other,
            _ => Sex::Unknown,
        }
    }

    /// The code written into the clinical store and releases (OMOP-like short code).
    pub fn code(self) -> &'static str {
        match self {
            Sex::Male => "M",
            Sex::Female => "F",
            Sex::Other => "O",
            Sex::Unknown => "U",
        }
    }
}

/// One patient's identity as one handler knows it. Every field is optional because real
/// exports omit any of them. The struct zeroizes itself on drop so that plaintext identity
/// does not linger in freed memory longer than needed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct Identity {
    /// The handler's own patient ID (患者ID).
    pub patient_id: String,
    /// Name in kanji (漢字氏名), family and given separated as the source wrote them.
    pub name_kanji: Option<String>,
    /// Name in kana (カナ氏名).
    pub name_kana: Option<String>,
    /// Name in Latin letters, when the source carries one (FHIR, DICOM).
    pub name_alpha: Option<String>,
    /// Birth date, ISO `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    #[zeroize(skip)]
    pub sex: Sex,
    pub postal_code: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    /// 保険者番号.
    pub insurer_number: Option<String>,
    /// 被保険者証記号.
    pub insured_symbol: Option<String>,
    /// 被保険者証番号.
    pub insured_number: Option<String>,
    /// 枝番.
    pub insured_branch: Option<String>,
    /// Death date, when known (used for the bereaved-family rules of R-OPT-8).
    pub death_date: Option<String>,
}

impl Identity {
    pub fn new(patient_id: impl Into<String>) -> Self {
        let mut id = Identity::default();
        id.patient_id = patient_id.into();
        id
    }

    /// Every identifying string of this record (the patient ID included), for leak scanning
    /// and for linkage keys. Empty fields are skipped.
    pub fn identifying_strings(&self) -> Vec<&str> {
        [
            Some(self.patient_id.as_str()),
            self.name_kanji.as_deref(),
            self.name_kana.as_deref(),
            self.name_alpha.as_deref(),
            self.postal_code.as_deref(),
            self.address.as_deref(),
            self.phone.as_deref(),
            self.insurer_number.as_deref(),
            self.insured_symbol.as_deref(),
            self.insured_number.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter(|s| !s.trim().is_empty())
        .collect()
    }

    /// Fills the fields this record lacks from `other` (a later message about the same
    /// patient may carry the address an earlier one left out).
    pub fn merge_missing(&mut self, other: &Identity) {
        fn fill(a: &mut Option<String>, b: &Option<String>) {
            if a.as_deref().is_none_or(|s| s.trim().is_empty()) && b.is_some() {
                a.clone_from(b);
            }
        }
        fill(&mut self.name_kanji, &other.name_kanji);
        fill(&mut self.name_kana, &other.name_kana);
        fill(&mut self.name_alpha, &other.name_alpha);
        fill(&mut self.birth_date, &other.birth_date);
        fill(&mut self.postal_code, &other.postal_code);
        fill(&mut self.address, &other.address);
        fill(&mut self.phone, &other.phone);
        fill(&mut self.insurer_number, &other.insurer_number);
        fill(&mut self.insured_symbol, &other.insured_symbol);
        fill(&mut self.insured_number, &other.insured_number);
        fill(&mut self.insured_branch, &other.insured_branch);
        fill(&mut self.death_date, &other.death_date);
        if self.sex == Sex::Unknown {
            self.sex = other.sex;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sex_parses_every_source_spelling() {
        assert_eq!(Sex::parse("M"), Sex::Male);
        assert_eq!(Sex::parse("female"), Sex::Female);
        assert_eq!(Sex::parse("1"), Sex::Male);
        assert_eq!(Sex::parse("2"), Sex::Female);
        assert_eq!(Sex::parse("?"), Sex::Unknown);
    }

    #[test]
    fn merge_fills_only_missing_fields() {
        let mut a = Identity::new("1");
        a.name_kanji = Some("山田 太郎".into());
        let mut b = Identity::new("1");
        b.name_kanji = Some("山田 花子".into());
        b.address = Some("東京都".into());
        b.sex = Sex::Male;
        a.merge_missing(&b);
        assert_eq!(a.name_kanji.as_deref(), Some("山田 太郎"));
        assert_eq!(a.address.as_deref(), Some("東京都"));
        assert_eq!(a.sex, Sex::Male);
    }

    #[test]
    fn identifying_strings_skip_blanks() {
        let mut a = Identity::new("P1");
        a.phone = Some(" ".into());
        a.name_kana = Some("ヤマダ タロウ".into());
        assert_eq!(a.identifying_strings(), vec!["P1", "ヤマダ タロウ"]);
    }
}
