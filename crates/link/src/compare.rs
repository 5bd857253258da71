//! The compact normalized record and the per-field comparison levels.
//!
//! Why compact: records are normalized once (NFKC, variant kanji, kana folding, address
//! parsing) and then compared millions of times; every comparison runs on `[char]` slices so
//! string metrics count characters, and names compare *jointly* across kanji, kana and Latin
//! scripts (the three spellings of one name are one piece of evidence, not three).

use chrono::Datelike;
use kiban_model::{Identity, Sex};

use crate::intern::{FastMap, Strs};
use crate::normalize::{self, NameParts};
use crate::sim::{jaro_winkler, levenshtein, within_one_edit};

/// Level value meaning "not comparable" (a field missing on either side): no evidence.
pub(crate) const NULL: u8 = u8::MAX;
/// Number of comparisons.
pub(crate) const N_CMP: usize = 7;
/// One comparison vector: the level of each comparison, or [`NULL`].
pub(crate) type Gamma = [u8; N_CMP];

pub(crate) const C_NAME: usize = 0;
pub(crate) const C_DOB: usize = 1;
pub(crate) const C_SEX: usize = 2;
pub(crate) const C_ADDR: usize = 3;
pub(crate) const C_POSTAL: usize = 4;
pub(crate) const C_INS: usize = 5;
pub(crate) const C_PHONE: usize = 6;

/// Comparison names and their level labels, level 0 = strongest agreement.
pub const COMPARISONS: [(&str, &[&str]); N_CMP] = [
    (
        "name",
        &[
            "exact",
            "one part exact, other close",
            "both close or swapped",
            "one part exact, other missing",
            "given exact, family differs",
            "family exact, given differs",
            "different",
            "family exact, given differs (Latin only)",
        ],
    ),
    (
        "birth_date",
        &[
            "exact",
            "day/month transposed",
            "one field differs",
            "different",
        ],
    ),
    ("sex", &["same", "different"]),
    (
        "address",
        &[
            "exact",
            "street and locality close",
            "street or locality close",
            "same prefecture/state",
            "different",
        ],
    ),
    (
        "postal_code",
        &[
            "exact",
            "one edit",
            "same area (first 3 digits)",
            "different",
        ],
    ),
    (
        "insurance",
        &[
            "same card",
            "same insured number, other insurer",
            "same card, different branch",
            "same insurer",
            "same insurer prefecture",
            "different",
        ],
    ),
    ("phone", &["exact", "one edit", "different"]),
];

pub(crate) fn n_levels(c: usize) -> usize {
    COMPARISONS[c].1.len()
}

/// Name level "family exact, given differs" in kanji or kana: the sibling/twin signature.
pub(crate) const NAME_GIVEN_DIFFERS: u8 = 5;
/// The same, seen only in Latin letters. Kept apart because romaji is transliterated
/// inconsistently and Latin-alphabet sources (FEBRL-like data) replace whole given names by
/// error; there a different given name is ordinary (weighted) evidence, not a veto.
pub(crate) const NAME_GIVEN_DIFFERS_LATIN: u8 = 7;
/// Insurance level "same card, different branch": a family member on the same card.
pub(crate) const INS_OTHER_BRANCH: u8 = 2;
/// Insurance levels from here to [`INS_DIFFERENT`] are "close": another card, but at the same
/// insurer or at an insurer of the same prefecture. A person who changes jobs or retires
/// mostly stays in the prefecture (the 協会けんぽ branch, the 国保 of the municipality, the
/// 後期高齢者 union are all prefectural), a namesake lives anywhere.
pub(crate) const INS_CLOSE: u8 = 3;
/// Insurance level "different": another card at an insurer of another (or unknown)
/// prefecture.
pub(crate) const INS_DIFFERENT: u8 = 5;

/// One script's name as interned ids: family, given and their concatenation (0 = missing).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Name {
    pub fam: u32,
    pub giv: u32,
    pub full: u32,
    pub split: bool,
}

impl Name {
    fn from(p: NameParts, strs: &mut Strs) -> Name {
        let full = strs.intern_chars(p.family.chars().chain(p.given.chars()));
        Name {
            fam: strs.intern_str(&p.family),
            giv: strs.intern_str(&p.given),
            full,
            split: p.split && !p.given.is_empty() && !p.family.is_empty(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.full == 0
    }
    fn remap(&mut self, map: &[u32]) {
        self.fam = map[self.fam as usize];
        self.giv = map[self.giv as usize];
        self.full = map[self.full as usize];
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Script {
    Kanji,
    Kana,
    Alpha,
}

/// A record normalized once for comparison: every value an id into the run's [`Strs`].
#[derive(Debug, Default, Clone)]
pub(crate) struct Rec {
    pub src: u32,
    pub names: [Name; 3],
    /// `(year << 9) | (month << 5) | day`, 0 when missing.
    pub dob: u32,
    /// 0 unknown/other, 1 male, 2 female.
    pub sex: u8,
    pub postal: u32,
    pub pref: u32,
    pub city: u32,
    pub street: u32,
    pub phone: u32,
    pub insurer: u32,
    /// The insurer's prefecture (digits 3–4 of the 8-digit 保険者番号, 1–47), 0 unknown.
    pub ins_pref: u8,
    pub insured: u32,
    pub branch: u32,
    /// When the card was held, as days of the common era (0 unknown): from its 資格取得日,
    /// else its first recorded service, to its last recorded service.
    pub card_from: u32,
    pub card_to: u32,
    /// Records sharing this record's full name, per script (term frequencies).
    pub tf: [u32; 3],
    /// How many *other* persons are expected to hold this record's full name (kanji, else
    /// kana), estimated from the run's records (`linker::name_rarity`): the namesake
    /// guard's measure of how common the name is.
    pub others: f32,
}

pub(crate) const SCRIPTS: [Script; 3] = [Script::Kanji, Script::Kana, Script::Alpha];

pub(crate) fn pack_dob(y: i32, m: u32, d: u32) -> u32 {
    ((y.clamp(0, 0x3F_FFFF) as u32) << 9) | ((m & 15) << 5) | (d & 31)
}

pub(crate) fn dob_parts(d: u32) -> (u32, u32, u32) {
    (d >> 9, (d >> 5) & 15, d & 31)
}

/// Per-thread memo of normalized values by their raw spelling: names and dates repeat
/// across registrations (of one person, of namesakes, of one birthday), and normalizing
/// them costs more than a lookup. (Addresses rarely repeat verbatim: not memoized.)
#[derive(Default)]
pub(crate) struct Normalizer<'a> {
    pub strs: Strs,
    names: [FastMap<&'a str, Name>; 3],
    dates: FastMap<&'a str, u32>,
}

impl<'a> Normalizer<'a> {
    #[cfg(test)]
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// Sized for `n` records (the tables then never grow on the way).
    pub fn with_capacity(n: usize) -> Self {
        fn map<K: Eq + std::hash::Hash, V>(k: usize) -> FastMap<K, V> {
            let mut m = FastMap::default();
            m.reserve(k);
            m
        }
        Normalizer {
            strs: Strs::with_capacity(n * 3),
            names: [map(n / 2), map(n / 2), map(0)],
            dates: map(n / 8),
        }
    }

    fn name(&mut self, k: usize, raw: &'a str) -> Name {
        if let Some(n) = self.names[k].get(raw) {
            return *n;
        }
        let p = match k {
            0 => normalize::normalize_kanji_name(raw),
            1 => normalize::normalize_kana_name(raw),
            _ => normalize::normalize_alpha_name(raw),
        };
        let n = Name::from(p, &mut self.strs);
        self.names[k].insert(raw, n);
        n
    }

    pub fn rec(&mut self, src: u32, id: &'a Identity) -> Rec {
        fn opt(s: &Option<String>) -> Option<&str> {
            s.as_deref().filter(|s| !s.trim().is_empty())
        }
        let mut names = [Name::default(); 3];
        for (k, raw) in [&id.name_kanji, &id.name_kana, &id.name_alpha]
            .into_iter()
            .enumerate()
        {
            if let Some(raw) = opt(raw) {
                names[k] = self.name(k, raw);
            }
        }
        // the ISO birth date, or the source text of one ingest could not read (still evidence)
        let dob = match id.birth_date_evidence() {
            None => 0,
            Some(raw) => match self.dates.get(raw) {
                Some(d) => *d,
                None => {
                    let d = normalize::parse_date_lenient(raw)
                        .map_or(0, |d| pack_dob(d.year, d.month, d.day));
                    self.dates.insert(raw, d);
                    d
                }
            },
        };
        let sex = match id.sex {
            Sex::Male => 1,
            Sex::Female => 2,
            _ => 0,
        };
        let (pref, city, street) = match opt(&id.address) {
            None => (0, 0, 0),
            Some(raw) => {
                let a = normalize::normalize_address(raw);
                // spaces carry no meaning inside a street or locality (FEBRL inserts them as
                // noise; Japanese addresses are already space-free)
                let nows = |c: &char| !c.is_whitespace();
                (
                    self.strs.intern_str(a.prefecture.as_deref().unwrap_or("")),
                    self.strs.intern_chars(a.municipality.chars().filter(nows)),
                    self.strs.intern_chars(a.rest.chars().filter(nows)),
                )
            }
        };
        let insured = {
            let sym = opt(&id.insured_symbol).and_then(normalize::insured_code);
            let num = opt(&id.insured_number).and_then(normalize::insured_code);
            match (sym, num) {
                (_, None) => 0,
                (s, Some(n)) => {
                    let s = s.unwrap_or_default();
                    self.strs
                        .intern_chars(s.chars().chain(std::iter::once('|')).chain(n.chars()))
                }
            }
        };
        let insurer = opt(&id.insurer_number).and_then(normalize::insurer_number);
        let ins_pref = insurer.as_deref().map_or(0, insurer_prefecture);
        let day = |s: &Option<String>| {
            opt(s)
                .and_then(normalize::parse_date_lenient)
                .and_then(|d| chrono::NaiveDate::from_ymd_opt(d.year, d.month, d.day))
                .and_then(|d| u32::try_from(d.num_days_from_ce()).ok())
                .unwrap_or(0)
        };
        let (first, last) = (day(&id.card_first_seen), day(&id.card_last_seen));
        let from = match day(&id.insured_since) {
            0 => first,
            since => since,
        };
        // a card issued after its last service here was still the one on file
        let (card_from, card_to) = if from == 0 || last == 0 {
            (0, 0)
        } else {
            (from, last.max(from))
        };
        let strs = &mut self.strs;
        let mut field = |v: Option<String>| v.map_or(0, |v| strs.intern_str(&v));
        Rec {
            src,
            names,
            dob,
            sex,
            postal: field(opt(&id.postal_code).and_then(normalize::postal_code)),
            pref,
            city,
            street,
            phone: field(opt(&id.phone).and_then(normalize::phone)),
            insurer: field(insurer),
            ins_pref,
            insured,
            branch: field(opt(&id.insured_branch).and_then(normalize::insured_branch)),
            card_from,
            card_to,
            tf: [0; 3],
            others: 0.0,
        }
    }
}

impl Rec {
    pub fn part(&self, s: Script) -> &Name {
        &self.names[s as usize]
    }

    /// Rewrites the ids of a record normalized with another table (see [`Strs::absorb`]).
    pub fn remap(&mut self, map: &[u32]) {
        for n in &mut self.names {
            n.remap(map);
        }
        for v in [
            &mut self.postal,
            &mut self.pref,
            &mut self.city,
            &mut self.street,
            &mut self.phone,
            &mut self.insurer,
            &mut self.insured,
            &mut self.branch,
        ] {
            *v = map[*v as usize];
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Agree {
    Missing,
    Differ,
    /// Close, but only one kanji apart in a name of at most two: a misconversion, or as
    /// often another name (twins 真男/修男); only a reading can tell.
    CloseShort,
    Close,
    Exact,
}

fn close(s: Script, a: &[char], b: &[char]) -> bool {
    match s {
        // kanji names are short: one differing character out of ≥ 2 is "close" (but see
        // `Agree::CloseShort`)
        Script::Kanji => a.len().min(b.len()) >= 2 && levenshtein(a, b) <= 1,
        Script::Kana | Script::Alpha => {
            // one edit in a 3-character kana name may be another name (ユウコ/ユウマ): alone it
            // counts as close; twins are caught by the joint kanji+kana rule, the sex check
            // and the cluster cross-check
            (a.len().min(b.len()) >= 3 && within_one_edit(a, b)) || jaro_winkler(a, b) >= 0.88
        }
    }
}

fn agree_chars(s: Script, a: &[char], b: &[char]) -> Agree {
    if a.is_empty() || b.is_empty() {
        Agree::Missing
    } else if a == b {
        Agree::Exact
    } else if close(s, a, b) {
        if s == Script::Kanji && a.len().max(b.len()) <= 2 {
            Agree::CloseShort
        } else {
            Agree::Close
        }
    } else {
        Agree::Differ
    }
}

fn agree(s: Script, strs: &Strs, a: u32, b: u32) -> Agree {
    if a == 0 || b == 0 {
        Agree::Missing
    } else if a == b {
        Agree::Exact
    } else {
        agree_chars(s, strs.get(a), strs.get(b))
    }
}

/// (family, given, swapped) agreement within one script, `None` if a side lacks the script.
fn script_cmp(s: Script, strs: &Strs, a: &Name, b: &Name) -> Option<(Agree, Agree, bool)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a.full == b.full {
        return Some((Agree::Exact, Agree::Exact, false));
    }
    if a.split && b.split {
        let swapped = a.fam == b.giv && a.giv == b.fam && a.fam != a.giv;
        return Some((
            agree(s, strs, a.fam, b.fam),
            agree(s, strs, a.giv, b.giv),
            swapped,
        ));
    }
    // one side unsplit: split it where the other side's family name ends, if it starts so
    let try_split = |sp: &Name, un: &Name| -> Option<(Agree, Agree, bool)> {
        let (fam, full) = (strs.get(sp.fam), strs.get(un.full));
        (sp.split && full.starts_with(fam)).then(|| {
            let rest = &full[fam.len()..];
            let g = if rest.is_empty() {
                Agree::Missing
            } else {
                agree_chars(s, strs.get(sp.giv), rest)
            };
            (Agree::Exact, g, false)
        })
    };
    if let Some(r) = try_split(a, b).or_else(|| try_split(b, a)) {
        return Some(r);
    }
    let sp = if a.split {
        Some(a)
    } else if b.split {
        Some(b)
    } else {
        None
    };
    if let Some(sp) = sp {
        let un = if a.split { b } else { a };
        let (giv, full) = (strs.get(sp.giv), strs.get(un.full));
        if !giv.is_empty() && full.ends_with(giv) {
            // unsplit side ends with the given name: family differs or is close
            let fam = &full[..full.len() - giv.len()];
            return Some((agree_chars(s, strs.get(sp.fam), fam), Agree::Exact, false));
        }
    }
    let full = agree_chars(s, strs.get(a.full), strs.get(b.full));
    Some((full, full, false))
}

/// Joint agreement over scripts: exact in any script wins; otherwise a single available
/// script decides; when two or more scripts are available and none is exact, the name
/// *differs* — independent transcriptions that are each merely "close" (健太/健二 and
/// ケンタ/ケンジ) are the twin signature, not a typo.
fn joint(xs: &[Agree; 3]) -> Agree {
    let mut n = 0;
    let mut last = Agree::Missing;
    for &a in xs {
        if a == Agree::Exact {
            return Agree::Exact;
        }
        if a != Agree::Missing {
            n += 1;
            last = if a == Agree::CloseShort {
                Agree::Close
            } else {
                a
            };
        }
    }
    match n {
        0 => Agree::Missing,
        1 => last,
        _ => Agree::Differ,
    }
}

/// The joint name level, for the exact level the script whose term frequency applies,
/// whether the given names agree only as one kanji apart (no reading to confirm) under the
/// same family name (the sibling risk), and whether family and given names both differ in
/// kanji or kana.
pub(crate) fn name_level(strs: &Strs, a: &Rec, b: &Rec) -> (u8, Option<Script>, bool, bool) {
    let mut fams = [Agree::Missing; 3];
    let mut givs = [Agree::Missing; 3];
    let mut swapped = false;
    let mut tf_script = None;
    for (k, s) in SCRIPTS.iter().enumerate() {
        if let Some((f, g, sw)) = script_cmp(*s, strs, a.part(*s), b.part(*s)) {
            fams[k] = f;
            givs[k] = g;
            swapped |= sw;
            if f == Agree::Exact && g == Agree::Exact && tf_script.is_none() {
                tf_script = Some(*s);
            }
        }
    }
    let (f, g) = (joint(&fams), joint(&givs));
    let sibling_risk = f == Agree::Exact
        && givs[0] == Agree::CloseShort
        && givs[1] == Agree::Missing
        && givs[2] == Agree::Missing;
    use Agree::*;
    let level = match (f, g) {
        (Exact, Exact) => 0,
        (Exact, Close) | (Close, Exact) => 1,
        _ if swapped => 2,
        (Close, Close) => 2,
        (Exact, Missing) | (Missing, Exact) => 3,
        (Differ, Exact) => 4,
        (Exact, Differ) if givs[0] != Missing || givs[1] != Missing => NAME_GIVEN_DIFFERS,
        (Exact, Differ) => NAME_GIVEN_DIFFERS_LATIN,
        (Missing, Missing) => NULL,
        _ => 6,
    };
    // family and given name both differ in kanji or kana: another member of the household
    // (twins, one of them married), not a misspelling
    let names_differ = f == Differ
        && g == Differ
        && (givs[0] != Missing || givs[1] != Missing)
        && (fams[0] != Missing || fams[1] != Missing);
    (
        level,
        if level == 0 { tf_script } else { None },
        sibling_risk,
        names_differ,
    )
}

fn dob_level(a: u32, b: u32) -> u8 {
    if a == 0 || b == 0 {
        return NULL;
    }
    if a == b {
        return 0;
    }
    let ((ya, ma, da), (yb, mb, db)) = (dob_parts(a), dob_parts(b));
    if ya == yb && ma == db && da == mb {
        1
    } else if u8::from(ya != yb) + u8::from(ma != mb) + u8::from(da != db) == 1 {
        2
    } else {
        3
    }
}

fn str_close(a: &[char], b: &[char]) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let (s, l) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    (s.len() >= 4 && l.starts_with(s)) || jaro_winkler(a, b) >= 0.9
}

fn address_level(strs: &Strs, a: &Rec, b: &Rec) -> u8 {
    let empty = |r: &Rec| r.pref == 0 && r.city == 0 && r.street == 0;
    if empty(a) || empty(b) {
        return NULL;
    }
    let pref_conflict = a.pref != 0 && b.pref != 0 && a.pref != b.pref;
    let st_eq = a.street != 0 && a.street == b.street;
    let ct_eq = a.city != 0 && a.city == b.city;
    let no_city = a.city == 0 && b.city == 0;
    if !pref_conflict && st_eq && (ct_eq || no_city) {
        return 0;
    }
    let st_close = st_eq || str_close(strs.get(a.street), strs.get(b.street));
    let ct_close = ct_eq || str_close(strs.get(a.city), strs.get(b.city));
    if !pref_conflict && st_close && (ct_close || no_city) {
        1
    } else if st_close || ct_close {
        2
    } else if a.pref != 0 && a.pref == b.pref {
        3
    } else {
        4
    }
}

fn postal_level(strs: &Strs, a: u32, b: u32) -> u8 {
    if a == 0 || b == 0 {
        return NULL;
    }
    if a == b {
        return 0;
    }
    let (a, b) = (strs.get(a), strs.get(b));
    if a.len() == b.len() && within_one_edit(a, b) {
        1
    } else if a.len() >= 3 && b.len() >= 3 && a[..3] == b[..3] {
        2
    } else {
        3
    }
}

/// The prefecture code an 8-digit 保険者番号 carries in its digits 3–4 (法別番号 first, or
/// `00` for a zero-filled 国保 number; then the 都道府県番号), 0 when not 1–47 or when the
/// number is not 8 digits long.
fn insurer_prefecture(insurer: &str) -> u8 {
    if insurer.len() != 8 {
        return 0;
    }
    insurer
        .get(2..4)
        .and_then(|d| d.parse::<u8>().ok())
        .filter(|p| (1..=47).contains(p))
        .unwrap_or(0)
}

fn insurance_level(a: &Rec, b: &Rec) -> u8 {
    let has = |r: &Rec| r.insured != 0 || r.insurer != 0;
    if !has(a) || !has(b) {
        return NULL;
    }
    let insurer_eq = a.insurer != 0 && a.insurer == b.insurer;
    let insurer_missing = a.insurer == 0 || b.insurer == 0;
    if a.insured != 0 && a.insured == b.insured {
        if insurer_eq || insurer_missing {
            if a.branch != 0 && b.branch != 0 && a.branch != b.branch {
                INS_OTHER_BRANCH
            } else {
                0
            }
        } else {
            1
        }
    } else if insurer_eq {
        INS_CLOSE
    } else if a.ins_pref != 0 && a.ins_pref == b.ins_pref {
        INS_CLOSE + 1
    } else {
        INS_DIFFERENT
    }
}

/// Days one card may still be billed after another began (a claim for the last days of the
/// old card, a hospital that updates the card at the next visit) and still count as one
/// card after the other.
const CARD_SLACK_DAYS: u32 = 31;

/// When the two different cards of a pair were in use (see `Identity::card_first_seen`).
/// One person holds one health insurance at a time: two cards in use over the same months
/// are two people's, and an insurance change shows as one card's use ending before the
/// other card began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CardTime {
    /// A side's card is undated (or there is no card).
    Unknown = 0,
    /// Both are dated but the cards are the same (or the same insured number): not compared.
    Dated = 1,
    /// Another card, whose use ended (within [`CARD_SLACK_DAYS`]) before the other began.
    Sequential = 2,
    /// Another card, in use while the other was.
    Overlap = 3,
}

fn card_time(a: &Rec, b: &Rec, ins: u8) -> CardTime {
    let dated = |r: &Rec| r.card_from != 0 && r.card_to != 0;
    if !dated(a) || !dated(b) {
        CardTime::Unknown
    } else if ins == NULL || ins < INS_CLOSE {
        CardTime::Dated
    } else if !spans_overlap((a.card_from, a.card_to), (b.card_from, b.card_to)) {
        CardTime::Sequential
    } else {
        CardTime::Overlap
    }
}

/// Classes of how long a card was seen in use (`card_to − card_from`): at most a month (a
/// card seen once), a year, three years, longer.
pub(crate) const WINDOW_CLASSES: usize = 4;

/// The [`WINDOW_CLASSES`] class of a dated card's span of use (0 for an undated one).
pub(crate) fn window_class(r: &Rec) -> usize {
    match r.card_to.saturating_sub(r.card_from) {
        0..=31 => 0,
        32..=365 => 1,
        366..=1095 => 2,
        _ => 3,
    }
}

/// The window-class pair of two records' cards, order-free: an index below
/// `WINDOW_CLASSES²`.
pub(crate) fn window_pair(a: &Rec, b: &Rec) -> usize {
    let (x, y) = (window_class(a), window_class(b));
    x.min(y) * WINDOW_CLASSES + x.max(y)
}

/// Whether two records show one card (the same insured number at the same insurer, or with
/// an insurer missing on a side): what a cluster's card spans are gathered by.
pub(crate) fn same_card(a: &Rec, b: &Rec) -> bool {
    let l = insurance_level(a, b);
    l != NULL && l < INS_CLOSE
}

/// Whether two records show two different cards (both have one).
pub(crate) fn cards_differ(a: &Rec, b: &Rec) -> bool {
    let l = insurance_level(a, b);
    l != NULL && l >= INS_CLOSE
}

/// Whether two spans of use `(from, to)` of different cards overlap by more than
/// [`CARD_SLACK_DAYS`]: one person holds one card at a time.
pub(crate) fn spans_overlap(a: (u32, u32), b: (u32, u32)) -> bool {
    !(a.1 <= b.0 + CARD_SLACK_DAYS || b.1 <= a.0 + CARD_SLACK_DAYS)
}

fn phone_level(strs: &Strs, a: u32, b: u32) -> u8 {
    if a == 0 || b == 0 {
        NULL
    } else if a == b {
        0
    } else if within_one_edit(strs.get(a), strs.get(b)) {
        1
    } else {
        2
    }
}

/// A comparison: the levels, the script of an exact name match (for the term-frequency
/// adjustment) and whether both sides show the same insurance card *and* branch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cmp {
    pub g: Gamma,
    pub tf: Option<Script>,
    /// Same insurer, card and branch (枝番), both recorded: the branch number identifies the
    /// insured individual, so this is one person's card, never a family member's.
    pub same_member: bool,
    /// Same family name, given names one kanji apart with no reading on one side.
    pub sibling_risk: bool,
    /// Family and given names both differ, in kanji or kana (see
    /// [`HardNegative::NamesDiffer`]).
    pub names_differ: bool,
    pub card_time: CardTime,
    /// [`CardTime::Sequential`] only within [`CARD_SLACK_DAYS`]: the old card was still
    /// billed after the new one began (a late claim) — or two people's cards that happen
    /// to meet. Weighed apart from a clean gap by the claims guard.
    pub card_slack: bool,
}

/// The bits of [`Cmp::pack`] that hold [`CardTime`].
pub(crate) const CARD_TIME_BITS: u64 = 3 << 60;

impl Cmp {
    /// Eight bytes: the seven levels and a flag byte (the card timeline in bits 60–61).
    pub fn pack(&self) -> u64 {
        let mut x = 0u64;
        for c in 0..N_CMP {
            x |= u64::from(self.g[c]) << (8 * c);
        }
        let tf = match self.tf {
            None => 0u64,
            Some(Script::Kanji) => 1,
            Some(Script::Kana) => 2,
            Some(Script::Alpha) => 3,
        };
        x | ((tf
            | (u64::from(self.same_member) << 2)
            | (u64::from(self.sibling_risk) << 3)
            | ((self.card_time as u64) << 4)
            | (u64::from(self.names_differ) << 6)
            | (u64::from(self.card_slack) << 7))
            << 56)
    }

    pub fn unpack(x: u64) -> Cmp {
        let mut g = [0u8; N_CMP];
        for (c, v) in g.iter_mut().enumerate() {
            *v = (x >> (8 * c)) as u8;
        }
        let flags = x >> 56;
        Cmp {
            g,
            tf: match flags & 3 {
                1 => Some(Script::Kanji),
                2 => Some(Script::Kana),
                3 => Some(Script::Alpha),
                _ => None,
            },
            same_member: flags & 4 != 0,
            sibling_risk: flags & 8 != 0,
            names_differ: flags & 64 != 0,
            card_slack: flags & 128 != 0,
            card_time: match (flags >> 4) & 3 {
                1 => CardTime::Dated,
                2 => CardTime::Sequential,
                3 => CardTime::Overlap,
                _ => CardTime::Unknown,
            },
        }
    }
}

/// Compares two records.
pub(crate) fn compare(strs: &Strs, a: &Rec, b: &Rec) -> Cmp {
    let (name, tf, sibling_risk, names_differ) = name_level(strs, a, b);
    let sex = if a.sex == 0 || b.sex == 0 {
        NULL
    } else {
        u8::from(a.sex != b.sex)
    };
    let ins = insurance_level(a, b);
    Cmp {
        g: [
            name,
            dob_level(a.dob, b.dob),
            sex,
            address_level(strs, a, b),
            postal_level(strs, a.postal, b.postal),
            ins,
            phone_level(strs, a.phone, b.phone),
        ],
        tf,
        same_member: ins == 0 && a.insurer != 0 && a.branch != 0 && a.branch == b.branch,
        sibling_risk,
        names_differ,
        card_time: card_time(a, b, ins),
        card_slack: card_time(a, b, ins) == CardTime::Sequential
            && a.card_to > b.card_from
            && b.card_to > a.card_from,
    }
}

/// Why a pair must not be linked automatically whatever its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HardNegative {
    /// Same family name, clearly different given name: siblings, twins, spouses.
    GivenNameDiffers,
    /// Same insurance card, different branch number: another family member on the card.
    OtherCardBranch,
    /// Recorded sexes differ and the names are not identical: opposite-sex twins/siblings.
    SexDiffers,
    /// Same family name, given names one kanji apart (真男/修男) and no reading (kana) on one
    /// side to tell a misconversion from a sibling's name, and no card branch identifying the
    /// individual. Not a contradiction: only the direct link waits for a clerk.
    SimilarGivenName,
    /// Family and given names both differ, in kanji or kana: whatever the shared birth date,
    /// address, phone or family card, another person of the household — twins of whom one
    /// married, a spouse born the same day. A misspelling changes one part, a marriage the
    /// family name only.
    NamesDiffer,
    /// Same name (and typically birth date) but no corroborating identifier (residence,
    /// phone, insurance) agrees — all disagree or none is available on both sides: a
    /// namesake, or a person who moved and left nothing else to confirm it. A clerk decides.
    Namesake,
}

impl HardNegative {
    /// Whether the pair *contradicts* being one person (twins, family members), as opposed
    /// to merely lacking corroboration (namesake). Only contradictions veto a cluster merge
    /// through another member; a lack of corroboration only stops the direct link.
    pub fn is_contradiction(self) -> bool {
        !matches!(
            self,
            HardNegative::Namesake | HardNegative::SimilarGivenName
        )
    }
}

/// Number of corroboration cells (see [`corroboration`]).
pub(crate) const N_CELLS: usize = 24;

/// The state of one corroborator in a pair that no corroborator supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsupported {
    /// Not observed on both sides.
    Absent = 0,
    /// Observed and different.
    Differs = 1,
    /// Observed, not the same, but near: the same municipality or postal area; another card
    /// at the same insurer or at an insurer of the same prefecture. Not a contradiction.
    Close = 2,
    /// Insurance only: a close card (as [`Unsupported::Close`]) whose use ended before the
    /// other card began ([`CardTime::Sequential`]) — what an insurance change looks like,
    /// and what a namesake's card shows only by chance.
    Succeeds = 3,
}

/// The cell of a combination of corroborator states: residence (absent, differs, close) ×
/// phone (absent or differs: a phone one edit apart agrees) × insurance (absent, differs,
/// close, succeeds).
pub(crate) fn cell_of(res: Unsupported, phone: Unsupported, ins: Unsupported) -> usize {
    res as usize * 8 + phone as usize * 4 + ins as usize
}

/// The corroborators of a pair that agrees on name and birth date: residence (address and
/// postal code — one piece of evidence, a move changes both), phone and insurance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Corroboration {
    /// [`cell_of`] the corroborators' states; meaningful when `unsupported`.
    pub cell: usize,
    /// No observed corroborator agrees (vacuously true when none is observed).
    pub unsupported: bool,
    /// Nothing agrees and the residence, if observed, is not even close: what the namesake
    /// guard holds back.
    pub contradicted: bool,
}

pub(crate) fn corroboration(g: &Gamma, time: CardTime) -> Corroboration {
    use Unsupported::*;
    let (addr, postal) = (g[C_ADDR], g[C_POSTAL]);
    let seen = |l: u8| l != NULL;
    let res_agrees = (seen(addr) && addr <= 1) || (seen(postal) && postal <= 1);
    let res = if addr == 2 || postal == 2 {
        Close
    } else if seen(addr) || seen(postal) {
        Differs
    } else {
        Absent
    };
    let phone_agrees = seen(g[C_PHONE]) && g[C_PHONE] <= 1;
    let phone = if seen(g[C_PHONE]) { Differs } else { Absent };
    let ins_agrees = seen(g[C_INS]) && g[C_INS] < INS_CLOSE;
    let ins = match g[C_INS] {
        NULL => Absent,
        INS_DIFFERENT => Differs,
        _ if time == CardTime::Sequential => Succeeds,
        _ => Close,
    };
    let unsupported = !res_agrees && !phone_agrees && !ins_agrees;
    Corroboration {
        cell: cell_of(res, phone, ins),
        unsupported,
        // an insurer in the same prefecture is far weaker evidence than a residence in the
        // same municipality: it feeds the cell's calibrated probability, it does not by
        // itself stop the namesake guard
        contradicted: unsupported && res != Close,
    }
}

/// Whether the residence was observed on both sides and is neither the same nor close
/// (address, else postal code): a move.
pub(crate) fn residence_differs(g: &Gamma) -> bool {
    let (addr, postal) = (g[C_ADDR], g[C_POSTAL]);
    let seen = |l: u8| l != NULL;
    (seen(addr) || seen(postal)) && !(seen(addr) && addr <= 2) && !(seen(postal) && postal <= 2)
}

/// Whether a corroborator of the cell is close (see [`Unsupported::Close`]; a card that
/// succeeds the other is close too).
pub(crate) fn cell_has_close(cell: usize) -> bool {
    let ins = cell % 4;
    cell / 8 == Unsupported::Close as usize
        || ins == Unsupported::Close as usize
        || ins == Unsupported::Succeeds as usize
}

/// How many corroborators a cell observes.
pub(crate) fn cell_observed(cell: usize) -> u32 {
    u32::from(cell / 8 != 0) + u32::from((cell % 8) / 4 != 0) + u32::from(!cell.is_multiple_of(4))
}

/// Whether an unsupported pair of the namesake stratum observed neither residence nor phone
/// (claims: name, birth date, sex and the card only). Its match probability comes from how
/// common the name is and what the two cards' dates say (`linker::ClaimsGuard`), never
/// from address or phone.
pub(crate) fn claims_only(g: &Gamma) -> bool {
    g[C_ADDR] == NULL && g[C_POSTAL] == NULL && g[C_PHONE] == NULL
}

/// Whether a pair is in the stratum where namesakes hide: exact name, exact birth date,
/// sexes not recorded as different.
pub(crate) fn namesake_stratum(g: &Gamma) -> bool {
    g[C_NAME] == 0 && g[C_DOB] == 0 && g[C_SEX] != 1
}

/// Hard negatives of a comparison (see [`HardNegative`]). `lift[cell]` says, per
/// corroboration cell, whether a pair of the namesake stratum that no corroborator supports
/// is nevertheless a match with a probability at the link threshold (estimated from the
/// population, see `linker::namesake_cells`).
pub(crate) fn hard_negative(
    c: &Cmp,
    twin_guard: bool,
    namesake_guard: bool,
    lift: &[bool; N_CELLS],
) -> Option<HardNegative> {
    let g = &c.g;
    // the same card *and* branch is one insured individual: a sibling has another branch
    if twin_guard && g[C_NAME] == NAME_GIVEN_DIFFERS && !c.same_member {
        return Some(HardNegative::GivenNameDiffers);
    }
    if g[C_INS] == INS_OTHER_BRANCH {
        return Some(HardNegative::OtherCardBranch);
    }
    if twin_guard && g[C_SEX] == 1 && g[C_NAME] != 0 {
        return Some(HardNegative::SexDiffers);
    }
    if twin_guard && c.names_differ && !c.same_member {
        return Some(HardNegative::NamesDiffer);
    }
    if twin_guard && c.sibling_risk && !c.same_member {
        return Some(HardNegative::SimilarGivenName);
    }
    if namesake_guard && g[C_NAME] <= 3 {
        let k = corroboration(g, c.card_time);
        if k.contradicted && !(namesake_stratum(g) && lift[k.cell]) {
            return Some(HardNegative::Namesake);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(ids: &[Identity]) -> (Strs, Vec<Rec>) {
        let mut n = Normalizer::new();
        let v: Vec<Rec> = ids.iter().map(|i| n.rec(0, i)).collect();
        (n.strs, v)
    }

    fn id(kanji: &str, kana: &str, dob: &str) -> Identity {
        let mut id = Identity::new("x");
        id.name_kanji = Some(kanji.into());
        id.name_kana = Some(kana.into());
        id.birth_date = Some(dob.into());
        id
    }

    #[test]
    fn joint_name_comparison_counts_scripts_once() {
        let mut only_kana = Identity::new("y");
        only_kana.name_kana = Some("ヤマダ ケンダ".into());
        let (s, r) = recs(&[
            id("渡邊 太郎", "ワタナベ タロウ", "1975-03-01"),
            id("渡辺太郎", "ﾜﾀﾅﾍﾞ ﾀﾛｳ", "S50.3.1"),
            // kanji misconversion but same reading: still exact through kana
            id("渡辺 太朗", "ワタナベ タロウ", "1975-03-01"),
            // twins: both scripts only "close" on the given name → differs
            id("山田 健太", "ヤマダ ケンタ", "1990-01-01"),
            id("山田 健二", "ヤマダ ケンジ", "1990-01-01"),
            // a kana typo alone stays close
            id("山田 健太", "ヤマダ ケンダ", "1990-01-01"),
            only_kana,
        ]);
        assert_eq!(compare(&s, &r[0], &r[1]).g[C_NAME], 0);
        assert_eq!(compare(&s, &r[0], &r[1]).g[C_DOB], 0);
        assert_eq!(compare(&s, &r[0], &r[1]).tf, Some(Script::Kanji));
        assert_eq!(name_level(&s, &r[0], &r[2]).0, 0);
        assert_eq!(name_level(&s, &r[3], &r[4]).0, NAME_GIVEN_DIFFERS);
        assert_eq!(name_level(&s, &r[3], &r[5]).0, 0);
        assert_eq!(name_level(&s, &r[3], &r[6]).0, 1);
    }

    #[test]
    fn a_birth_date_kept_as_text_is_still_evidence() {
        // ingest keeps a birth date that is no calendar date as its source text
        let mut a = id("山田 太郎", "ヤマダ タロウ", "");
        a.birth_date = None;
        a.birth_date_text = Some("1975-02-30".into());
        let mut b = a.clone();
        b.birth_date_text = Some("S50.2.30".into());
        let (s, r) = recs(&[a, b]);
        assert_ne!(r[0].dob, 0);
        assert_eq!(compare(&s, &r[0], &r[1]).g[C_DOB], 0);
    }

    #[test]
    fn a_household_member_with_another_family_and_given_name_is_a_hard_negative() {
        // twins, one married: the same birth date, address and phone, no name part in common
        let mut a = id("原 ハル", "ハラ ハル", "1954-04-16");
        let mut b = id("松尾 澄子", "マツオ スミコ", "1954-04-16");
        let mut latin_a = Identity::new("l1");
        latin_a.name_alpha = Some("john smith".into());
        let mut latin_b = Identity::new("l2");
        latin_b.name_alpha = Some("peter brown".into());
        for x in [&mut a, &mut b] {
            x.address = Some("東京都八王子市元本郷町4丁目28番9号".into());
            x.phone = Some("042-600-1234".into());
        }
        let married = id("松尾 ハル", "マツオ ハル", "1954-04-16");
        let (s, r) = recs(&[a, b, married, latin_a, latin_b]);
        let c = compare(&s, &r[0], &r[1]);
        assert!(c.names_differ);
        assert_eq!(
            hard_negative(&c, true, true, &[false; N_CELLS]),
            Some(HardNegative::NamesDiffer)
        );
        assert!(HardNegative::NamesDiffer.is_contradiction());
        assert_eq!(hard_negative(&c, false, true, &[false; N_CELLS]), None);
        // a marriage changes the family name only
        assert!(!compare(&s, &r[0], &r[2]).names_differ);
        // Latin-only names (transliterated, replaced by error in FEBRL-like data) are
        // weighed, not vetoed
        assert!(!compare(&s, &r[3], &r[4]).names_differ);
    }

    #[test]
    fn one_kanji_apart_without_a_reading_is_a_sibling_risk() {
        let mut twin = Identity::new("t");
        twin.name_kanji = Some("下内 修男".into());
        twin.birth_date = Some("1982-01-11".into());
        let (s, r) = recs(&[id("下内 真男", "シモウチ シンオ", "1982-01-11"), twin]);
        let c = compare(&s, &r[0], &r[1]);
        assert_eq!(c.g[C_NAME], 1);
        assert!(c.sibling_risk);
        assert_eq!(
            hard_negative(&c, true, true, &[true; N_CELLS]),
            Some(HardNegative::SimilarGivenName)
        );
        assert!(!HardNegative::SimilarGivenName.is_contradiction());
        // a reading on both sides decides instead
        let (s, r) = recs(&[
            id("下内 真男", "シモウチ シンオ", "1982-01-11"),
            id("下内 修男", "シモウチ シンオ", "1982-01-11"),
        ]);
        assert!(!compare(&s, &r[0], &r[1]).sibling_risk);
    }

    #[test]
    fn birth_date_levels() {
        let d = |y, m, dd| pack_dob(y, m, dd);
        assert_eq!(dob_level(d(1990, 3, 4), d(1990, 4, 3)), 1);
        assert_eq!(dob_level(d(1990, 3, 4), d(1991, 3, 4)), 2);
        assert_eq!(dob_level(d(1990, 3, 4), d(1991, 5, 4)), 3);
        assert_eq!(dob_level(0, d(1991, 5, 4)), NULL);
        assert_eq!(dob_parts(d(2024, 12, 31)), (2024, 12, 31));
    }

    #[test]
    fn comparisons_pack_into_eight_bytes() {
        let c = Cmp {
            g: [0, 1, NULL, 3, 4, 2, NULL],
            tf: Some(Script::Kana),
            same_member: true,
            sibling_risk: true,
            names_differ: true,
            card_time: CardTime::Overlap,
            card_slack: true,
        };
        assert_eq!(Cmp::unpack(c.pack()), c);
        for card_time in [CardTime::Unknown, CardTime::Dated, CardTime::Sequential] {
            let c = Cmp {
                g: [NULL; N_CMP],
                tf: None,
                same_member: false,
                sibling_risk: false,
                names_differ: false,
                card_time,
                card_slack: false,
            };
            assert_eq!(Cmp::unpack(c.pack()), c);
        }
    }

    fn cmp(g: Gamma) -> Cmp {
        Cmp {
            g,
            tf: None,
            same_member: false,
            sibling_risk: false,
            names_differ: false,
            card_time: CardTime::Unknown,
            card_slack: false,
        }
    }

    #[test]
    fn hard_negatives_fire_for_twins_and_namesakes() {
        let none = [false; N_CELLS];
        let mut g: Gamma = [NAME_GIVEN_DIFFERS, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            hard_negative(&cmp(g), true, true, &none),
            Some(HardNegative::GivenNameDiffers)
        );
        assert_eq!(hard_negative(&cmp(g), false, true, &none), None);
        // one insured individual (same card and branch) is not a sibling
        let mut same = cmp(g);
        same.same_member = true;
        assert_eq!(hard_negative(&same, true, true, &none), None);
        g = [0, 0, 0, 4, 3, NULL, 2];
        assert_eq!(
            hard_negative(&cmp(g), true, true, &none),
            Some(HardNegative::Namesake)
        );
        g = [0, 0, 0, 4, 3, NULL, 0];
        assert_eq!(hard_negative(&cmp(g), true, true, &none), None);
        g = [0, 0, 0, NULL, 3, INS_DIFFERENT, NULL];
        assert_eq!(
            hard_negative(&cmp(g), true, true, &none),
            Some(HardNegative::Namesake)
        );
        // another card at an insurer of the same prefecture: its own cell, still guarded
        // unless the population lifts that cell
        g = [0, 0, 0, NULL, NULL, INS_CLOSE + 1, NULL];
        assert_eq!(
            hard_negative(&cmp(g), true, true, &none),
            Some(HardNegative::Namesake)
        );
        let mut lift = [false; N_CELLS];
        lift[corroboration(&g, CardTime::Unknown).cell] = true;
        assert_eq!(hard_negative(&cmp(g), true, true, &lift), None);
        g = [0, 0, 0, 4, 3, 0, NULL];
        assert_eq!(hard_negative(&cmp(g), true, true, &none), None);
        g = [0, 0, 0, NULL, NULL, NULL, NULL];
        assert_eq!(
            hard_negative(&cmp(g), true, true, &none),
            Some(HardNegative::Namesake)
        );
        g = [6, 0, 0, NULL, NULL, NULL, NULL];
        assert_eq!(hard_negative(&cmp(g), true, true, &none), None);
        g = [0, 0, 0, 0, 0, INS_OTHER_BRANCH, 0];
        assert_eq!(
            hard_negative(&cmp(g), true, true, &none),
            Some(HardNegative::OtherCardBranch)
        );
    }

    #[test]
    fn the_namesake_guard_lifts_only_where_the_population_says_so() {
        // residence and insurance observed, both disagree
        use Unsupported::*;
        let g: Gamma = [0, 0, 0, 4, 3, INS_DIFFERENT, NULL];
        let k = corroboration(&g, CardTime::Unknown);
        let both = cell_of(Differs, Absent, Differs);
        assert_eq!((k.cell, k.unsupported, k.contradicted), (both, true, true));
        assert_eq!(cell_observed(both), 2);
        let mut lift = [false; N_CELLS];
        assert_eq!(
            hard_negative(&cmp(g), true, true, &lift),
            Some(HardNegative::Namesake)
        );
        lift[both] = true;
        assert_eq!(hard_negative(&cmp(g), true, true, &lift), None);
        // outside the stratum (birth date only close) the guard stays
        let g: Gamma = [0, 1, 0, 4, 3, INS_DIFFERENT, NULL];
        assert_eq!(
            hard_negative(&cmp(g), true, true, &lift),
            Some(HardNegative::Namesake)
        );
        let cell = |g: Gamma| {
            let k = corroboration(&g, CardTime::Unknown);
            (k.cell, k.unsupported, k.contradicted)
        };
        // nothing observed: cell 0
        assert_eq!(cell([0, 0, 0, NULL, NULL, NULL, NULL]), (0, true, true));
        // same municipality (close), phone differs: its own cell, not a contradiction
        let near = cell_of(Close, Differs, Absent);
        assert_eq!(cell([0, 0, 0, 2, 2, NULL, 2]), (near, true, false));
        assert_eq!(cell_observed(near), 2);
        assert_eq!(
            hard_negative(
                &cmp([0, 0, 0, 2, 2, NULL, 2]),
                true,
                true,
                &[false; N_CELLS]
            ),
            None
        );
        // insurance agrees: supported
        assert!(!cell([0, 0, 0, 4, NULL, 0, NULL]).1);
        // an exact postal code supports even when the address is only close
        assert!(!cell([0, 0, 0, 2, 0, NULL, 2]).1);
        // postal code alone decides residence when the address is missing
        assert!(!cell([0, 0, 0, NULL, 1, NULL, NULL]).1);
        assert_eq!(
            cell([0, 0, 0, NULL, 3, NULL, NULL]),
            (cell_of(Differs, Absent, Absent), true, true)
        );
        // another card: at the same insurer or in the same prefecture it is close (a cell of
        // its own), elsewhere it differs; neither supports
        for (level, state) in [
            (INS_CLOSE, Close),
            (INS_CLOSE + 1, Close),
            (INS_DIFFERENT, Differs),
        ] {
            assert_eq!(
                cell([0, 0, 0, NULL, NULL, level, NULL]),
                (cell_of(Absent, Absent, state), true, true)
            );
        }
        // a close card whose use ended before the other began succeeds it: its own cell,
        // still unsupported; a card in use at the same time stays close
        let k = corroboration(
            &[0, 0, 0, NULL, NULL, INS_CLOSE + 1, NULL],
            CardTime::Sequential,
        );
        assert_eq!(k.cell, cell_of(Absent, Absent, Succeeds));
        assert!(k.unsupported && k.contradicted);
        let k = corroboration(
            &[0, 0, 0, NULL, NULL, INS_CLOSE + 1, NULL],
            CardTime::Overlap,
        );
        assert_eq!(k.cell, cell_of(Absent, Absent, Close));
        let k = corroboration(
            &[0, 0, 0, NULL, NULL, INS_DIFFERENT, NULL],
            CardTime::Sequential,
        );
        assert_eq!(k.cell, cell_of(Absent, Absent, Differs));
        // every cell has its own index
        let mut seen = [false; N_CELLS];
        for r in [Absent, Differs, Close] {
            for p in [Absent, Differs] {
                for i in [Absent, Differs, Close, Succeeds] {
                    let c = cell_of(r, p, i);
                    assert!(!std::mem::replace(&mut seen[c], true));
                    assert_eq!(cell_has_close(c), r == Close || i == Close || i == Succeeds);
                    assert_eq!(
                        cell_observed(c),
                        u32::from(r != Absent) + u32::from(p != Absent) + u32::from(i != Absent)
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod insurance_tests {
    use super::*;

    fn card(insurer: &str, number: &str) -> Identity {
        let mut id = Identity::new("x");
        id.insurer_number = Some(insurer.into());
        id.insured_number = Some(number.into());
        id
    }

    #[test]
    fn another_card_in_the_same_prefecture_is_close() {
        assert_eq!(insurer_prefecture("01130012"), 13);
        // a 6-digit 国保 number, zero-filled: the prefecture follows the two zeros
        assert_eq!(insurer_prefecture("00138014"), 13);
        assert_eq!(insurer_prefecture("06990012"), 0);
        assert_eq!(insurer_prefecture("0613"), 0);
        assert_eq!(insurer_prefecture("06"), 0);
        let mut n = Normalizer::new();
        let r: Vec<Rec> = [
            card("01130012", "1"),
            card("06131234", "2"),
            card("06271234", "3"),
            card("01130012", "4"),
            card("138014", "5"),
        ]
        .iter()
        .map(|i| n.rec(0, i))
        .collect();
        assert_eq!(insurance_level(&r[0], &r[1]), INS_CLOSE + 1);
        assert_eq!(insurance_level(&r[0], &r[2]), INS_DIFFERENT);
        assert_eq!(insurance_level(&r[0], &r[3]), INS_CLOSE);
        assert_eq!(insurance_level(&r[1], &r[4]), INS_CLOSE + 1);
        assert_eq!(n_levels(C_INS), usize::from(INS_DIFFERENT) + 1);
    }

    fn dated(number: &str, since: Option<&str>, first: &str, last: &str) -> Identity {
        let mut id = card("06131234", number);
        id.insured_since = since.map(str::to_string);
        id.card_first_seen = Some(first.into());
        id.card_last_seen = Some(last.into());
        id
    }

    #[test]
    fn two_cards_in_use_together_overlap_one_after_the_other_succeed() {
        let mut n = Normalizer::new();
        let ids = [
            // 0: claims under the old card until March 2024
            dated("1", None, "2023-01-10", "2024-03-20"),
            // 1: the new card, issued April 2024 (first seen earlier: visits before the
            // change were filed under the card the hospital now holds)
            dated("2", Some("2024-04-01"), "2023-06-01", "2025-02-01"),
            // 2: another card in use all through 2023–2024
            dated("3", Some("2015-04-01"), "2023-05-01", "2024-11-01"),
            // 3: the old card billed two weeks into the new one: still sequential
            dated("4", None, "2023-01-10", "2024-04-15"),
            // 4: the same card as 1
            dated("2", None, "2024-05-01", "2024-06-01"),
            // 5: undated
            card("06131234", "5"),
            // 6: 資格取得日 in another calendar, issued after its last service here
            dated("6", Some("令和6年4月1日"), "2023-01-01", "2023-02-01"),
        ];
        let r: Vec<Rec> = ids.iter().map(|i| n.rec(0, i)).collect();
        let t = |a: usize, b: usize| compare(&n.strs, &r[a], &r[b]).card_time;
        assert_eq!(t(0, 1), CardTime::Sequential);
        assert_eq!(t(1, 0), CardTime::Sequential);
        assert_eq!(t(0, 2), CardTime::Overlap);
        assert_eq!(t(1, 2), CardTime::Overlap);
        assert_eq!(t(3, 1), CardTime::Sequential);
        assert_eq!(t(1, 4), CardTime::Dated);
        assert_eq!(t(1, 5), CardTime::Unknown);
        assert_eq!(
            r[6].card_from, r[6].card_to,
            "issued after its last service"
        );
        assert_eq!(t(6, 2), CardTime::Overlap);
        assert_eq!(t(0, 6), CardTime::Sequential);
    }
}
