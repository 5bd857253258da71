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
    /// The birth date as the source wrote it, when it could not be read as a date
    /// (`kiban_model::date`): not a calendar date (`1975-02-30`), outside its era, … Ingest
    /// keeps it (and flags the field) so that linkage can still compare it as evidence;
    /// `birth_date` is then empty. Older vault records have no such field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date_text: Option<String>,
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
    /// 資格取得年月日: the day the card above became valid, when the source states it
    /// (HL7 IN1-12 Plan Effective Date, FHIR Coverage.period.start, a CSV column), ISO
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insured_since: Option<String>,
    /// First and last service date this handler recorded under the card above, ISO
    /// `YYYY-MM-DD` (set by ingest from the dated services of the units that carried the
    /// card, or that carried no card and so were under the one on file).
    /// With `insured_since` they date the card for linkage: one person holds one card at a
    /// time, so a card used while another was valid is evidence of another person, and a card
    /// whose use ended before the other was issued is what an insurance change looks like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_first_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_last_seen: Option<String>,
    /// Death date, when known (used for the bereaved-family rules of R-OPT-8).
    pub death_date: Option<String>,
}

impl Identity {
    pub fn new(patient_id: impl Into<String>) -> Self {
        let mut id = Identity::default();
        id.patient_id = patient_id.into();
        id
    }

    /// The birth date linkage compares: the ISO date, or else the source text of a birth
    /// date that could not be read ([`Identity::birth_date_text`]).
    pub fn birth_date_evidence(&self) -> Option<&str> {
        [self.birth_date.as_deref(), self.birth_date_text.as_deref()]
            .into_iter()
            .flatten()
            .find(|s| !s.trim().is_empty())
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
    ///
    /// The insurance card is one unit: its symbol, branch, 資格取得日 and the dates it was
    /// seen are never taken from a *different* card. When both records carry a card and the
    /// cards differ, the one seen last in time is kept (this record's when undated), so a
    /// patient who changed insurer keeps the new card whatever order the deliveries came in.
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
        if self.birth_date.is_none() {
            fill(&mut self.birth_date_text, &other.birth_date_text);
        } else {
            self.birth_date_text = None;
        }
        fill(&mut self.postal_code, &other.postal_code);
        fill(&mut self.address, &other.address);
        fill(&mut self.phone, &other.phone);
        fill(&mut self.death_date, &other.death_date);
        if self.sex == Sex::Unknown {
            self.sex = other.sex;
        }
        match (self.card_id(), other.card_id()) {
            (Some(a), Some(b)) if a != b => {
                // another card: the one seen last is the one on file, with its own dates
                // (ISO dates order as strings)
                let ours = self.card_last_seen.as_deref().unwrap_or("");
                let theirs = other.card_last_seen.as_deref().unwrap_or("");
                if !ours.is_empty() && theirs > ours {
                    self.take_card(other);
                    self.card_first_seen.clone_from(&other.card_first_seen);
                    self.card_last_seen.clone_from(&other.card_last_seen);
                }
                return;
            }
            (None, Some(_)) => self.take_card(other),
            _ => {
                fill(&mut self.insurer_number, &other.insurer_number);
                fill(&mut self.insured_symbol, &other.insured_symbol);
                fill(&mut self.insured_branch, &other.insured_branch);
                fill(&mut self.insured_since, &other.insured_since);
            }
        }
        // the same card, or a record without one: its service dates were under the card on
        // file
        self.card_first_seen = earliest(&self.card_first_seen, &other.card_first_seen);
        self.card_last_seen = latest(&self.card_last_seen, &other.card_last_seen);
    }

    /// Insurer number (without leading zeros) and insured number: what tells two cards
    /// apart. `None` without a number.
    fn card_id(&self) -> Option<(&str, &str)> {
        let number = self.insured_number.as_deref().map(str::trim).unwrap_or("");
        if number.is_empty() {
            return None;
        }
        let insurer = self.insurer_number.as_deref().map(str::trim).unwrap_or("");
        Some((insurer.trim_start_matches('0'), number))
    }

    /// The other record's card, all of its parts (not the dates it was seen).
    fn take_card(&mut self, other: &Identity) {
        self.insurer_number.clone_from(&other.insurer_number);
        self.insured_symbol.clone_from(&other.insured_symbol);
        self.insured_number.clone_from(&other.insured_number);
        self.insured_branch.clone_from(&other.insured_branch);
        self.insured_since.clone_from(&other.insured_since);
    }

    /// Widens the card's service window to `date` (ISO): a service this record's unit
    /// documents. A record without a card keeps the window for the card it is merged with.
    pub fn saw_card_on(&mut self, date: &str) {
        let d = Some(date.to_string());
        self.card_first_seen = earliest(&self.card_first_seen, &d);
        self.card_last_seen = latest(&self.card_last_seen, &d);
    }
}

fn earliest(a: &Option<String>, b: &Option<String>) -> Option<String> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y).clone()),
        (x, y) => x.clone().or_else(|| y.clone()),
    }
}

fn latest(a: &Option<String>, b: &Option<String>) -> Option<String> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y).clone()),
        (x, y) => x.clone().or_else(|| y.clone()),
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

    fn carded(number: &str, first: &str, last: &str) -> Identity {
        let mut a = Identity::new("1");
        a.insurer_number = Some("06130348".into());
        a.insured_number = Some(number.into());
        a.saw_card_on(first);
        a.saw_card_on(last);
        a
    }

    #[test]
    fn merge_keeps_one_card_whole_and_the_latest_one() {
        // the same card: the window widens, missing parts are filled
        let mut a = carded("111", "2024-05-01", "2024-06-01");
        let mut b = carded("111", "2023-01-10", "2023-02-01");
        b.insured_symbol = Some("12".into());
        b.insured_since = Some("2020-04-01".into());
        a.merge_missing(&b);
        assert_eq!(a.card_first_seen.as_deref(), Some("2023-01-10"));
        assert_eq!(a.card_last_seen.as_deref(), Some("2024-06-01"));
        assert_eq!(a.insured_symbol.as_deref(), Some("12"));
        assert_eq!(a.insured_since.as_deref(), Some("2020-04-01"));
        // another card, seen later: it replaces ours with all its parts
        let mut c = carded("222", "2024-08-01", "2024-09-01");
        c.insured_since = Some("2024-07-01".into());
        let mut a2 = a.clone();
        a2.merge_missing(&c);
        assert_eq!(a2.insured_number.as_deref(), Some("222"));
        assert_eq!(a2.insured_symbol, None, "no symbol from the old card");
        assert_eq!(a2.insured_since.as_deref(), Some("2024-07-01"));
        assert_eq!(a2.card_first_seen.as_deref(), Some("2024-08-01"));
        // another card, seen earlier: ours stays, nothing of theirs is mixed in
        let old = carded("333", "2022-01-01", "2022-02-01");
        let mut a3 = a.clone();
        a3.merge_missing(&old);
        assert_eq!(a3, a);
        // no card yet: the other's is taken
        let mut none = Identity::new("1");
        none.merge_missing(&c);
        assert_eq!(none.insured_number.as_deref(), Some("222"));
        // zero-filled and plain insurer numbers are one card
        let mut z = carded("111", "2025-01-01", "2025-01-01");
        z.insurer_number = Some("6130348".into());
        z.merge_missing(&a);
        assert_eq!(z.card_first_seen.as_deref(), Some("2023-01-10"));
    }

    #[test]
    fn services_without_a_card_count_for_the_card_on_file() {
        // an order message (no IN1) then the patient master with the card, either order
        let mut order = Identity::new("1");
        order.saw_card_on("2024-01-01");
        let master = carded("111", "2023-03-01", "2023-03-01");
        let mut a = order.clone();
        a.merge_missing(&master);
        let mut b = master.clone();
        b.merge_missing(&order);
        for m in [a, b] {
            assert_eq!(m.insured_number.as_deref(), Some("111"));
            assert_eq!(m.card_first_seen.as_deref(), Some("2023-03-01"));
            assert_eq!(m.card_last_seen.as_deref(), Some("2024-01-01"));
        }
    }

    #[test]
    fn identifying_strings_skip_blanks() {
        let mut a = Identity::new("P1");
        a.phone = Some(" ".into());
        a.name_kana = Some("ヤマダ タロウ".into());
        assert_eq!(a.identifying_strings(), vec!["P1", "ヤマダ タロウ"]);
    }
}
