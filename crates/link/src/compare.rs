//! The compact normalized record and the per-field comparison levels.
//!
//! Why compact: records are normalized once (NFKC, variant kanji, kana folding, address
//! parsing) and then compared millions of times; every comparison runs on `[char]` slices so
//! string metrics count characters, and names compare *jointly* across kanji, kana and Latin
//! scripts (the three spellings of one name are one piece of evidence, not three).

use kiban_model::{Identity, Sex};

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

/// One script's name: family, given and their concatenation, as characters.
#[derive(Debug, Default, Clone)]
pub(crate) struct Part {
    pub fam: Box<[char]>,
    pub giv: Box<[char]>,
    pub full: Box<[char]>,
    pub split: bool,
}

impl Part {
    fn from(p: NameParts) -> Part {
        let full: Box<[char]> = p.joined().chars().collect();
        Part {
            fam: p.family.chars().collect(),
            giv: p.given.chars().collect(),
            full,
            split: p.split && !p.given.is_empty() && !p.family.is_empty(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.full.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Script {
    Kanji,
    Kana,
    Alpha,
}

/// A record normalized once for comparison.
#[derive(Debug, Default, Clone)]
pub(crate) struct Rec {
    pub src: u32,
    pub names: [Part; 3],
    pub dob: Option<(i32, u8, u8)>,
    /// 0 unknown/other, 1 male, 2 female.
    pub sex: u8,
    pub postal: Box<[u8]>,
    pub pref: Box<str>,
    pub city: Box<[char]>,
    pub street: Box<[char]>,
    pub phone: Box<[u8]>,
    pub insurer: Box<str>,
    pub insured: Box<str>,
    pub branch: Box<str>,
    /// Records sharing this record's full name, per script (term frequencies).
    pub tf: [u32; 3],
}

pub(crate) const SCRIPTS: [Script; 3] = [Script::Kanji, Script::Kana, Script::Alpha];

impl Rec {
    pub fn from_identity(src: u32, id: &Identity) -> Rec {
        fn opt(s: &Option<String>) -> Option<&str> {
            s.as_deref().filter(|s| !s.trim().is_empty())
        }
        let names = [
            opt(&id.name_kanji).map(normalize::normalize_kanji_name),
            opt(&id.name_kana).map(normalize::normalize_kana_name),
            opt(&id.name_alpha).map(normalize::normalize_alpha_name),
        ]
        .map(|p| p.map(Part::from).unwrap_or_default());
        let dob = opt(&id.birth_date)
            .and_then(normalize::parse_date_lenient)
            .map(|d| (d.year, d.month as u8, d.day as u8));
        let sex = match id.sex {
            Sex::Male => 1,
            Sex::Female => 2,
            _ => 0,
        };
        let addr = opt(&id.address)
            .map(normalize::normalize_address)
            .unwrap_or_default();
        let insured = {
            let sym = opt(&id.insured_symbol).and_then(normalize::insured_code);
            let num = opt(&id.insured_number).and_then(normalize::insured_code);
            match (sym, num) {
                (_, None) => String::new(),
                (Some(s), Some(n)) => format!("{s}|{n}"),
                (None, Some(n)) => format!("|{n}"),
            }
        };
        Rec {
            src,
            names,
            dob,
            sex,
            postal: opt(&id.postal_code)
                .and_then(normalize::postal_code)
                .unwrap_or_default()
                .into_bytes()
                .into(),
            pref: addr.prefecture.unwrap_or_default().into(),
            // spaces carry no meaning inside a street or locality (FEBRL inserts them as
            // noise; Japanese addresses are already space-free)
            city: addr
                .municipality
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect(),
            street: addr.rest.chars().filter(|c| !c.is_whitespace()).collect(),
            phone: opt(&id.phone)
                .and_then(normalize::phone)
                .unwrap_or_default()
                .into_bytes()
                .into(),
            insurer: opt(&id.insurer_number)
                .and_then(normalize::insurer_number)
                .unwrap_or_default()
                .into(),
            insured: insured.into(),
            branch: opt(&id.insured_branch)
                .and_then(normalize::insured_branch)
                .unwrap_or_default()
                .into(),
            tf: [0; 3],
        }
    }

    pub fn part(&self, s: Script) -> &Part {
        &self.names[s as usize]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Agree {
    Missing,
    Differ,
    Close,
    Exact,
}

fn close(s: Script, a: &[char], b: &[char]) -> bool {
    match s {
        // kanji names are short: one differing character out of ≥ 2 is "close"
        Script::Kanji => a.len().min(b.len()) >= 2 && levenshtein(a, b) <= 1,
        Script::Kana | Script::Alpha => {
            // one edit in a 3-character kana name may be another name (ユウコ/ユウマ): alone it
            // counts as close; twins are caught by the joint kanji+kana rule, the sex check
            // and the cluster cross-check
            jaro_winkler(a, b) >= 0.88 || (a.len().min(b.len()) >= 3 && within_one_edit(a, b))
        }
    }
}

fn agree(s: Script, a: &[char], b: &[char]) -> Agree {
    if a.is_empty() || b.is_empty() {
        Agree::Missing
    } else if a == b {
        Agree::Exact
    } else if close(s, a, b) {
        Agree::Close
    } else {
        Agree::Differ
    }
}

/// (family, given, swapped) agreement within one script, `None` if a side lacks the script.
fn script_cmp(s: Script, a: &Part, b: &Part) -> Option<(Agree, Agree, bool)> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a.split && b.split {
        let swapped = a.fam == b.giv && a.giv == b.fam && a.fam != a.giv;
        return Some((agree(s, &a.fam, &b.fam), agree(s, &a.giv, &b.giv), swapped));
    }
    if a.full == b.full {
        return Some((Agree::Exact, Agree::Exact, false));
    }
    // one side unsplit: split it where the other side's family name ends, if it starts so
    let try_split = |sp: &Part, un: &Part| -> Option<(Agree, Agree, bool)> {
        (sp.split && un.full.starts_with(&sp.fam)).then(|| {
            let rest = &un.full[sp.fam.len()..];
            let g = if rest.is_empty() {
                Agree::Missing
            } else {
                agree(s, &sp.giv, rest)
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
        if un.full.ends_with(&sp.giv) && !sp.giv.is_empty() {
            // unsplit side ends with the given name: family differs or is close
            let fam = &un.full[..un.full.len() - sp.giv.len()];
            return Some((agree(s, &sp.fam, fam), Agree::Exact, false));
        }
    }
    let full = if close(s, &a.full, &b.full) {
        Agree::Close
    } else {
        Agree::Differ
    };
    Some((full, full, false))
}

/// Joint agreement over scripts: exact in any script wins; otherwise a single available
/// script decides; when two or more scripts are available and none is exact, the name
/// *differs* — independent transcriptions that are each merely "close" (健太/健二 and
/// ケンタ/ケンジ) are the twin signature, not a typo.
fn joint(xs: &[Agree]) -> Agree {
    let present: Vec<Agree> = xs
        .iter()
        .copied()
        .filter(|a| *a != Agree::Missing)
        .collect();
    if present.contains(&Agree::Exact) {
        Agree::Exact
    } else if present.is_empty() {
        Agree::Missing
    } else if present.len() == 1 {
        present[0]
    } else {
        Agree::Differ
    }
}

/// The joint name level and, for the exact level, the script whose term frequency applies.
pub(crate) fn name_level(a: &Rec, b: &Rec) -> (u8, Option<Script>) {
    let mut fams = [Agree::Missing; 3];
    let mut givs = [Agree::Missing; 3];
    let mut swapped = false;
    let mut tf_script = None;
    for (k, s) in SCRIPTS.iter().enumerate() {
        if let Some((f, g, sw)) = script_cmp(*s, a.part(*s), b.part(*s)) {
            fams[k] = f;
            givs[k] = g;
            swapped |= sw;
            if f == Agree::Exact && g == Agree::Exact && tf_script.is_none() {
                tf_script = Some(*s);
            }
        }
    }
    let (f, g) = (joint(&fams), joint(&givs));
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
    (level, if level == 0 { tf_script } else { None })
}

fn dob_level(a: Option<(i32, u8, u8)>, b: Option<(i32, u8, u8)>) -> u8 {
    let (Some((ya, ma, da)), Some((yb, mb, db))) = (a, b) else {
        return NULL;
    };
    if (ya, ma, da) == (yb, mb, db) {
        0
    } else if ya == yb && ma == db && da == mb {
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

fn address_level(a: &Rec, b: &Rec) -> u8 {
    let empty = |r: &Rec| r.pref.is_empty() && r.city.is_empty() && r.street.is_empty();
    if empty(a) || empty(b) {
        return NULL;
    }
    let pref_conflict = !a.pref.is_empty() && !b.pref.is_empty() && a.pref != b.pref;
    let st_eq = !a.street.is_empty() && a.street == b.street;
    let ct_eq = !a.city.is_empty() && a.city == b.city;
    let no_city = a.city.is_empty() && b.city.is_empty();
    let st_close = st_eq || str_close(&a.street, &b.street);
    let ct_close = ct_eq || str_close(&a.city, &b.city);
    if !pref_conflict && st_eq && (ct_eq || no_city) {
        0
    } else if !pref_conflict && st_close && (ct_close || no_city) {
        1
    } else if st_close || ct_close {
        2
    } else if !a.pref.is_empty() && a.pref == b.pref {
        3
    } else {
        4
    }
}

fn postal_level(a: &[u8], b: &[u8]) -> u8 {
    if a.is_empty() || b.is_empty() {
        NULL
    } else if a == b {
        0
    } else if a.len() == b.len() && within_one_edit(a, b) {
        1
    } else if a.len() >= 3 && b.len() >= 3 && a[..3] == b[..3] {
        2
    } else {
        3
    }
}

fn insurance_level(a: &Rec, b: &Rec) -> u8 {
    let has = |r: &Rec| !r.insured.is_empty() || !r.insurer.is_empty();
    if !has(a) || !has(b) {
        return NULL;
    }
    let insurer_eq = !a.insurer.is_empty() && a.insurer == b.insurer;
    let insurer_missing = a.insurer.is_empty() || b.insurer.is_empty();
    if !a.insured.is_empty() && a.insured == b.insured {
        if insurer_eq || insurer_missing {
            if !a.branch.is_empty() && !b.branch.is_empty() && a.branch != b.branch {
                INS_OTHER_BRANCH
            } else {
                0
            }
        } else {
            1
        }
    } else if insurer_eq {
        3
    } else {
        4
    }
}

fn phone_level(a: &[u8], b: &[u8]) -> u8 {
    if a.is_empty() || b.is_empty() {
        NULL
    } else if a == b {
        0
    } else if within_one_edit(a, b) {
        1
    } else {
        2
    }
}

/// Compares two records: the comparison vector and the script of an exact name match.
pub(crate) fn compare(a: &Rec, b: &Rec) -> (Gamma, Option<Script>) {
    let (name, tf) = name_level(a, b);
    let sex = if a.sex == 0 || b.sex == 0 {
        NULL
    } else {
        u8::from(a.sex != b.sex)
    };
    (
        [
            name,
            dob_level(a.dob, b.dob),
            sex,
            address_level(a, b),
            postal_level(&a.postal, &b.postal),
            insurance_level(a, b),
            phone_level(&a.phone, &b.phone),
        ],
        tf,
    )
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
        !matches!(self, HardNegative::Namesake)
    }
}

/// Hard negatives of a comparison vector (see [`HardNegative`]).
pub(crate) fn hard_negative(
    g: &Gamma,
    twin_guard: bool,
    namesake_guard: bool,
) -> Option<HardNegative> {
    if twin_guard && g[C_NAME] == NAME_GIVEN_DIFFERS {
        return Some(HardNegative::GivenNameDiffers);
    }
    if g[C_INS] == INS_OTHER_BRANCH {
        return Some(HardNegative::OtherCardBranch);
    }
    if twin_guard && g[C_SEX] == 1 && g[C_NAME] != 0 {
        return Some(HardNegative::SexDiffers);
    }
    if namesake_guard && g[C_NAME] <= 3 {
        // independent corroborators: residence (address, else postal code — one piece of
        // evidence, a move changes both), phone, insurance; Some(true) = disagrees
        let residence = if g[C_ADDR] != NULL {
            Some(g[C_ADDR] >= 3)
        } else if g[C_POSTAL] != NULL {
            Some(g[C_POSTAL] >= 2)
        } else {
            None
        };
        let phone = (g[C_PHONE] != NULL).then(|| g[C_PHONE] >= 2);
        let insurance = (g[C_INS] != NULL).then(|| g[C_INS] >= 3);
        let present: Vec<bool> = [residence, phone, insurance]
            .into_iter()
            .flatten()
            .collect();
        if present.iter().all(|d| *d) {
            return Some(HardNegative::Namesake);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kanji: &str, kana: &str, dob: &str) -> Rec {
        let mut id = Identity::new("x");
        id.name_kanji = Some(kanji.into());
        id.name_kana = Some(kana.into());
        id.birth_date = Some(dob.into());
        Rec::from_identity(0, &id)
    }

    #[test]
    fn joint_name_comparison_counts_scripts_once() {
        let a = rec("渡邊 太郎", "ワタナベ タロウ", "1975-03-01");
        let b = rec("渡辺太郎", "ﾜﾀﾅﾍﾞ ﾀﾛｳ", "S50.3.1");
        assert_eq!(compare(&a, &b).0[C_NAME], 0);
        assert_eq!(compare(&a, &b).0[C_DOB], 0);
        // kanji misconversion but same reading: still exact through kana
        let c = rec("渡辺 太朗", "ワタナベ タロウ", "1975-03-01");
        assert_eq!(name_level(&a, &c).0, 0);
        // twins: both scripts only "close" on the given name → differs
        let t1 = rec("山田 健太", "ヤマダ ケンタ", "1990-01-01");
        let t2 = rec("山田 健二", "ヤマダ ケンジ", "1990-01-01");
        assert_eq!(name_level(&t1, &t2).0, NAME_GIVEN_DIFFERS);
        // a kana typo alone stays close
        let k = rec("山田 健太", "ヤマダ ケンダ", "1990-01-01");
        assert_eq!(name_level(&t1, &k).0, 0);
        let mut only_kana = Identity::new("y");
        only_kana.name_kana = Some("ヤマダ ケンダ".into());
        let ok = Rec::from_identity(0, &only_kana);
        assert_eq!(name_level(&t1, &ok).0, 1);
    }

    #[test]
    fn birth_date_levels() {
        assert_eq!(dob_level(Some((1990, 3, 4)), Some((1990, 4, 3))), 1);
        assert_eq!(dob_level(Some((1990, 3, 4)), Some((1991, 3, 4))), 2);
        assert_eq!(dob_level(Some((1990, 3, 4)), Some((1991, 5, 4))), 3);
        assert_eq!(dob_level(None, Some((1991, 5, 4))), NULL);
    }

    #[test]
    fn hard_negatives_fire_for_twins_and_namesakes() {
        let mut g: Gamma = [NAME_GIVEN_DIFFERS, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            hard_negative(&g, true, true),
            Some(HardNegative::GivenNameDiffers)
        );
        assert_eq!(hard_negative(&g, false, true), None);
        g = [0, 0, 0, 4, 3, NULL, 2];
        assert_eq!(hard_negative(&g, true, true), Some(HardNegative::Namesake));
        g = [0, 0, 0, 4, 3, NULL, 0];
        assert_eq!(hard_negative(&g, true, true), None);
        g = [0, 0, 0, NULL, 3, 4, NULL];
        assert_eq!(hard_negative(&g, true, true), Some(HardNegative::Namesake));
        g = [0, 0, 0, 4, 3, 0, NULL];
        assert_eq!(hard_negative(&g, true, true), None);
        g = [0, 0, 0, NULL, NULL, NULL, NULL];
        assert_eq!(hard_negative(&g, true, true), Some(HardNegative::Namesake));
        g = [6, 0, 0, NULL, NULL, NULL, NULL];
        assert_eq!(hard_negative(&g, true, true), None);
        g = [0, 0, 0, 0, 0, INS_OTHER_BRANCH, 0];
        assert_eq!(
            hard_negative(&g, true, true),
            Some(HardNegative::OtherCardBranch)
        );
    }
}
