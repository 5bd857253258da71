//! Normalization of Japanese identities, done once before keys and comparisons.
//!
//! Why each rule exists: the same person reaches the producer through different hospital
//! systems that disagree on width (ｶﾞ vs ガ), script (ひらがな vs カタカナ), old/new kanji forms
//! (渡邊 vs 渡辺), spacing between family and given name, era notation (昭和50年 vs 1975) and
//! address spelling (三丁目五番地 vs 3-5). NDB's hashed IDs lost links on exactly these; every
//! rule here is about making *equal things compare equal*, never about display.

use chrono::Datelike;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};

/// Unicode NFKC. Folds full-width ASCII/digits to ASCII, U+3000 to a space, and half-width
/// katakana (including the separate voiced marks ﾞ/ﾟ) to composed full-width katakana.
pub fn nfkc(s: &str) -> String {
    nfkc_cow(s).into_owned()
}

/// Characters that NFKC leaves alone whatever surrounds them (no decomposition, starters
/// that never compose with a neighbour): ASCII, kana without the separate voicing marks, the
/// CJK ideograph blocks. A string made only of these is NFKC already — the common case of
/// names and addresses, checked without the Unicode tables.
fn nfkc_stable(c: char) -> bool {
    matches!(c as u32,
        0x20..=0x7E
        | 0x3005..=0x3007
        | 0x3041..=0x3096
        | 0x30A1..=0x30FC
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0x20000..=0x2A6DF)
}

/// [`nfkc`] without work when there is none: ASCII is NFKC already, full-width ASCII and the
/// ideographic space map to one ASCII character each (done directly), and the Unicode quick
/// check spares the full algorithm for strings already normalized (most kanji and
/// katakana). Same result as `nfkc`; this is only the hot path of normalizing millions of
/// identity fields.
pub(crate) fn nfkc_cow(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    let wide = |c: char| matches!(c, '\u{FF01}'..='\u{FF5E}' | '\u{3000}');
    let mapped: Cow<'_, str> = if s.chars().any(wide) {
        Cow::Owned(
            s.chars()
                .map(|c| match c {
                    '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
                    '\u{3000}' => ' ',
                    c => c,
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    };
    if mapped.chars().all(nfkc_stable) || is_nfkc_quick(mapped.chars()) == IsNormalized::Yes {
        mapped
    } else {
        Cow::Owned(mapped.nfkc().collect())
    }
}

/// Half-width → full-width katakana, composing split voiced marks (ｶﾞ → ガ, ﾊﾟ → パ).
/// Other characters pass through NFKC unchanged in meaning.
pub fn halfwidth_to_fullwidth_kana(s: &str) -> String {
    nfkc(s)
}

/// Hiragana → katakana (ぁ..ゖ, ゝゞ); everything else unchanged.
pub fn hiragana_to_katakana(s: &str) -> String {
    s.chars().map(hira_to_kata_char).collect()
}

fn hira_to_kata_char(c: char) -> char {
    let u = c as u32;
    if (0x3041..=0x3096).contains(&u) || u == 0x309D || u == 0x309E {
        char::from_u32(u + 0x60).unwrap_or(c)
    } else {
        c
    }
}

/// Folds a kana string into its *comparison key*: katakana, small kana → large (ッ→ツ, ョ→ヨ),
/// long-vowel mark, middle dots, spaces and hyphens removed, and the historical/rare kana that
/// hospitals enter inconsistently unified (ヂ→ジ, ヅ→ズ, ヲ→オ, ヴ→ブ, ヰ→イ, ヱ→エ).
/// Why: registration clerks type what they hear; these are the distinctions they blur.
pub fn kana_key(s: &str) -> String {
    let s = nfkc_cow(s);
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = hira_to_kata_char(c);
        let folded = match c {
            'ァ' => 'ア',
            'ィ' => 'イ',
            'ゥ' => 'ウ',
            'ェ' => 'エ',
            'ォ' => 'オ',
            'ッ' => 'ツ',
            'ャ' => 'ヤ',
            'ュ' => 'ユ',
            'ョ' => 'ヨ',
            'ヮ' => 'ワ',
            'ヵ' => 'カ',
            'ヶ' => 'ケ',
            'ヂ' => 'ジ',
            'ヅ' => 'ズ',
            'ヲ' => 'オ',
            'ヴ' => 'ブ',
            'ヰ' => 'イ',
            'ヱ' => 'エ',
            'ー' | '・' | '･' | '-' | '‐' | '−' | '–' | '—' | '―' => continue,
            c if c.is_whitespace() => continue,
            c => c,
        };
        out.push(folded);
    }
    out
}

/// The variant-kanji table (data/itaiji.tsv): variant → canonical.
pub fn variant_table() -> &'static HashMap<char, char> {
    static TABLE: OnceLock<HashMap<char, char>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut m = HashMap::new();
        for line in include_str!("../data/itaiji.tsv").lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let mut parts = line.split('\t').map(str::trim).filter(|p| !p.is_empty());
            if let (Some(a), Some(b)) = (parts.next(), parts.next()) {
                let (mut a, mut b) = (a.chars(), b.chars());
                if let (Some(a), None, Some(b), None) = (a.next(), a.next(), b.next(), b.next()) {
                    m.insert(a, b);
                }
            }
        }
        m
    })
}

/// The variant table as a sorted array (binary search beats hashing a char).
fn variant_pairs() -> &'static [(char, char)] {
    static PAIRS: OnceLock<Vec<(char, char)>> = OnceLock::new();
    PAIRS.get_or_init(|| {
        let mut v: Vec<(char, char)> = variant_table().iter().map(|(a, b)| (*a, *b)).collect();
        v.sort_unstable();
        v
    })
}

fn fold_char(pairs: &[(char, char)], c: char) -> Option<char> {
    // every variant is a CJK ideograph (U+3400 and above): kana, Latin and digits skip
    if (c as u32) < 0x3400 {
        return None;
    }
    pairs
        .binary_search_by_key(&c, |p| p.0)
        .ok()
        .map(|k| pairs[k].1)
}

/// Folds variant kanji (異体字) to their canonical form: 渡邊 → 渡辺, 髙橋 → 高橋, 𠮷田 → 吉田.
pub fn fold_variant_kanji(s: &str) -> String {
    fold_variant_cow(s).into_owned()
}

fn fold_variant_cow(s: &str) -> Cow<'_, str> {
    let pairs = variant_pairs();
    if !s.chars().any(|c| fold_char(pairs, c).is_some()) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| fold_char(pairs, c).unwrap_or(c))
            .collect(),
    )
}

/// A personal name split into family and given parts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameParts {
    pub family: String,
    /// Empty when the source wrote no separator (or no given name).
    pub given: String,
    /// Whether the source separated family and given name (full/half-width space, '^', ',').
    pub split: bool,
}

impl NameParts {
    /// Family and given joined without separator: the spacing-insensitive form.
    pub fn joined(&self) -> String {
        let mut s = self.family.clone();
        s.push_str(&self.given);
        s
    }
}

/// Splits a name on the first separator: full/half-width space (both become a space under
/// NFKC), DICOM '^', or ',' ("Family, Given"). Runs of separators count as one.
pub fn split_name(s: &str) -> NameParts {
    let s = s.trim();
    let pos = s.find(|c: char| c.is_whitespace() || c == '^' || c == ',');
    match pos {
        Some(i) => {
            let family = s[..i].trim().to_string();
            let given: String = s[i..]
                .chars()
                .filter(|c| !(c.is_whitespace() || *c == '^' || *c == ','))
                .collect();
            NameParts {
                family,
                given,
                split: true,
            }
        }
        None => NameParts {
            family: s.to_string(),
            given: String::new(),
            split: false,
        },
    }
}

/// A kanji name for comparison: NFKC, variant kanji folded, hiragana/katakana untouched,
/// split into family/given.
pub fn normalize_kanji_name(s: &str) -> NameParts {
    split_name(&fold_variant_cow(&nfkc_cow(s)))
}

/// A kana name for comparison: each part reduced to its [`kana_key`].
pub fn normalize_kana_name(s: &str) -> NameParts {
    let p = split_name(&hiragana_to_katakana(&nfkc_cow(s)));
    NameParts {
        family: kana_key(&p.family),
        given: kana_key(&p.given),
        split: p.split,
    }
}

/// A Latin-alphabet name: NFKC, lower-case, letters only inside each part. Family comes first
/// (Japanese and DICOM order); '^' or ',' separate family from given.
pub fn normalize_alpha_name(s: &str) -> NameParts {
    let s = nfkc_cow(s).to_lowercase();
    let p = split_name(&s);
    let clean = |x: &str| -> String { x.chars().filter(|c| c.is_alphanumeric()).collect() };
    NameParts {
        family: clean(&p.family),
        given: clean(&p.given),
        split: p.split,
    }
}

/// ASCII digits only, after NFKC (full-width digits become ASCII; hyphens and spaces drop).
pub fn digits(s: &str) -> String {
    nfkc_cow(s).chars().filter(|c| c.is_ascii_digit()).collect()
}

/// 保険者番号: digits, left zero-filled to 8 (国民健康保険 insurers have 6 digits and some
/// systems drop leading zeros; NDB's ID1 mismatches came from exactly this).
pub fn insurer_number(s: &str) -> Option<String> {
    let d = digits(s);
    if d.is_empty() || d.len() > 8 {
        return (!d.is_empty()).then_some(d);
    }
    Some(format!("{d:0>8}"))
}

/// 被保険者証記号/番号: NFKC, variant kanji folded, spaces/hyphens/dots removed, and leading
/// zeros of an all-digit value stripped (systems zero-fill to different widths).
pub fn insured_code(s: &str) -> Option<String> {
    let t: String = fold_variant_cow(&nfkc_cow(s))
        .chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '-' | '‐' | '−' | 'ー' | '・' | '.')))
        .collect();
    if t.is_empty() {
        return None;
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        let z = t.trim_start_matches('0');
        return Some(if z.is_empty() { "0".into() } else { z.into() });
    }
    Some(t)
}

/// 枝番 (card branch): digits zero-filled to 2 ("1" and "01" are the same branch).
pub fn insured_branch(s: &str) -> Option<String> {
    let d = digits(s);
    if d.is_empty() {
        return None;
    }
    let z = d.trim_start_matches('0');
    Some(format!("{z:0>2}"))
}

/// Phone number: digits; an international +81 prefix becomes the domestic leading 0.
pub fn phone(s: &str) -> Option<String> {
    let n = nfkc_cow(s);
    let d: String = n.chars().filter(|c| c.is_ascii_digit()).collect();
    let d = if n.trim_start().starts_with('+') && d.starts_with("81") && d.len() >= 11 {
        format!("0{}", &d[2..])
    } else {
        d
    };
    (!d.is_empty()).then_some(d)
}

/// Postal code: digits only (〒123-4567 → 1234567).
pub fn postal_code(s: &str) -> Option<String> {
    let d = digits(s);
    (!d.is_empty()).then_some(d)
}

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ymd {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Ymd {
    /// ISO `YYYY-MM-DD`.
    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// Whether the date exists in the proleptic Gregorian calendar.
    pub fn is_valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
    }
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Parses a date in any notation hospitals use and validates it against the calendar and the
/// eras, through kiban's one date parser ([`kiban_model::date`]): ISO `1975-03-01`,
/// `1975/3/1`, `19750301`, `1975年3月1日`; 和暦 `昭和50年3月1日`, `S50.3.1`, `s50/03/01`,
/// `平成元年1月8日`, `H1-1-8`, `昭50.3.1`; and the 7-digit レセプト form `3500301` (era code
/// 1–5 + YYMMDD). Returns `None` for anything else, and for a date not given to the day.
pub fn parse_date(s: &str) -> Option<Ymd> {
    let d = kiban_model::date::parse_day(s).ok()?;
    Some(Ymd {
        year: d.year(),
        month: d.month(),
        day: d.day(),
    })
}

/// Like [`parse_date`] but accepts impossible days such as 11-31 (month 1–12, day 1–31) and
/// does not check era bounds: a corrupted date is still evidence for comparison, so linkage
/// keeps it (ingest keeps such a birth date as `Identity::birth_date_text`).
pub fn parse_date_lenient(s: &str) -> Option<Ymd> {
    let (year, month, day) = kiban_model::date::parse_lenient(s)?;
    Some(Ymd { year, month, day })
}

/// 西暦 → 和暦, e.g. 1989-01-08 → "平成元年1月8日". `None` before 明治6年 (1873-01-01), when
/// Japan still used the lunisolar calendar.
pub fn to_wareki(d: Ymd) -> Option<String> {
    kiban_model::date::to_wareki(chrono::NaiveDate::from_ymd_opt(d.year, d.month, d.day)?)
}

/// The 47 prefectures, in JIS X 0401 order (index + 1 is the JIS code).
pub use kiban_model::geo::PREFECTURES;

/// An address split for comparison.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    /// Prefecture (都道府県) or, for Latin addresses, the state.
    pub prefecture: Option<String>,
    /// Municipality (市区町村, with the ward of a designated city) or, for Latin, the locality.
    pub municipality: String,
    /// The rest: town, 丁目-番地-号 as `3-5-6`, building.
    pub rest: String,
}

/// Normalizes an address. Japanese: NFKC, variant kanji, whitespace removed, kanji numerals
/// in 丁目/番地/号 positions → digits, `3丁目5番地6号`/`3の5の6`/hyphen variants → `3-5-6`,
/// prefecture extracted, municipality split off. Latin addresses (no CJK characters) are
/// comma-separated from most to least specific: the last part is the state, the one before
/// it the locality, the rest the street.
pub fn normalize_address(s: &str) -> Address {
    let n = nfkc_cow(s);
    if !n.chars().any(is_cjk_or_kana) {
        return latin_address(&n);
    }
    let t: String = fold_variant_cow(&n)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let t = if t.chars().any(is_kanji_numeral) {
        kanji_numerals_in_addresses(&t)
    } else {
        t
    };
    let t = block_numbers(&t);
    let (prefecture, after) = match PREFECTURES.iter().find(|p| t.starts_with(**p)) {
        Some(p) => (Some((*p).to_string()), &t[p.len()..]),
        None => (None, t.as_str()),
    };
    let (municipality, rest) = split_municipality(after);
    Address {
        prefecture,
        municipality: municipality.to_string(),
        rest: rest.to_string(),
    }
}

fn latin_address(n: &str) -> Address {
    let lower = n.to_lowercase();
    let parts: Vec<String> = lower
        .split(',')
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    match parts.len() {
        0 | 1 => Address {
            prefecture: None,
            municipality: String::new(),
            rest: parts.first().cloned().unwrap_or_default(),
        },
        2 => Address {
            prefecture: None,
            municipality: parts[1].clone(),
            rest: parts[0].clone(),
        },
        k => Address {
            prefecture: Some(parts[k - 1].clone()).filter(|p| !p.is_empty()),
            municipality: parts[k - 2].clone(),
            rest: parts[..k - 2]
                .iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
        },
    }
}

fn is_cjk_or_kana(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF)
}

fn kanji_digit(c: char) -> Option<u32> {
    Some(match c {
        '〇' | '零' => 0,
        '一' => 1,
        '二' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

fn is_kanji_numeral(c: char) -> bool {
    kanji_digit(c).is_some() || matches!(c, '十' | '百' | '千')
}

/// Value of a kanji numeral run: positional (二十三 = 23, 百五 = 105) or digit-by-digit (一〇五).
pub fn kanji_number(run: &str) -> Option<u32> {
    if run.is_empty() {
        return None;
    }
    if !run.contains(['十', '百', '千']) {
        let mut v: u32 = 0;
        for c in run.chars() {
            v = v.checked_mul(10)?.checked_add(kanji_digit(c)?)?;
        }
        return Some(v);
    }
    let (mut total, mut cur) = (0u32, None::<u32>);
    for c in run.chars() {
        match c {
            '十' | '百' | '千' => {
                let unit = match c {
                    '十' => 10,
                    '百' => 100,
                    _ => 1000,
                };
                total = total.checked_add(cur.unwrap_or(1).checked_mul(unit)?)?;
                cur = None;
            }
            c => {
                cur = Some(
                    cur.unwrap_or(0)
                        .checked_mul(10)?
                        .checked_add(kanji_digit(c)?)?,
                )
            }
        }
    }
    total.checked_add(cur.unwrap_or(0))
}

/// Converts kanji numeral runs that stand in 丁目/番地/号 positions to digits; leaves place
/// names such as 四日市, 八王子, 十日町 alone (the run must be followed by a block marker or
/// follow one).
fn kanji_numerals_in_addresses(t: &str) -> String {
    let chars: Vec<char> = t.chars().collect();
    let mut out = String::with_capacity(t.len());
    let mut i = 0;
    while i < chars.len() {
        if is_kanji_numeral(chars[i]) {
            let mut j = i;
            while j < chars.len() && is_kanji_numeral(chars[j]) {
                j += 1;
            }
            let next = chars.get(j).copied();
            let next2 = chars.get(j + 1).copied();
            let prev = if i > 0 { Some(chars[i - 1]) } else { None };
            let marker_after = match next {
                Some('丁' | '番' | '号' | '-' | 'の' | '地') => true,
                Some('条' | '線') => !matches!(next2, Some('市' | '町' | '村' | '通')),
                None => prev.is_some_and(|p| matches!(p, '目' | '番' | '地' | '-' | 'の' | '条')),
                _ => false,
            };
            let marker_before = prev.is_some_and(|p| matches!(p, '目' | '番' | '-'))
                || (prev == Some('地') && i >= 2 && chars[i - 2] == '番');
            let run: String = chars[i..j].iter().collect();
            match (marker_after || marker_before, kanji_number(&run)) {
                (true, Some(v)) => out.push_str(&v.to_string()),
                _ => out.push_str(&run),
            }
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn is_hyphen(c: char) -> bool {
    matches!(
        c,
        '-' | 'ー' | '－' | '‐' | '‑' | '−' | '–' | '—' | '―' | '﹣' | 'ｰ'
    )
}

/// Rewrites 丁目/番地/番/号/の and hyphen variants after digits to a plain `N-N-N` form.
fn block_numbers(t: &str) -> String {
    let chars: Vec<char> = t.chars().collect();
    let mut out = String::with_capacity(t.len());
    let mut i = 0;
    let starts = |i: usize, pat: &str| -> bool {
        pat.chars()
            .enumerate()
            .all(|(k, p)| chars.get(i + k) == Some(&p))
    };
    while i < chars.len() {
        let c = chars[i];
        out.push(c);
        i += 1;
        if !c.is_ascii_digit() || chars.get(i).is_some_and(|d| d.is_ascii_digit()) {
            continue;
        }
        // c ends a digit run
        let next_is_digit = |k: usize| chars.get(k).is_some_and(|d| d.is_ascii_digit());
        if starts(i, "丁目") {
            i += 2;
            out.push('-');
        } else if starts(i, "番地の") && next_is_digit(i + 3) {
            i += 3;
            out.push('-');
        } else if starts(i, "番地") {
            i += 2;
            out.push('-');
        } else if starts(i, "番") || starts(i, "地割") {
            i += if starts(i, "番") { 1 } else { 2 };
            out.push('-');
        } else if starts(i, "号") {
            i += 1;
        } else if (chars.get(i).is_some_and(|&h| is_hyphen(h)) || starts(i, "の"))
            && next_is_digit(i + 1)
        {
            i += 1;
            out.push('-');
        }
    }
    // a block marker at the end leaves a dangling '-'; a '-' before a non-digit is noise too
    let cs: Vec<char> = out.chars().collect();
    let mut cleaned = String::with_capacity(out.len());
    for (k, &c) in cs.iter().enumerate() {
        if c == '-' && !cs.get(k + 1).is_some_and(|d| d.is_ascii_digit()) {
            continue;
        }
        cleaned.push(c);
    }
    cleaned
}

/// Splits the municipality (市区町村, including the ward of a designated city and the 郡 part
/// of a town/village) from the rest of the address.
fn split_municipality(s: &str) -> (&str, &str) {
    let chars: Vec<char> = s.chars().collect();
    let byte_end = |k: usize| -> usize { chars.iter().take(k + 1).map(|c| c.len_utf8()).sum() };
    // the earliest 市/区/郡 that is not the first character (市川市, 市原市, 新宿区市谷 …)
    let first = chars
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, c)| matches!(**c, '市' | '区' | '郡'))
        .map(|(k, c)| (k, *c));
    let town = |from: usize| {
        chars
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, c)| matches!(**c, '町' | '村'))
            .map(|(k, _)| k)
    };
    let end = match first {
        Some((k, '市')) => {
            // 四日市市 / 廿日市市 keep both; a designated city's ward (横浜市中区) within 4 chars
            let k = if chars.get(k + 1) == Some(&'市') {
                k + 1
            } else {
                k
            };
            Some(
                (k + 1..(k + 5).min(chars.len()))
                    .find(|&w| chars[w] == '区')
                    .unwrap_or(k),
            )
        }
        Some((k, '区')) => Some(k),
        Some((k, _)) => town(k + 2),
        None => town(1),
    };
    match end {
        Some(k) => {
            let e = byte_end(k);
            (&s[..e], &s[e..])
        }
        None => ("", s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfkc_folds_fullwidth_ascii_and_ideographic_space() {
        assert_eq!(nfkc("ＡＢＣ１２３"), "ABC123");
        assert_eq!(nfkc("山田\u{3000}太郎"), "山田 太郎");
    }

    #[test]
    fn halfwidth_katakana_with_split_voiced_marks_composes() {
        assert_eq!(halfwidth_to_fullwidth_kana("ｶﾞｯｺｳ"), "ガッコウ");
        assert_eq!(halfwidth_to_fullwidth_kana("ﾊﾟﾝ ﾔﾏﾀﾞ"), "パン ヤマダ");
        assert_eq!(halfwidth_to_fullwidth_kana("ｳﾞ"), "ヴ");
    }

    #[test]
    fn hiragana_becomes_katakana() {
        assert_eq!(hiragana_to_katakana("やまだ たろう"), "ヤマダ タロウ");
        assert_eq!(hiragana_to_katakana("ゔぁ"), "ヴァ");
        assert_eq!(hiragana_to_katakana("漢字ABC"), "漢字ABC");
    }

    #[test]
    fn kana_key_folds_small_kana_long_vowels_and_spacing() {
        assert_eq!(kana_key("キョウコ"), kana_key("キヨウコ"));
        assert_eq!(kana_key("ハットリ"), kana_key("ハツトリ"));
        assert_eq!(kana_key("ユーコ"), kana_key("ユコ"));
        assert_eq!(kana_key("ﾔﾏﾀﾞ ﾀﾛｳ"), "ヤマダタロウ");
        assert_eq!(kana_key("やまだ　たろう"), "ヤマダタロウ");
        assert_eq!(kana_key("ミチヅキ"), kana_key("ミチズキ"));
        assert_ne!(kana_key("サトウ"), kana_key("サイトウ"));
    }

    #[test]
    fn variant_table_has_at_least_60_pairs_and_folds_names() {
        assert!(variant_table().len() >= 60);
        assert_eq!(fold_variant_kanji("渡邊"), "渡辺");
        assert_eq!(fold_variant_kanji("渡邉"), "渡辺");
        assert_eq!(fold_variant_kanji("髙橋"), "高橋");
        assert_eq!(fold_variant_kanji("山﨑"), "山崎");
        assert_eq!(fold_variant_kanji("齋藤"), "斉藤");
        assert_eq!(fold_variant_kanji("齊藤"), "斉藤");
        assert_eq!(fold_variant_kanji("澤田"), "沢田");
        assert_eq!(fold_variant_kanji("濱口"), "浜口");
        assert_eq!(fold_variant_kanji("廣瀬"), "広瀬");
        assert_eq!(fold_variant_kanji("中嶋"), "中島");
        assert_eq!(fold_variant_kanji("櫻井"), "桜井");
        assert_eq!(fold_variant_kanji("𠮷田"), "吉田");
        assert_eq!(fold_variant_kanji("德川"), "徳川");
        assert_eq!(fold_variant_kanji("眞子"), "真子");
        assert_eq!(fold_variant_kanji("國男"), "国男");
        assert_eq!(fold_variant_kanji("榮作"), "栄作");
    }

    #[test]
    fn names_split_on_any_space_or_none() {
        let a = normalize_kanji_name("渡邊　太郎");
        assert_eq!(
            (a.family.as_str(), a.given.as_str(), a.split),
            ("渡辺", "太郎", true)
        );
        let b = normalize_kanji_name("渡辺 太郎");
        assert_eq!(a, b);
        let c = normalize_kanji_name("渡辺太郎");
        assert!(!c.split);
        assert_eq!(c.joined(), a.joined());
        let k = normalize_kana_name("ﾜﾀﾅﾍﾞ  ﾀﾛｳ");
        assert_eq!(
            (k.family.as_str(), k.given.as_str()),
            ("ワタナベ", "タロウ")
        );
        let r = normalize_alpha_name("YAMADA^Taro");
        assert_eq!((r.family.as_str(), r.given.as_str()), ("yamada", "taro"));
        let w = normalize_alpha_name("Smith, John");
        assert_eq!((w.family.as_str(), w.given.as_str()), ("smith", "john"));
    }

    #[test]
    fn insurance_numbers_zero_fill_and_fullwidth_digits() {
        assert_eq!(insurer_number("１３８０１４").as_deref(), Some("00138014"));
        assert_eq!(insurer_number("06138014").as_deref(), Some("06138014"));
        assert_eq!(insurer_number("").as_deref(), None);
        assert_eq!(insured_code("００１２３４"), insured_code("1234"));
        assert_eq!(insured_code("記号 １２－３").as_deref(), Some("記号123"));
        assert_eq!(insured_branch("1"), insured_branch("０１"));
        assert_eq!(digits("０３－１２３４－５６７８"), "0312345678");
        assert_eq!(phone("+81 90-1234-5678").as_deref(), Some("09012345678"));
        assert_eq!(
            postal_code("〒１００－０００１").as_deref(),
            Some("1000001")
        );
    }

    #[test]
    fn wareki_and_seireki_dates_parse() {
        let d = Ymd {
            year: 1975,
            month: 3,
            day: 1,
        };
        for s in [
            "1975-03-01",
            "1975/3/1",
            "19750301",
            "1975年3月1日",
            "昭和50年3月1日",
            "S50.3.1",
            "s50/03/01",
            "昭50.3.1",
            "Ｓ５０．３．１",
            "3500301",
        ] {
            assert_eq!(parse_date(s), Some(d), "{s}");
        }
        assert_eq!(
            parse_date("平成元年1月8日"),
            Some(Ymd {
                year: 1989,
                month: 1,
                day: 8
            })
        );
        assert_eq!(
            parse_date("H1-1-8"),
            Some(Ymd {
                year: 1989,
                month: 1,
                day: 8
            })
        );
        assert_eq!(
            parse_date("令和元年5月1日"),
            Some(Ymd {
                year: 2019,
                month: 5,
                day: 1
            })
        );
        assert_eq!(
            parse_date("R2.2.29"),
            Some(Ymd {
                year: 2020,
                month: 2,
                day: 29
            })
        );
        assert_eq!(
            parse_date("大正3年4月5日"),
            Some(Ymd {
                year: 1914,
                month: 4,
                day: 5
            })
        );
        assert_eq!(
            parse_date("M45.7.29"),
            Some(Ymd {
                year: 1912,
                month: 7,
                day: 29
            })
        );
        assert_eq!(parse_date("1975-02-30"), None);
        assert_eq!(
            parse_date_lenient("19751131"),
            Some(Ymd {
                year: 1975,
                month: 11,
                day: 31
            })
        );
        assert_eq!(parse_date("unknown"), None);
        assert_eq!(parse_date("S0.1.1"), None);
    }

    #[test]
    fn seireki_to_wareki_respects_era_boundaries() {
        let w = |y, m, d| {
            to_wareki(Ymd {
                year: y,
                month: m,
                day: d,
            })
        };
        assert_eq!(w(1989, 1, 7).as_deref(), Some("昭和64年1月7日"));
        assert_eq!(w(1989, 1, 8).as_deref(), Some("平成元年1月8日"));
        assert_eq!(w(2019, 4, 30).as_deref(), Some("平成31年4月30日"));
        assert_eq!(w(2019, 5, 1).as_deref(), Some("令和元年5月1日"));
        assert_eq!(w(1975, 3, 1).as_deref(), Some("昭和50年3月1日"));
        assert_eq!(w(1800, 1, 1), None);
        // round trip
        let d = Ymd {
            year: 1926,
            month: 12,
            day: 25,
        };
        assert_eq!(parse_date(&w(1926, 12, 25).unwrap()), Some(d));
    }

    #[test]
    fn kanji_numbers_convert() {
        assert_eq!(kanji_number("二十三"), Some(23));
        assert_eq!(kanji_number("十"), Some(10));
        assert_eq!(kanji_number("百五"), Some(105));
        assert_eq!(kanji_number("一〇五"), Some(105));
        assert_eq!(kanji_number("千二百"), Some(1200));
    }

    #[test]
    fn addresses_normalize_blocks_numerals_and_hyphens() {
        let a = normalize_address("東京都千代田区千代田一丁目一番一号");
        assert_eq!(a.prefecture.as_deref(), Some("東京都"));
        assert_eq!(a.municipality, "千代田区");
        assert_eq!(a.rest, "千代田1-1-1");
        for v in [
            "東京都千代田区千代田１－１－１",
            "東京都 千代田区 千代田1ー1ー1",
            "東京都千代田区千代田1‐1‐1",
            "東京都千代田区千代田1−1−1",
            "東京都千代田区千代田1丁目1番地1",
            "東京都千代田区千代田一丁目１番１号",
            "東京都千代田区千代田1の1の1",
        ] {
            assert_eq!(normalize_address(v), a, "{v}");
        }
        let y = normalize_address("神奈川県横浜市中区山下町二十三番地");
        assert_eq!(y.prefecture.as_deref(), Some("神奈川県"));
        assert_eq!(y.municipality, "横浜市中区");
        assert_eq!(y.rest, "山下町23");
        // place names with numerals stay
        let z = normalize_address("三重県四日市市諏訪町1-5");
        assert_eq!(z.municipality, "四日市市");
        assert_eq!(z.rest, "諏訪町1-5");
        let h = normalize_address("東京都八王子市元本郷町三丁目24番1号");
        assert_eq!(h.municipality, "八王子市");
        assert_eq!(h.rest, "元本郷町3-24-1");
        let g = normalize_address("北海道虻田郡倶知安町北1条東3丁目");
        assert_eq!(g.municipality, "虻田郡倶知安町");
        let w = normalize_address("東京都新宿区市谷本村町5番1号");
        assert_eq!(
            (w.municipality.as_str(), w.rest.as_str()),
            ("新宿区", "市谷本村町5-1")
        );
        let c = normalize_address("市川市八幡1-1");
        assert_eq!((c.prefecture, c.municipality.as_str()), (None, "市川市"));
    }

    #[test]
    fn latin_addresses_split_from_the_end() {
        let a = normalize_address("8 Stanley Street, Miami, Winston Hills, NSW");
        assert_eq!(a.prefecture.as_deref(), Some("nsw"));
        assert_eq!(a.municipality, "winston hills");
        assert_eq!(a.rest, "8 stanley street miami");
    }
}
