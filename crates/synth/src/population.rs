//! The synthetic population: true persons, their registrations at hospitals (with identity
//! drift), and the clinical events of each registration.
//!
//! Generation is sequential from one seeded ChaCha stream, so a seed fixes every byte.
//! Only a bounded window of recent persons is remembered (for namesakes and twins): memory
//! does not grow with the population size.

use std::collections::VecDeque;

use chrono::{Datelike, Duration, NaiveDate};
use kiban_model::Sex;
use rand::Rng;
use rand::distributions::{Distribution, WeightedIndex};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::{NoiseConfig, SynthConfig};
use crate::tables::{
    BUILDINGS, DEPARTMENTS, DIAGNOSES, DRUGS, FAMILY_NAMES, GIVEN_FEMALE, GIVEN_MALE, LABS, PLACES,
    RARE_FAMILY, RARE_GIVEN_HEADS, RARE_GIVEN_TAILS, RARE_HEADS, RARE_TAILS,
};
use crate::text;

/// How many recent persons are remembered as namesake sources.
const NAMESAKE_WINDOW: usize = 512;

/// Luhn-style check digit (weights 2,1 from the right), the scheme of 保険者番号 and
/// 医療機関コード check digits.
pub fn check_digit(digits: &str) -> char {
    let mut sum = 0u32;
    for (i, c) in digits.chars().rev().enumerate() {
        let d = c.to_digit(10).unwrap_or(0);
        let p = if i % 2 == 0 { d * 2 } else { d };
        sum += p / 10 + p % 10;
    }
    char::from_digit((10 - sum % 10) % 10, 10).unwrap_or('0')
}

#[derive(Debug, Clone, PartialEq)]
pub struct Address {
    pub place: usize,
    pub town: usize,
    pub chome: u32,
    pub ban: u32,
    pub go: u32,
    pub building: Option<(usize, u32)>,
    pub postal: String,
}

impl Address {
    fn random(rng: &mut ChaCha8Rng, place_dist: &WeightedIndex<u32>) -> Address {
        let place = place_dist.sample(rng);
        let p = &PLACES[place];
        let town = rng.gen_range(0..p.towns.len());
        let building = if rng.gen_bool(0.35) {
            Some((
                rng.gen_range(0..BUILDINGS.len()),
                rng.gen_range(1..=12) * 100 + rng.gen_range(1..=9),
            ))
        } else {
            None
        };
        Address {
            place,
            town,
            chome: rng.gen_range(1..=6),
            ban: rng.gen_range(1..=30),
            go: rng.gen_range(1..=20),
            building,
            postal: format!("{}-{:04}", p.postal3, rng.gen_range(0..10000)),
        }
    }

    pub fn prefecture(&self) -> &'static str {
        PLACES[self.place].prefecture
    }

    pub fn city(&self) -> &'static str {
        PLACES[self.place].city
    }

    /// The address line after the municipality, in one of four styles: 0 canonical
    /// (`栄2丁目3番4号 コーポ101号室`), 1 hyphens (`栄2-3-4 コーポ101`), 2 full-width
    /// hyphens (`栄２－３－４`), 3 canonical without the building.
    pub fn line(&self, style: u8) -> String {
        let town = PLACES[self.place].towns[self.town];
        let bld = |with_room_suffix: bool| match self.building {
            Some((b, room)) if with_room_suffix => format!(" {}{}号室", BUILDINGS[b], room),
            Some((b, room)) => format!(" {}{}", BUILDINGS[b], room),
            None => String::new(),
        };
        match style {
            1 => format!(
                "{town}{}-{}-{}{}",
                self.chome,
                self.ban,
                self.go,
                bld(false)
            ),
            2 => text::to_fullwidth_digits(&format!(
                "{town}{}-{}-{}{}",
                self.chome,
                self.ban,
                self.go,
                bld(false)
            )),
            3 => format!("{town}{}丁目{}番{}号", self.chome, self.ban, self.go),
            _ => format!(
                "{town}{}丁目{}番{}号{}",
                self.chome,
                self.ban,
                self.go,
                bld(true)
            ),
        }
    }

    /// Prefecture + municipality + line.
    pub fn full(&self, style: u8) -> String {
        format!("{}{}{}", self.prefecture(), self.city(), self.line(style))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum InsuranceKind {
    /// 協会けんぽ (法別 01).
    Kyokai,
    /// 組合管掌健康保険 (法別 06).
    Kumiai,
    /// 共済組合 (法別 31).
    Kyosai,
    /// 国民健康保険 (6-digit insurer number).
    Kokuho,
    /// 後期高齢者医療 (法別 39).
    Kouki,
}

impl InsuranceKind {
    /// (JHSD0001-like code, Japanese name).
    pub fn label(self) -> (&'static str, &'static str) {
        match self {
            InsuranceKind::Kyokai => ("01", "全国健康保険協会管掌健康保険"),
            InsuranceKind::Kumiai => ("06", "組合管掌健康保険"),
            InsuranceKind::Kyosai => ("31", "国家公務員共済組合"),
            InsuranceKind::Kokuho => ("C0", "国民健康保険"),
            InsuranceKind::Kouki => ("39", "後期高齢者医療"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Insurance {
    pub kind: InsuranceKind,
    pub insurer: String,
    pub symbol: String,
    pub number: String,
    pub branch: String,
    /// True when the patient is the insured person (本人), false for a dependent (家族).
    pub is_self: bool,
    /// 資格取得年月日: the day this card became valid. Linkage uses it to tell a card change
    /// (the new card starts when the old one stops being used) from a namesake.
    pub since: NaiveDate,
}

/// A random 資格取得年月日 before `start`: between max(birth, start − 25 years) and
/// start − 1 day, so every card is already valid when the data window opens.
fn card_since(rng: &mut ChaCha8Rng, birth: NaiveDate, start: NaiveDate) -> NaiveDate {
    let hi = start - Duration::days(1);
    let lo = birth.max(start - Duration::days(25 * 365));
    let span = (hi - lo).num_days();
    if span < 0 {
        // Born on or after the window opens: the card is valid from birth.
        birth
    } else {
        lo + Duration::days(rng.gen_range(0..=span))
    }
}

/// The day a changer's new card takes over: uniform in [start + 30 days, end − 30 days], so
/// both cards can appear in the data; the middle of the window when it is shorter than that.
fn change_date(rng: &mut ChaCha8Rng, start: NaiveDate, end: NaiveDate) -> NaiveDate {
    let lo = start + Duration::days(30);
    let hi = end - Duration::days(30);
    let span = (hi - lo).num_days();
    if span < 0 {
        start + Duration::days((end - start).num_days() / 2)
    } else {
        lo + Duration::days(rng.gen_range(0..=span))
    }
}

impl Insurance {
    fn random(rng: &mut ChaCha8Rng, pref_code: u8, age: i32, since: NaiveDate) -> Insurance {
        let kind = if age >= 75 {
            InsuranceKind::Kouki
        } else {
            match rng.gen_range(0..100) {
                0..=34 => InsuranceKind::Kyokai,
                35..=59 => InsuranceKind::Kumiai,
                60..=67 => InsuranceKind::Kyosai,
                _ => InsuranceKind::Kokuho,
            }
        };
        let insurer = insurer_number(rng, kind, pref_code);
        let is_self = if age < 18 { false } else { rng.gen_bool(0.75) };
        let (symbol, number) = card_numbers(rng, kind);
        let branch = branch_number(rng, kind, is_self);
        Insurance {
            kind,
            insurer,
            symbol,
            number,
            branch,
            is_self,
            since,
        }
    }

    /// A new card of `kind` at an insurer of prefecture `pref_code`, valid from `since`;
    /// 後期高齢者医療 is the prefecture's union ([`kouki_insurer`]).
    fn of_kind(
        rng: &mut ChaCha8Rng,
        kind: InsuranceKind,
        pref_code: u8,
        is_self: bool,
        since: NaiveDate,
    ) -> Insurance {
        let insurer = if kind == InsuranceKind::Kouki {
            kouki_insurer(pref_code)
        } else {
            insurer_number(rng, kind, pref_code)
        };
        let (symbol, number) = card_numbers(rng, kind);
        let branch = branch_number(rng, kind, is_self);
        Insurance {
            kind,
            insurer,
            symbol,
            number,
            branch,
            is_self: is_self || kind == InsuranceKind::Kouki,
            since,
        }
    }
}

/// 保険者番号 of a random insurer of `kind` in prefecture `pref_code` (国保: 6 digits).
fn insurer_number(rng: &mut ChaCha8Rng, kind: InsuranceKind, pref_code: u8) -> String {
    match kind {
        InsuranceKind::Kokuho => {
            let body = format!("{:02}{:03}", pref_code, rng.gen_range(1..1000));
            format!("{body}{}", check_digit(&body))
        }
        _ => {
            let houbetsu = match kind {
                InsuranceKind::Kyokai => "01",
                InsuranceKind::Kumiai => "06",
                InsuranceKind::Kyosai => "31",
                _ => "39",
            };
            let body = format!("{houbetsu}{:02}{:03}", pref_code, rng.gen_range(1..1000));
            format!("{body}{}", check_digit(&body))
        }
    }
}

/// The 後期高齢者医療広域連合 of a prefecture: one insurer per prefecture (法別 39).
pub fn kouki_insurer(pref_code: u8) -> String {
    let body = format!("39{pref_code:02}101");
    format!("{body}{}", check_digit(&body))
}

/// (記号, 番号) of a card of `kind`.
fn card_numbers(rng: &mut ChaCha8Rng, kind: InsuranceKind) -> (String, String) {
    match kind {
        InsuranceKind::Kouki => (
            String::new(),
            format!("{:08}", rng.gen_range(10_000_000..100_000_000u32)),
        ),
        InsuranceKind::Kokuho => (
            format!("{:02}", rng.gen_range(1..100)),
            format!("{}", rng.gen_range(1..1_000_000)),
        ),
        InsuranceKind::Kyokai => (
            format!("{:08}", rng.gen_range(1_000_000..100_000_000u32)),
            format!("{}", rng.gen_range(1..3000)),
        ),
        _ => (
            format!("{}", rng.gen_range(1..10000)),
            format!("{}", rng.gen_range(1..100_000)),
        ),
    }
}

/// 枝番: `00` for the insured person, another number for a dependant, none for 後期高齢者.
fn branch_number(rng: &mut ChaCha8Rng, kind: InsuranceKind, is_self: bool) -> String {
    if matches!(kind, InsuranceKind::Kouki) {
        String::new()
    } else if is_self {
        "00".to_string()
    } else {
        format!("{:02}", rng.gen_range(1..5))
    }
}

/// Why a person's insurance changed inside the window (with `SynthConfig::life_events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InsuranceEvent {
    /// Turned 75: 後期高齢者医療 from the birthday (法定).
    Turned75,
    /// A dependant (18–29) started work and left the family card for a card of their own.
    LeftFamilyCard,
    /// A new employer's insurance (a 健保組合 may sit in another prefecture).
    JobChange,
    /// Retired (60+) from an employer's insurance to 国民健康保険.
    Retired,
    /// 後期高齢者 who moved to another prefecture's union.
    MovedUnion,
}

/// Prefectures where head offices (and their 健保組合) gather: 東京, 大阪, 愛知, 神奈川.
const HEAD_OFFICE_PREFS: [u8; 4] = [13, 27, 23, 14];

/// The 75th birthday (a 29 February birthday turns 75 on 1 March).
fn seventy_fifth(birth: NaiveDate) -> NaiveDate {
    birth
        .with_year(birth.year() + 75)
        .or_else(|| NaiveDate::from_ymd_opt(birth.year() + 75, 3, 1))
        .unwrap_or(birth)
}

/// A true person.
#[derive(Debug, Clone)]
pub struct Person {
    /// 1-based index, written to truth.csv as `P{index:09}`.
    pub index: u64,
    pub sex: Sex,
    pub birth: NaiveDate,
    pub family: (String, String),
    pub given: (String, String),
    /// The family name before marriage, when the person married during the period.
    pub former_family: Option<(String, String)>,
    pub address: Address,
    pub prev_address: Option<Address>,
    pub phone: String,
    /// The card valid at the end of the data window.
    pub insurance: Insurance,
    /// The card valid before `insurance_changed_on`, for a person who changed insurance.
    pub prev_insurance: Option<Insurance>,
    /// The day `insurance` replaced `prev_insurance` (= `insurance.since`); inside the data
    /// window. `None` when the person never changed.
    pub insurance_changed_on: Option<NaiveDate>,
    /// Why the card changed (with `SynthConfig::life_events`).
    pub insurance_event: Option<InsuranceEvent>,
    pub twin: bool,
    pub namesake: bool,
    /// The share of persons expected to hold this name (family × given, from the tables'
    /// weights): what makes namesakes of common names likelier (`namesakes_by_frequency`).
    pub name_share: f64,
}

impl Person {
    pub fn person_id(&self) -> String {
        format!("P{:09}", self.index)
    }

    /// The card valid on `date`: the previous card before the change date, the current one
    /// from it on.
    pub fn insurance_on(&self, date: NaiveDate) -> &Insurance {
        match (&self.prev_insurance, self.insurance_changed_on) {
            (Some(prev), Some(t)) if date < t => prev,
            _ => &self.insurance,
        }
    }
}

/// Counts of identity drift and hard negatives actually present in the output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NoiseCounts {
    /// Registrations whose name carries a variant kanji.
    pub variant_kanji: u64,
    /// Registrations whose kana is half-width.
    pub halfwidth_kana: u64,
    /// Registrations with a non-default family/given separator.
    pub spacing: u64,
    /// Registrations with a kana typo.
    pub typo: u64,
    /// Registrations whose address is written in a non-canonical style.
    pub address_format: u64,
    /// Registrations written under the former (maiden) family name.
    pub marriage: u64,
    /// Registrations carrying the previous address.
    pub moves: u64,
    /// Registrations carrying the previous insurance: the card on file at export is the
    /// previous one, or the registration's records carry both cards (visits on both sides of
    /// the change date).
    pub insurance_change: u64,
    /// Persons who married during the period.
    pub persons_married: u64,
    /// Persons who moved.
    pub persons_moved: u64,
    /// Persons who changed insurance.
    pub persons_insurance_changed: u64,
    /// Twin pairs (each pair is two persons).
    pub twin_pairs: u64,
    /// Persons created as namesakes of an earlier person.
    pub namesakes: u64,
}

/// The identity one hospital holds for one person.
#[derive(Debug, Clone)]
pub struct RegIdentity {
    pub family_kanji: String,
    pub given_kanji: String,
    pub family_kana: String,
    pub given_kana: String,
    /// Separator between family and given name when written as one string.
    pub separator: &'static str,
    pub sex: Sex,
    pub birth: NaiveDate,
    pub postal: String,
    pub prefecture: &'static str,
    pub city: &'static str,
    pub address_line: String,
    pub phone: String,
    /// The card on file at export: the one valid at the registration's last visit. Snapshot
    /// records (patient master, FHIR Coverage, CSV person row) carry it.
    pub insurance: Insurance,
    /// The card this hospital saw before the person's change date, with that date, when the
    /// registration has visits on both sides of it. Per-visit records dated before the
    /// change (UKE receipts) carry this card.
    pub earlier_insurance: Option<(Insurance, NaiveDate)>,
}

impl RegIdentity {
    /// The card this registration's records dated `date` carry.
    pub fn insurance_on(&self, date: NaiveDate) -> &Insurance {
        match &self.earlier_insurance {
            Some((prev, until)) if date < *until => prev,
            _ => &self.insurance,
        }
    }

    pub fn name_kanji(&self) -> String {
        format!(
            "{}{}{}",
            self.family_kanji, self.separator, self.given_kanji
        )
    }

    pub fn name_kana(&self) -> String {
        let sep = if self.separator == "　" && is_halfwidth(&self.family_kana) {
            " "
        } else {
            self.separator
        };
        format!("{}{}{}", self.family_kana, sep, self.given_kana)
    }

    pub fn address(&self) -> String {
        format!("{}{}{}", self.prefecture, self.city, self.address_line)
    }
}

fn is_halfwidth(s: &str) -> bool {
    s.chars().any(|c| ('\u{FF61}'..='\u{FF9F}').contains(&c))
}

#[derive(Debug, Clone)]
pub struct CondRec {
    pub dx: usize,
    /// Unique within the hospital (problem number).
    pub problem_no: u64,
}

#[derive(Debug, Clone)]
pub struct DrugRec {
    pub drug: usize,
    pub per_day: u32,
    pub days: u32,
}

#[derive(Debug, Clone)]
pub struct LabRec {
    pub lab: usize,
    /// The value as written (fixed decimals).
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct VisitRec {
    pub date: NaiveDate,
    pub dept: usize,
    pub emergency: bool,
    /// Seconds after midnight of the visit's order time.
    pub time_secs: u32,
    pub conditions: Vec<CondRec>,
    pub drugs: Vec<DrugRec>,
    pub labs: Vec<LabRec>,
    /// Order numbers (15 digits) of the prescription and lab orders, unique in the hospital.
    pub rx_order: u64,
    pub lab_order: u64,
}

/// One (hospital, patient) registration.
#[derive(Debug, Clone)]
pub struct Registration {
    pub hospital: u32,
    pub patient_id: String,
    pub identity: RegIdentity,
    pub visits: Vec<VisitRec>,
}

/// The sequential generator of persons.
pub struct PersonSource {
    family_dist: WeightedIndex<u32>,
    male_dist: WeightedIndex<u32>,
    female_dist: WeightedIndex<u32>,
    place_dist: WeightedIndex<u32>,
    /// Recent persons: name, sex, birth date and how common the name is (the share of
    /// persons expected to hold it), for namesakes.
    recent: VecDeque<(String, String, String, String, Sex, NaiveDate, f64)>,
    /// Sums of the name tables' weights (a name's share is its weight over these).
    totals: [f64; 3],
    pending_twin: Option<Person>,
    next_index: u64,
    start: NaiveDate,
}

pub fn weighted(weights: impl Iterator<Item = u32>) -> WeightedIndex<u32> {
    // All tables have positive weights (checked by a unit test), so this cannot fail; fall
    // back to a single-entry distribution rather than panic.
    WeightedIndex::new(weights)
        .unwrap_or_else(|_| WeightedIndex::new([1u32]).unwrap_or_else(|_| unreachable!()))
}

/// How many rare surnames there are: the listed ones and every head + tail compound.
fn rare_family_count() -> usize {
    RARE_FAMILY.len() + RARE_HEADS.len() * RARE_TAILS.len()
}

fn rare_given_count() -> usize {
    RARE_GIVEN_HEADS.len() * RARE_GIVEN_TAILS.len()
}

/// A rare surname, uniform over [`rare_family_count`] names.
fn rare_family(rng: &mut ChaCha8Rng) -> (String, String) {
    let k = rng.gen_range(0..rare_family_count());
    match RARE_FAMILY.get(k) {
        Some(f) => (f.0.to_string(), f.1.to_string()),
        None => {
            let k = k - RARE_FAMILY.len();
            let (h, t) = (
                RARE_HEADS[k / RARE_TAILS.len()],
                RARE_TAILS[k % RARE_TAILS.len()],
            );
            (format!("{}{}", h.0, t.0), format!("{}{}", h.1, t.1))
        }
    }
}

/// A rare given name (either sex).
fn rare_given(rng: &mut ChaCha8Rng) -> (String, String) {
    let h = RARE_GIVEN_HEADS[rng.gen_range(0..RARE_GIVEN_HEADS.len())];
    let t = RARE_GIVEN_TAILS[rng.gen_range(0..RARE_GIVEN_TAILS.len())];
    (format!("{}{}", h.0, t.0), format!("{}{}", h.1, t.1))
}

fn age_at(birth: NaiveDate, on: NaiveDate) -> i32 {
    let mut age = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

impl PersonSource {
    pub fn new(cfg: &SynthConfig) -> Self {
        PersonSource {
            family_dist: weighted(FAMILY_NAMES.iter().map(|f| f.2)),
            male_dist: weighted(GIVEN_MALE.iter().map(|f| f.2)),
            female_dist: weighted(GIVEN_FEMALE.iter().map(|f| f.2)),
            place_dist: weighted(PLACES.iter().map(|p| p.weight)),
            recent: VecDeque::with_capacity(NAMESAKE_WINDOW),
            totals: [
                FAMILY_NAMES.iter().map(|f| f64::from(f.2)).sum(),
                GIVEN_MALE.iter().map(|f| f64::from(f.2)).sum(),
                GIVEN_FEMALE.iter().map(|f| f64::from(f.2)).sum(),
            ],
            pending_twin: None,
            next_index: 1,
            start: cfg.start_date,
        }
    }

    fn given(&self, rng: &mut ChaCha8Rng, sex: Sex) -> (String, String) {
        let (table, dist) = if sex == Sex::Female {
            (GIVEN_FEMALE, &self.female_dist)
        } else {
            (GIVEN_MALE, &self.male_dist)
        };
        let g = &table[dist.sample(rng)];
        (g.0.to_string(), g.1.to_string())
    }

    fn family(&self, rng: &mut ChaCha8Rng) -> (String, String) {
        let f = &FAMILY_NAMES[self.family_dist.sample(rng)];
        (f.0.to_string(), f.1.to_string())
    }

    fn phone(rng: &mut ChaCha8Rng, place: usize) -> String {
        if rng.gen_bool(0.5) {
            let pre = ["090", "080", "070"][rng.gen_range(0..3)];
            format!(
                "{pre}-{:04}-{:04}",
                rng.gen_range(0..10000),
                rng.gen_range(0..10000)
            )
        } else {
            let area = PLACES[place].area_code;
            let local_len = 6 - (area.len() - 2); // total 10 digits
            let mid_len = local_len - 4;
            let mid = rng.gen_range(10u32.pow(mid_len as u32 - 1)..10u32.pow(mid_len as u32));
            format!("{area}-{mid}-{:04}", rng.gen_range(0..10000))
        }
    }

    /// The share of persons expected to hold this name: the tables' weights, or for a rare
    /// part its share of the rare names (`rare` of the persons have a rare family name,
    /// half of them a rare given name).
    fn share(
        &self,
        family: &(String, String),
        given: &(String, String),
        sex: Sex,
        rare: f64,
    ) -> f64 {
        let (table, total) = if sex == Sex::Female {
            (GIVEN_FEMALE, self.totals[2])
        } else {
            (GIVEN_MALE, self.totals[1])
        };
        let f = FAMILY_NAMES
            .iter()
            .find(|x| x.0 == family.0)
            .map_or(rare / rare_family_count() as f64, |x| {
                (1.0 - rare) * f64::from(x.2) / self.totals[0]
            });
        let g = table
            .iter()
            .find(|x| x.0 == given.0)
            .map_or(rare / 2.0 / rare_given_count() as f64, |x| {
                (1.0 - rare / 2.0) * f64::from(x.2) / total
            });
        f * g
    }

    /// The insurance change of a person under `SynthConfig::life_events`: (day, reason,
    /// new card), or none.
    fn life_event(
        &self,
        rng: &mut ChaCha8Rng,
        cfg: &SynthConfig,
        birth: NaiveDate,
        pref_code: u8,
        card: &Insurance,
    ) -> Option<(NaiveDate, InsuranceEvent, Insurance)> {
        use InsuranceKind::*;
        let at75 = seventy_fifth(birth);
        if card.kind != Kouki && at75 > self.start && at75 <= cfg.end_date {
            let new = Insurance::of_kind(rng, Kouki, pref_code, true, at75);
            return Some((at75, InsuranceEvent::Turned75, new));
        }
        if !rng.gen_bool(cfg.noise.insurance_change) {
            return None;
        }
        let t = change_date(rng, self.start, cfg.end_date);
        if t >= at75 && card.kind != Kouki {
            // turns 75 after the window: the change happens before it, still under 75
            return None;
        }
        let age = age_at(birth, t);
        let elsewhere = |rng: &mut ChaCha8Rng, p: f64| {
            if rng.gen_bool(p) {
                HEAD_OFFICE_PREFS[rng.gen_range(0..HEAD_OFFICE_PREFS.len())]
            } else {
                pref_code
            }
        };
        let (why, kind, pref, is_self) = if card.kind == Kouki {
            let mut other = pref_code;
            while other == pref_code {
                other = rng.gen_range(1..=47);
            }
            (InsuranceEvent::MovedUnion, Kouki, other, true)
        } else if !card.is_self && (18..30).contains(&age) {
            let kind = if rng.gen_bool(0.5) { Kyokai } else { Kumiai };
            let pref = elsewhere(rng, 0.3);
            (InsuranceEvent::LeftFamilyCard, kind, pref, true)
        } else if age >= 60 && card.kind != Kokuho {
            (InsuranceEvent::Retired, Kokuho, pref_code, card.is_self)
        } else {
            let kind = [Kyokai, Kumiai, Kyosai][rng.gen_range(0..3)];
            let pref = elsewhere(rng, 0.3);
            (InsuranceEvent::JobChange, kind, pref, card.is_self)
        };
        let mut new = Insurance::of_kind(rng, kind, pref, is_self, t);
        if new.insurer == card.insurer && new.number == card.number {
            new.number = format!("{}9", new.number);
        }
        Some((t, why, new))
    }

    /// Generates the next person.
    pub fn next(
        &mut self,
        rng: &mut ChaCha8Rng,
        cfg: &SynthConfig,
        noise: &mut NoiseCounts,
    ) -> Person {
        let index = self.next_index;
        self.next_index += 1;
        let person = if let Some(mut twin) = self.pending_twin.take() {
            twin.index = index;
            twin
        } else {
            let p = self.fresh(rng, cfg, index, noise);
            if rng.gen_bool(cfg.twins_rate) && index < cfg.persons {
                self.pending_twin = Some(self.make_twin(rng, &p));
                noise.twin_pairs += 1;
            }
            p
        };
        if self.recent.len() == NAMESAKE_WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((
            person.family.0.clone(),
            person.family.1.clone(),
            person.given.0.clone(),
            person.given.1.clone(),
            person.sex,
            person.birth,
            person.name_share,
        ));
        person
    }

    fn make_twin(&self, rng: &mut ChaCha8Rng, p: &Person) -> Person {
        let sex = if rng.gen_bool(0.5) {
            Sex::Male
        } else {
            Sex::Female
        };
        let mut given = self.given(rng, sex);
        let mut tries = 0;
        while (given.0 == p.given.0 || given.1 == p.given.1) && tries < 50 {
            given = self.given(rng, sex);
            tries += 1;
        }
        if given.0 == p.given.0 || given.1 == p.given.1 {
            // Extremely unlikely; a deterministic distinct name keeps the twin a true negative.
            given = if sex == Sex::Female {
                ("双葉".into(), "フタバ".into())
            } else {
                ("双太".into(), "ソウタ".into())
            };
        }
        let name_share = self.share(&p.family, &given, sex, 0.0);
        let mut insurance = p.insurance.clone();
        // The twin is a dependent on the family card from before the window opens (the
        // earliest card's date when the sibling changed cards), so every visit has a valid card.
        insurance.since = p
            .prev_insurance
            .as_ref()
            .map_or(insurance.since, |prev| prev.since);
        if insurance.kind == InsuranceKind::Kouki {
            // 後期高齢者医療 insures each person on their own card: no dependents, so the
            // twin holds another number at the same prefectural union
            let mut number = insurance.number.clone();
            while number == insurance.number {
                number = format!("{:08}", rng.gen_range(10_000_000..100_000_000u32));
            }
            insurance.number = number;
            insurance.branch = String::new();
        } else {
            insurance.is_self = false;
            let b: u32 = insurance.branch.parse().unwrap_or(0);
            insurance.branch = format!("{:02}", b + 1);
        }
        Person {
            index: 0,
            sex,
            birth: p.birth,
            family: p.family.clone(),
            given,
            former_family: None,
            address: p.address.clone(),
            prev_address: p.prev_address.clone(),
            phone: p.phone.clone(),
            insurance,
            prev_insurance: None,
            insurance_changed_on: None,
            insurance_event: None,
            twin: true,
            namesake: false,
            name_share,
        }
    }

    fn fresh(
        &mut self,
        rng: &mut ChaCha8Rng,
        cfg: &SynthConfig,
        index: u64,
        noise: &mut NoiseCounts,
    ) -> Person {
        let mut sex = if rng.gen_bool(0.5) {
            Sex::Male
        } else {
            Sex::Female
        };
        // Older people dominate hospital data: the minimum of two uniforms skews early.
        let u = rng.gen_range(0.0f64..1.0).min(rng.gen_range(0.0f64..1.0));
        let year = 1930 + (u * 91.0) as i32;
        let doy = rng.gen_range(0..365);
        let mut birth = NaiveDate::from_yo_opt(year.min(2020), doy + 1).unwrap_or(self.start);
        let mut family = self.family(rng);
        let mut given = self.given(rng, sex);
        let rare = cfg.rare_names;
        let mut share = self.share(&family, &given, sex, rare);
        if rare > 0.0 && rng.gen_bool(rare) {
            family = rare_family(rng);
            if rng.gen_bool(0.5) {
                given = rare_given(rng);
            }
            share = self.share(&family, &given, sex, rare);
        }
        let mut namesake = false;
        if !self.recent.is_empty() && rng.gen_bool(cfg.namesake_rate) {
            let pick = if cfg.namesakes_by_frequency {
                // real namesakes are the holders of common names: pick in proportion
                let total: f64 = self.recent.iter().map(|r| r.6).sum();
                let mut x = rng.gen_range(0.0..total.max(f64::MIN_POSITIVE));
                self.recent
                    .iter()
                    .position(|r| {
                        x -= r.6;
                        x < 0.0
                    })
                    .unwrap_or(self.recent.len() - 1)
            } else {
                rng.gen_range(0..self.recent.len())
            };
            if let Some(r) = self.recent.get(pick) {
                family = (r.0.clone(), r.1.clone());
                given = (r.2.clone(), r.3.clone());
                sex = r.4;
                birth = r.5;
                share = r.6;
                namesake = true;
                noise.namesakes += 1;
            }
        }
        let age = age_at(birth, self.start);
        let address = Address::random(rng, &self.place_dist);
        let pref_code = PLACES[address.place].pref_code;
        let phone = Self::phone(rng, address.place);
        let since = card_since(rng, birth, self.start);
        let mut insurance = Insurance::random(rng, pref_code, age, since);
        if cfg.life_events && insurance.kind == InsuranceKind::Kouki {
            insurance.insurer = kouki_insurer(pref_code);
        }
        let mut former_family = None;
        if sex == Sex::Female && age >= 20 && !namesake && rng.gen_bool(cfg.noise.marriage) {
            let mut new = self.family(rng);
            let mut tries = 0;
            while new.1 == family.1 && tries < 20 {
                new = self.family(rng);
                tries += 1;
            }
            if new.1 != family.1 {
                former_family = Some(std::mem::replace(&mut family, new));
                noise.persons_married += 1;
            }
        }
        let prev_address = if rng.gen_bool(cfg.noise.moves) {
            noise.persons_moved += 1;
            Some(Address::random(rng, &self.place_dist))
        } else {
            None
        };
        // A changer's first card is the one drawn above (valid from before the window); the
        // new card takes over on a day inside the window.
        let mut insurance_changed_on = None;
        let mut insurance_event = None;
        let prev_insurance = if cfg.life_events {
            let event = self.life_event(rng, cfg, birth, pref_code, &insurance);
            event.map(|(t, why, new)| {
                noise.persons_insurance_changed += 1;
                insurance_changed_on = Some(t);
                insurance_event = Some(why);
                std::mem::replace(&mut insurance, new)
            })
        } else if rng.gen_bool(cfg.noise.insurance_change) {
            noise.persons_insurance_changed += 1;
            let changed = change_date(rng, self.start, cfg.end_date);
            let mut ins = Insurance::random(rng, pref_code, age, changed);
            if ins.insurer == insurance.insurer {
                ins.number = format!("{}9", ins.number);
            }
            insurance_changed_on = Some(changed);
            Some(std::mem::replace(&mut insurance, ins))
        } else {
            None
        };
        Person {
            index,
            sex,
            birth,
            family,
            given,
            former_family,
            address,
            prev_address,
            phone,
            insurance,
            prev_insurance,
            insurance_changed_on,
            insurance_event,
            twin: false,
            namesake,
            name_share: share,
        }
    }
}

/// Derives the identity hospital `h` holds, applying the noise of `cfg` and counting it.
/// The insurance follows the person's timeline, not chance: the card on file is the one
/// valid at the last of `visits` (sorted by date), and the earlier card is kept when the
/// visits straddle the change date.
pub fn registration_identity(
    rng: &mut ChaCha8Rng,
    p: &Person,
    visits: &[VisitRec],
    noise_cfg: &NoiseConfig,
    noise: &mut NoiseCounts,
) -> RegIdentity {
    let (mut family_kanji, mut family_kana) = p.family.clone();
    if let Some(former) = &p.former_family
        && rng.gen_bool(0.5)
    {
        family_kanji = former.0.clone();
        family_kana = former.1.clone();
        noise.marriage += 1;
    }
    let mut given_kanji = p.given.0.clone();
    let mut given_kana = p.given.1.clone();
    if rng.gen_bool(noise_cfg.variant_kanji) {
        let pick = rng.gen_range(0..8usize);
        if let Some(v) = text::variant_kanji(&family_kanji, |n| pick % n) {
            family_kanji = v;
            noise.variant_kanji += 1;
        } else if let Some(v) = text::variant_kanji(&given_kanji, |n| pick % n) {
            given_kanji = v;
            noise.variant_kanji += 1;
        }
    }
    if rng.gen_bool(noise_cfg.typo) {
        let pick = rng.gen_range(0..64usize);
        let in_family = rng.gen_bool(0.5);
        let target = if in_family {
            &mut family_kana
        } else {
            &mut given_kana
        };
        if let Some(t) = text::kana_typo(target, |n| pick % n) {
            *target = t;
            noise.typo += 1;
        }
    }
    if rng.gen_bool(noise_cfg.halfwidth_kana) {
        family_kana = text::to_halfwidth_kana(&family_kana);
        given_kana = text::to_halfwidth_kana(&given_kana);
        noise.halfwidth_kana += 1;
    }
    let separator = if rng.gen_bool(noise_cfg.spacing) {
        noise.spacing += 1;
        if rng.gen_bool(0.5) { " " } else { "" }
    } else {
        "　"
    };
    let address = match &p.prev_address {
        Some(prev) if rng.gen_bool(0.5) => {
            noise.moves += 1;
            prev
        }
        _ => &p.address,
    };
    let style = if rng.gen_bool(noise_cfg.address_format) {
        noise.address_format += 1;
        rng.gen_range(1..=3u8)
    } else {
        0
    };
    let (insurance, earlier_insurance) = match (visits.first(), visits.last()) {
        (Some(first), Some(last)) => {
            let on_file = p.insurance_on(last.date).clone();
            let earlier = match (&p.prev_insurance, p.insurance_changed_on) {
                (Some(prev), Some(t)) if first.date < t && t <= last.date => {
                    Some((prev.clone(), t))
                }
                _ => None,
            };
            (on_file, earlier)
        }
        // No visits: the hospital holds the card valid at the end of the window.
        _ => (p.insurance.clone(), None),
    };
    if p.prev_insurance.as_ref() == Some(&insurance) || earlier_insurance.is_some() {
        noise.insurance_change += 1;
    }
    RegIdentity {
        family_kanji,
        given_kanji,
        family_kana,
        given_kana,
        separator,
        sex: p.sex,
        birth: p.birth,
        postal: address.postal.clone(),
        prefecture: address.prefecture(),
        city: address.city(),
        address_line: address.line(style),
        phone: p.phone.clone(),
        insurance,
        earlier_insurance,
    }
}

/// Clinical-event distributions, built once.
pub struct Clinic {
    dx_dist: WeightedIndex<u32>,
    drug_dist: WeightedIndex<u32>,
}

/// Per-hospital counters that make order and problem numbers unique.
#[derive(Debug, Default, Clone)]
pub struct OrderCounter {
    pub next_order: u64,
    pub next_problem: u64,
}

impl Default for Clinic {
    fn default() -> Self {
        Self::new()
    }
}

impl Clinic {
    pub fn new() -> Self {
        Clinic {
            dx_dist: weighted(DIAGNOSES.iter().map(|d| d.weight)),
            drug_dist: weighted(DRUGS.iter().map(|d| d.weight)),
        }
    }

    /// Visits of one registration, sorted by date, one per date, each with at least one
    /// prescription or lab order (so every visit is visible in every format).
    pub fn visits(
        &self,
        rng: &mut ChaCha8Rng,
        cfg: &SynthConfig,
        counter: &mut OrderCounter,
    ) -> Vec<VisitRec> {
        let span = (cfg.end_date - cfg.start_date).num_days() + 1;
        let mut n = 1usize;
        while n < 12 && rng.gen_bool(0.55) {
            n += 1;
        }
        let n = n.min(span as usize);
        let mut days: Vec<i64> = Vec::with_capacity(n);
        while days.len() < n {
            let d = rng.gen_range(0..span);
            if !days.contains(&d) {
                days.push(d);
            }
        }
        days.sort_unstable();
        let dept = rng.gen_range(0..DEPARTMENTS.len());
        // The registration's problem list: 1–3 diagnoses, each first recorded at some visit.
        let n_dx = rng.gen_range(1..=3usize);
        let mut dx_at: Vec<(usize, usize)> = Vec::with_capacity(n_dx);
        for k in 0..n_dx {
            let dx = self.dx_dist.sample(rng);
            if dx_at.iter().any(|&(d, _)| d == dx) {
                continue;
            }
            let at = if k == 0 { 0 } else { rng.gen_range(0..n) };
            dx_at.push((dx, at));
        }
        let mut visits = Vec::with_capacity(n);
        for (vi, &d) in days.iter().enumerate() {
            let date = cfg.start_date + Duration::days(d);
            let mut conditions = Vec::new();
            for &(dx, at) in &dx_at {
                if at == vi {
                    counter.next_problem += 1;
                    conditions.push(CondRec {
                        dx,
                        problem_no: counter.next_problem,
                    });
                }
            }
            let mut drugs = Vec::new();
            let n_drugs = rng.gen_range(0..=3usize);
            for _ in 0..n_drugs {
                let drug = self.drug_dist.sample(rng);
                if drugs.iter().any(|r: &DrugRec| r.drug == drug) {
                    continue;
                }
                let (lo, hi) = DRUGS[drug].per_day;
                let days = [3u32, 5, 7, 14, 28, 30, 56, 90][rng.gen_range(0..8)];
                drugs.push(DrugRec {
                    drug,
                    per_day: rng.gen_range(lo..=hi),
                    days,
                });
            }
            let mut labs = Vec::new();
            if rng.gen_bool(0.45) || drugs.is_empty() {
                let n_labs = rng.gen_range(3..=8usize);
                let start = rng.gen_range(0..LABS.len());
                for k in 0..n_labs {
                    let lab = (start + k) % LABS.len();
                    labs.push(LabRec {
                        lab,
                        value: lab_value(rng, lab),
                    });
                }
            }
            counter.next_order += 1;
            let rx_order = counter.next_order;
            counter.next_order += 1;
            let lab_order = counter.next_order;
            visits.push(VisitRec {
                date,
                dept,
                emergency: rng.gen_bool(0.03),
                time_secs: rng.gen_range(9 * 3600..18 * 3600),
                conditions,
                drugs,
                labs,
                rx_order,
                lab_order,
            });
        }
        visits
    }
}

fn lab_value(rng: &mut ChaCha8Rng, lab: usize) -> String {
    let t = &LABS[lab];
    // Box–Muller: a normal draw without an extra dependency; values are clamped at zero.
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen_range(0.0..1.0);
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let v = (t.mean + z * t.sd).max(0.0);
    format!("{:.*}", t.decimals, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn check_digit_is_luhn() {
        // 79927398713 is the textbook Luhn example.
        assert_eq!(check_digit("7992739871"), '3');
    }

    #[test]
    fn all_tables_have_positive_weights() {
        assert!(FAMILY_NAMES.iter().all(|f| f.2 > 0));
        assert!(GIVEN_MALE.iter().all(|f| f.2 > 0));
        assert!(GIVEN_FEMALE.iter().all(|f| f.2 > 0));
        assert!(PLACES.iter().all(|f| f.weight > 0));
        assert!(DIAGNOSES.iter().all(|f| f.weight > 0));
        assert!(DRUGS.iter().all(|f| f.weight > 0));
        assert!(DIAGNOSES.len() >= 60 && DRUGS.len() >= 40 && LABS.len() >= 15);
    }

    #[test]
    fn twins_share_family_birth_address_but_not_given_name() {
        let cfg = SynthConfig {
            twins_rate: 1.0,
            namesake_rate: 0.0,
            ..Default::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut src = PersonSource::new(&cfg);
        let mut noise = NoiseCounts::default();
        let a = src.next(&mut rng, &cfg, &mut noise);
        let b = src.next(&mut rng, &cfg, &mut noise);
        assert!(b.twin && !a.twin);
        assert_eq!(a.family, b.family);
        assert_eq!(a.birth, b.birth);
        assert_eq!(a.address, b.address);
        assert_ne!(a.given.0, b.given.0);
        assert_ne!(a.given.1, b.given.1);
        assert_eq!(noise.twin_pairs, 1);
        // a family card with another branch, or (後期高齢者医療) a card of their own
        let mut kouki = 0;
        for _ in 0..400 {
            let a = src.next(&mut rng, &cfg, &mut noise);
            let b = src.next(&mut rng, &cfg, &mut noise);
            assert!(b.twin);
            assert_eq!(a.insurance.insurer, b.insurance.insurer);
            if a.insurance.kind == InsuranceKind::Kouki {
                kouki += 1;
                assert_ne!(a.insurance.number, b.insurance.number);
                assert!(b.insurance.branch.is_empty());
            } else {
                assert_eq!(a.insurance.number, b.insurance.number);
                assert_ne!(a.insurance.branch, b.insurance.branch);
            }
        }
        assert!(kouki > 0);
    }

    #[test]
    fn namesakes_share_name_and_birth_only() {
        let cfg = SynthConfig {
            twins_rate: 0.0,
            namesake_rate: 1.0,
            ..Default::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut src = PersonSource::new(&cfg);
        let mut noise = NoiseCounts::default();
        let a = src.next(&mut rng, &cfg, &mut noise);
        let b = src.next(&mut rng, &cfg, &mut noise);
        assert!(b.namesake);
        assert_eq!(
            (a.family.clone(), a.given.clone(), a.birth),
            (b.family.clone(), b.given.clone(), b.birth)
        );
        assert_ne!(a.insurance, b.insurance);
        assert_eq!(noise.namesakes, 1);
    }

    #[test]
    fn changers_switch_cards_on_a_day_inside_the_window_and_registrations_follow_it() {
        let cfg = SynthConfig {
            twins_rate: 0.0,
            namesake_rate: 0.0,
            noise: NoiseConfig {
                insurance_change: 1.0,
                ..NoiseConfig::none()
            },
            ..Default::default()
        };
        let (start, end) = (cfg.start_date, cfg.end_date);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut src = PersonSource::new(&cfg);
        let clinic = Clinic::new();
        let mut counter = OrderCounter::default();
        let mut noise = NoiseCounts::default();
        // (all visits before T, visits on both sides, all visits from T on)
        let mut kinds = [0u64; 3];
        for _ in 0..300 {
            let p = src.next(&mut rng, &cfg, &mut noise);
            let t = p.insurance_changed_on.expect("every person changes");
            assert!(t >= start + Duration::days(30) && t <= end - Duration::days(30));
            assert_eq!(p.insurance.since, t, "the new card is valid from T");
            let prev = p.prev_insurance.as_ref().expect("previous card");
            assert!(prev.since < start && prev.since >= p.birth);
            assert_ne!(prev, &p.insurance);
            assert_eq!(p.insurance_on(t - Duration::days(1)), prev);
            assert_eq!(p.insurance_on(t), &p.insurance);
            for _ in 0..3 {
                let visits = clinic.visits(&mut rng, &cfg, &mut counter);
                let id = registration_identity(&mut rng, &p, &visits, &cfg.noise, &mut noise);
                let (first, last) = (visits[0].date, visits[visits.len() - 1].date);
                // The snapshot card is the one valid at the last visit.
                assert_eq!(&id.insurance, p.insurance_on(last));
                // Every visit's records carry the card valid on its date.
                for v in &visits {
                    assert_eq!(id.insurance_on(v.date), p.insurance_on(v.date));
                }
                kinds[if last < t {
                    0
                } else if first < t {
                    1
                } else {
                    2
                }] += 1;
                assert_eq!(id.earlier_insurance.is_some(), first < t && t <= last);
            }
        }
        assert!(kinds.iter().all(|&k| k > 0), "{kinds:?}");
        assert_eq!(noise.insurance_change, kinds[0] + kinds[1]);
        assert_eq!(noise.persons_insurance_changed, 300);
    }

    #[test]
    fn cards_of_non_changers_and_twins_date_from_before_the_window() {
        let cfg = SynthConfig {
            twins_rate: 0.3,
            namesake_rate: 0.05,
            noise: NoiseConfig {
                insurance_change: 0.3,
                ..NoiseConfig::none()
            },
            ..Default::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let mut src = PersonSource::new(&cfg);
        let mut noise = NoiseCounts::default();
        let (mut twins, mut changers) = (0, 0);
        for _ in 0..500 {
            let p = src.next(&mut rng, &cfg, &mut noise);
            assert!(p.birth < cfg.start_date);
            match p.insurance_changed_on {
                Some(t) => {
                    changers += 1;
                    assert_eq!(p.insurance.since, t);
                }
                None => {
                    assert!(p.prev_insurance.is_none());
                    assert!(p.insurance.since < cfg.start_date);
                    assert!(p.insurance.since >= p.birth);
                    assert!(p.insurance.since >= cfg.start_date - Duration::days(25 * 365));
                }
            }
            twins += u32::from(p.twin);
        }
        assert!(twins > 0 && changers > 0);
    }

    #[test]
    fn claims_population_changes_cards_by_life_event_and_namesakes_hold_common_names() {
        let cfg = SynthConfig::claims(4000, 10, 9);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut src = PersonSource::new(&cfg);
        let mut noise = NoiseCounts::default();
        let mut events = std::collections::BTreeMap::new();
        let (mut rare, mut namesake_share, mut all_share) = (0, 0.0, 0.0);
        let mut namesake_rare = 0;
        for _ in 0..cfg.persons {
            let p = src.next(&mut rng, &cfg, &mut noise);
            let at75 = seventy_fifth(p.birth);
            if at75 > cfg.start_date && at75 <= cfg.end_date && !p.twin {
                // everyone turning 75 in the window moves to the prefecture's union that day
                assert_eq!(p.insurance_event, Some(InsuranceEvent::Turned75));
                assert_eq!(p.insurance_changed_on, Some(at75));
                assert_eq!(p.insurance.kind, InsuranceKind::Kouki);
                assert!(p.insurance.insurer.starts_with("39"));
            }
            if let Some(e) = p.insurance_event {
                *events.entry(format!("{e:?}")).or_insert(0) += 1;
                assert_ne!(p.prev_insurance.as_ref(), Some(&p.insurance));
            }
            rare += usize::from(!FAMILY_NAMES.iter().any(|f| f.0 == p.family.0));
            all_share += p.name_share;
            if p.namesake {
                namesake_share += p.name_share;
                namesake_rare += usize::from(!FAMILY_NAMES.iter().any(|f| f.0 == p.family.0));
            }
        }
        for e in ["Turned75", "LeftFamilyCard", "JobChange", "Retired"] {
            assert!(events.get(e).copied().unwrap_or(0) > 0, "{e}: {events:?}");
        }
        assert!(rare > 400, "{rare} rare family names");
        // namesakes hold names far commoner than the average person's
        let n = noise.namesakes as f64;
        assert!(n > 0.0);
        assert!(namesake_share / n > 1.2 * all_share / cfg.persons as f64);
        assert!((namesake_rare as f64) < 0.25 * n * rare as f64 / cfg.persons as f64 + 1.0);
    }

    #[test]
    fn a_short_window_still_gets_a_change_date_inside_it() {
        let start = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap();
        let end = NaiveDate::from_ymd_opt(2023, 1, 20).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let t = change_date(&mut rng, start, end);
        assert!(t >= start && t <= end);
        let since = card_since(
            &mut rng,
            NaiveDate::from_ymd_opt(2022, 12, 31).unwrap(),
            start,
        );
        assert_eq!(since, NaiveDate::from_ymd_opt(2022, 12, 31).unwrap());
    }

    #[test]
    fn visits_are_distinct_dates_with_an_order_each() {
        let cfg = SynthConfig::default();
        let clinic = Clinic::new();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut counter = OrderCounter::default();
        for _ in 0..200 {
            let v = clinic.visits(&mut rng, &cfg, &mut counter);
            assert!(!v.is_empty());
            assert!(v.windows(2).all(|w| w[0].date < w[1].date));
            assert!(v.iter().all(|x| !x.drugs.is_empty() || !x.labs.is_empty()));
            assert!(
                v.iter()
                    .all(|x| x.date >= cfg.start_date && x.date <= cfg.end_date)
            );
            assert!(!v[0].conditions.is_empty());
        }
    }
}
