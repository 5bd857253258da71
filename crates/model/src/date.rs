//! The one date parser of kiban: every reader (HL7/SS-MIX2, FHIR, UKE, DPC, CSV) and
//! linkage read dates through this module, so a spelling means the same date everywhere.
//!
//! # Spellings
//!
//! * 西暦: `YYYYMMDD`, `YYYYMM`, `YYYY` (HL7 TS, with the time after the date:
//!   `YYYYMMDDHH[MM[SS]][.S…][±ZZZZ]`), `YYYY-MM-DD`, `YYYY/M/D`, `YYYY.M.D` (month and day
//!   with one or two digits, year and month alone allowed), `YYYY年M月D日` (`YYYY年M月`,
//!   `YYYY年`); a full date may be followed by a time (`T22:58:16-05:00`, ` 0:00:00`).
//! * 和暦: an era — letter `M` `T` `S` `H` `R` (either case), name `明治` `大正` `昭和` `平成`
//!   `令和` or its first kanji (`昭50.3.1`) — then the era year (one or two digits, or `元`),
//!   then month and day as above (`S45.07.04`, `H1/1/8`, `平成元年1月8日`, `R2-2-29`,
//!   `昭和45年7月`), or the six digits `YYMMDD` (`S450704`); the レセプト form `GYYMMDD`
//!   (era code 1 明治 … 5 令和, `3450704`).
//! * Full-width digits, letters and signs (`Ｓ４５．７．４`), the square era signs (`㍼`) and
//!   dash variants are read as their plain forms; spaces around the whole are ignored.
//!
//! # Rules
//!
//! Nothing is guessed: every character of the input is accounted for by the grammar above (a
//! parser that kept only the digits read `S45.07.04` as `4507-04-01`), and anything else is
//! a [`DateError`]:
//! * a date that is not on the calendar (`2015-02-30`) — never moved to a neighbouring day;
//! * an era date outside its era (`平成31年5月1日` is `令和元年5月1日`; `令和元年4月` does not
//!   exist), and 明治 dates before 明治6年 (1873), when Japan used the lunisolar calendar and
//!   no year offset gives the Gregorian date;
//! * a year that is not four digits without an era (`75/3/1`, `3/1/1975`: ambiguous);
//! * a 西暦 year before 1800 or after 2199 (systems write `00000000`, `18000101`,
//!   `99991231` for "unknown" or "no end").
//!
//! A partial date (year, or year and month) is read as the first day of its period with
//! [`Precision`] saying so; [`parse_day`] refuses it. [`parse_lenient`] is for linkage, which
//! compares a corrupted birth date (`1975-11-31`) as evidence: same grammar, no calendar check.

use chrono::{Datelike, NaiveDate};

/// How much of a date the source gave; the date itself is completed to the first day of the
/// period (the convention OMOP ETLs use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Precision {
    Year,
    Month,
    Day,
}

/// A date as read from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceDate {
    pub date: NaiveDate,
    pub precision: Precision,
}

/// Why a text is not a date. Messages never repeat the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DateError {
    #[error("empty")]
    Empty,
    #[error("not a date in any spelling kiban reads (西暦 or 和暦)")]
    Unrecognized,
    #[error("not a calendar date (no such month or day)")]
    NoSuchDate,
    #[error("outside its era (e.g. 平成31年5月 is 令和元年5月)")]
    OutsideEra,
    #[error("before 明治6年 (1873): the lunisolar calendar, not convertible by year")]
    Lunisolar,
    #[error("ambiguous: a year needs four digits or an era")]
    Ambiguous,
    #[error("a year before 1800 (a placeholder, not a date)")]
    TooEarly,
    #[error("a year after 2199 (a placeholder such as 9999, not a date)")]
    TooLate,
    #[error("not a full date (the day is missing)")]
    NotADay,
}

impl DateError {
    /// A stable machine code.
    pub fn code(self) -> &'static str {
        match self {
            DateError::Empty => "empty",
            DateError::Unrecognized => "unrecognized",
            DateError::NoSuchDate => "no_such_date",
            DateError::OutsideEra => "outside_era",
            DateError::Lunisolar => "lunisolar",
            DateError::Ambiguous => "ambiguous",
            DateError::TooEarly => "too_early",
            DateError::TooLate => "too_late",
            DateError::NotADay => "not_a_day",
        }
    }
}

/// A Japanese era (元号).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Era {
    /// `明治` …
    pub kanji: &'static str,
    /// `M` …
    pub letter: char,
    /// The レセプト era code `1` … `5`.
    pub code: char,
    /// The square sign (`㍾` …).
    pub sign: char,
    /// First day (Gregorian) and last day (None: the current era).
    pub first: (i32, u32, u32),
    pub last: Option<(i32, u32, u32)>,
}

impl Era {
    /// The Gregorian year of era year 1 (元年).
    pub fn first_year(&self) -> i32 {
        self.first.0
    }

    fn first_day(&self) -> NaiveDate {
        ymd(self.first)
    }

    fn last_day(&self) -> Option<NaiveDate> {
        self.last.map(ymd)
    }

    /// Whether `d` lies in this era.
    pub fn contains(&self, d: NaiveDate) -> bool {
        d >= self.first_day() && self.last_day().is_none_or(|l| d <= l)
    }
}

fn ymd((y, m, d): (i32, u32, u32)) -> NaiveDate {
    // The era table holds real dates only.
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// The eras kiban reads, oldest first. 明治 begins on 明治元年1月1日 of the old calendar
/// (1868-01-25), though dates before 1873 are refused ([`DateError::Lunisolar`]).
pub const ERAS: [Era; 5] = [
    Era {
        kanji: "明治",
        letter: 'M',
        code: '1',
        sign: '㍾',
        first: (1868, 1, 25),
        last: Some((1912, 7, 29)),
    },
    Era {
        kanji: "大正",
        letter: 'T',
        code: '2',
        sign: '㍽',
        first: (1912, 7, 30),
        last: Some((1926, 12, 24)),
    },
    Era {
        kanji: "昭和",
        letter: 'S',
        code: '3',
        sign: '㍼',
        first: (1926, 12, 25),
        last: Some((1989, 1, 7)),
    },
    Era {
        kanji: "平成",
        letter: 'H',
        code: '4',
        sign: '㍻',
        first: (1989, 1, 8),
        last: Some((2019, 4, 30)),
    },
    Era {
        kanji: "令和",
        letter: 'R',
        code: '5',
        sign: '㋿',
        first: (2019, 5, 1),
        last: None,
    },
];

/// The first day Japan used the Gregorian calendar (明治6年1月1日).
const GREGORIAN_FROM: (i32, u32, u32) = (1873, 1, 1);

/// The parts of a date as spelled, before any calendar check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts {
    era: Option<usize>,
    /// The Gregorian year (the era year already converted).
    year: i32,
    month: Option<u32>,
    day: Option<u32>,
}

/// Reads a date in any spelling kiban knows (see the module documentation).
pub fn parse(s: &str) -> Result<SourceDate, DateError> {
    let p = parts(s)?;
    check(p)
}

/// Like [`parse`], but only a date given to the day (資格取得年月日, where a date completed to
/// the first of its month would be wrong evidence).
pub fn parse_day(s: &str) -> Result<NaiveDate, DateError> {
    let d = parse(s)?;
    if d.precision != Precision::Day {
        return Err(DateError::NotADay);
    }
    Ok(d.date)
}

/// A UKE date field: 西暦 `YYYYMMDD` or 和暦 `GYYMMDD`, and nothing else.
pub fn parse_uke_day(s: &str) -> Result<NaiveDate, DateError> {
    let t = uke_digits(s)?;
    if !matches!(t.len(), 7 | 8) {
        return Err(DateError::Unrecognized);
    }
    parse_day(&t)
}

/// A UKE year-month field (診療年月): 西暦 `YYYYMM` or 和暦 `GYYMM`, as the first day of the
/// month.
pub fn parse_uke_month(s: &str) -> Result<NaiveDate, DateError> {
    let t = uke_digits(s)?;
    let p = match t.len() {
        6 => parts(&t)?,
        5 => {
            let era = era_of_code(t.as_bytes()[0] as char).ok_or(DateError::Unrecognized)?;
            Parts {
                era: Some(era),
                year: era_year(era, num(&t[1..3])?)?,
                month: Some(num(&t[3..5])?),
                day: None,
            }
        }
        _ => return Err(DateError::Unrecognized),
    };
    let d = check(p)?;
    Ok(d.date)
}

/// A UKE date field's text (normalized, trimmed): digits only.
fn uke_digits(s: &str) -> Result<String, DateError> {
    let t = normalize(s).trim().to_string();
    if t.is_empty() {
        return Err(DateError::Empty);
    }
    if !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DateError::Unrecognized);
    }
    Ok(t)
}

/// For linkage: a date given to the day, in the same grammar as [`parse`], with the month
/// 1–12 and the day 1–31 but not checked against the calendar or the era (a corrupted
/// `1975-11-31` is still evidence). Returns (year, month, day).
pub fn parse_lenient(s: &str) -> Option<(i32, u32, u32)> {
    let p = parts(s).ok()?;
    let (m, d) = (p.month?, p.day?);
    ((1..=12).contains(&m) && (1..=31).contains(&d) && (1000..=9999).contains(&p.year))
        .then_some((p.year, m, d))
}

/// 西暦 → 和暦, e.g. 1989-01-08 → `平成元年1月8日`. `None` before 明治6年 (1873).
pub fn to_wareki(d: NaiveDate) -> Option<String> {
    if d < ymd(GREGORIAN_FROM) {
        return None;
    }
    let era = ERAS.iter().rev().find(|e| d >= e.first_day())?;
    let y = d.year() - era.first_year() + 1;
    let ys = if y == 1 {
        "元".to_string()
    } else {
        y.to_string()
    };
    Some(format!("{}{ys}年{}月{}日", era.kanji, d.month(), d.day()))
}

// ---------------------------------------------------------------------------------------------

/// Full-width ASCII, the ideographic space, square era signs and dash variants to plain forms.
fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{FF01}'..='\u{FF5E}' => {
                out.push(char::from_u32(c as u32 - 0xFEE0).unwrap_or(c));
            }
            '\u{3000}' => out.push(' '),
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FF70}' | '\u{30FC}' => out.push('-'),
            _ => match ERAS.iter().find(|e| e.sign == c) {
                Some(e) => out.push_str(e.kanji),
                None => out.push(c),
            },
        }
    }
    out
}

fn era_of_code(c: char) -> Option<usize> {
    ERAS.iter().position(|e| e.code == c)
}

fn num(s: &str) -> Result<u32, DateError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DateError::Unrecognized);
    }
    s.parse().map_err(|_| DateError::Unrecognized)
}

fn era_year(era: usize, y: u32) -> Result<i32, DateError> {
    if y == 0 {
        return Err(DateError::OutsideEra);
    }
    let y = i32::try_from(y).map_err(|_| DateError::Unrecognized)?;
    Ok(ERAS[era].first_year() + y - 1)
}

/// A cursor over the normalized text.
struct Cur<'a> {
    s: &'a str,
}

impl<'a> Cur<'a> {
    fn digits(&mut self) -> &'a str {
        let n = self.s.bytes().take_while(u8::is_ascii_digit).count();
        let (d, rest) = self.s.split_at(n);
        self.s = rest;
        d
    }

    fn eat(&mut self, p: &str) -> bool {
        match self.s.strip_prefix(p) {
            Some(r) => {
                self.s = r;
                true
            }
            None => false,
        }
    }

    fn spaces(&mut self) {
        self.s = self.s.trim_start_matches(' ');
    }

    fn peek(&self) -> Option<char> {
        self.s.chars().next()
    }
}

/// A month or day: one or two digits.
fn small(d: &str) -> Result<u32, DateError> {
    if d.is_empty() || d.len() > 2 {
        return Err(DateError::Unrecognized);
    }
    num(d)
}

/// What may follow a full date: nothing, or a time (`T…`, ` hh:mm…`).
fn time_suffix(rest: &str) -> Result<(), DateError> {
    let Some(t) = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' ')) else {
        return if rest.is_empty() {
            Ok(())
        } else {
            Err(DateError::Unrecognized)
        };
    };
    let t = t.trim_start_matches(' ');
    let ok = t.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b':' | b'.' | b'+' | b'-' | b'Z'));
    if ok {
        Ok(())
    } else {
        Err(DateError::Unrecognized)
    }
}

/// What may follow a date read by [`month_day`]: a time after a full date, nothing after a
/// partial one.
fn date_end(rest: &str, day: Option<u32>) -> Result<(), DateError> {
    match day {
        Some(_) => time_suffix(rest),
        None if rest.is_empty() => Ok(()),
        None => Err(DateError::Unrecognized),
    }
}

/// HL7 after `YYYYMMDD`: `HH[MM[SS]]` already counted in the digit run, then `[.S…][±ZZZZ]`.
fn hl7_suffix(mut rest: &str) -> Result<(), DateError> {
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return Err(DateError::Unrecognized);
        }
        rest = &r[n..];
    }
    if let Some(z) = rest.strip_prefix('+').or_else(|| rest.strip_prefix('-')) {
        if z.len() == 4 && z.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(());
        }
        return Err(DateError::Unrecognized);
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(DateError::Unrecognized)
    }
}

/// Month and day after a year: `年M月D日` forms or `<sep>M<sep>D` with one separator
/// throughout; the year alone is allowed.
fn month_day(c: &mut Cur<'_>) -> Result<(Option<u32>, Option<u32>), DateError> {
    if c.eat("年") {
        c.spaces();
        if c.s.is_empty() {
            return Ok((None, None));
        }
        let m = small(c.digits())?;
        c.spaces();
        if !c.eat("月") {
            return Err(DateError::Unrecognized);
        }
        c.spaces();
        if c.s.is_empty() {
            return Ok((Some(m), None));
        }
        let d = small(c.digits())?;
        c.spaces();
        c.eat("日");
        return Ok((Some(m), Some(d)));
    }
    let Some(sep) = c.peek().filter(|ch| matches!(ch, '.' | '/' | '-')) else {
        return Ok((None, None));
    };
    c.eat(&sep.to_string());
    let m = small(c.digits())?;
    if !c.eat(&sep.to_string()) {
        return Ok((Some(m), None));
    }
    let d = small(c.digits())?;
    Ok((Some(m), Some(d)))
}

/// An era prefix: name, first kanji, square sign (normalized to the name) or letter.
fn era_prefix(c: &mut Cur<'_>) -> Option<usize> {
    for (i, e) in ERAS.iter().enumerate() {
        if c.eat(e.kanji) {
            return Some(i);
        }
    }
    let first = c.peek()?;
    for (i, e) in ERAS.iter().enumerate() {
        let initial = e.kanji.chars().next();
        if first.to_ascii_uppercase() == e.letter || initial == Some(first) {
            // A letter or initial is an era only when an era year follows.
            let after = &c.s[first.len_utf8()..];
            let next = after.trim_start_matches(' ').chars().next();
            if next.is_some_and(|n| n.is_ascii_digit() || n == '元') {
                c.s = after;
                return Some(i);
            }
        }
    }
    None
}

fn parts(s: &str) -> Result<Parts, DateError> {
    let norm = normalize(s);
    let t = norm.trim_matches(|c: char| c.is_whitespace());
    if t.is_empty() {
        return Err(DateError::Empty);
    }
    let mut c = Cur { s: t };
    if let Some(era) = era_prefix(&mut c) {
        c.spaces();
        let (year, month, day) = if c.eat("元") {
            let (m, d) = month_day(&mut c)?;
            (era_year(era, 1)?, m, d)
        } else {
            let y = c.digits();
            match y.len() {
                1 | 2 => {
                    let (m, d) = month_day(&mut c)?;
                    (era_year(era, num(y)?)?, m, d)
                }
                // S450704
                6 => (
                    era_year(era, num(&y[0..2])?)?,
                    Some(num(&y[2..4])?),
                    Some(num(&y[4..6])?),
                ),
                _ => return Err(DateError::Unrecognized),
            }
        };
        date_end(c.s, day)?;
        return Ok(Parts {
            era: Some(era),
            year,
            month,
            day,
        });
    }
    let y = c.digits();
    let p = match y.len() {
        0 => return Err(DateError::Unrecognized),
        // YYYY, YYYY-MM(-DD), YYYY年…
        4 => {
            let (month, day) = month_day(&mut c)?;
            date_end(c.s, day)?;
            Parts {
                era: None,
                year: num(y)? as i32,
                month,
                day,
            }
        }
        6 => {
            if !c.s.is_empty() {
                return Err(DateError::Unrecognized);
            }
            Parts {
                era: None,
                year: num(&y[0..4])? as i32,
                month: Some(num(&y[4..6])?),
                day: None,
            }
        }
        // GYYMMDD
        7 => {
            let era = era_of_code(y.as_bytes()[0] as char).ok_or(DateError::Unrecognized)?;
            time_suffix(c.s)?;
            Parts {
                era: Some(era),
                year: era_year(era, num(&y[1..3])?)?,
                month: Some(num(&y[3..5])?),
                day: Some(num(&y[5..7])?),
            }
        }
        // YYYYMMDD, then HL7 HH[MM[SS]] or a time.
        8 | 10 | 12 | 14 => {
            if y.len() == 8 && c.s.starts_with(['T', ' ']) {
                time_suffix(c.s)?;
            } else {
                hl7_suffix(c.s)?;
            }
            Parts {
                era: None,
                year: num(&y[0..4])? as i32,
                month: Some(num(&y[4..6])?),
                day: Some(num(&y[6..8])?),
            }
        }
        // 75/3/1, 3/1/1975: a year without four digits or an era
        1 | 2 if matches!(c.peek(), Some('.' | '/' | '-' | '年')) => {
            return Err(DateError::Ambiguous);
        }
        _ => return Err(DateError::Unrecognized),
    };
    Ok(p)
}

/// Calendar, era and range checks; the date completed to the first day of its period.
fn check(p: Parts) -> Result<SourceDate, DateError> {
    let (month, day, precision) = match (p.month, p.day) {
        (None, _) => (1, 1, Precision::Year),
        (Some(m), None) => (m, 1, Precision::Month),
        (Some(m), Some(d)) => (m, d, Precision::Day),
    };
    if !(1..=12).contains(&month) {
        return Err(DateError::NoSuchDate);
    }
    let date = NaiveDate::from_ymd_opt(p.year, month, day).ok_or(DateError::NoSuchDate)?;
    // The last day of the period the source named.
    let last = match precision {
        Precision::Day => Some(date),
        Precision::Month => date
            .checked_add_months(chrono::Months::new(1))
            .and_then(|d| d.pred_opt()),
        Precision::Year => NaiveDate::from_ymd_opt(p.year, 12, 31),
    }
    .ok_or(DateError::NoSuchDate)?;
    match p.era {
        Some(i) => {
            let e = &ERAS[i];
            // The period must overlap the era.
            if last < e.first_day() || e.last_day().is_some_and(|l| date > l) {
                return Err(DateError::OutsideEra);
            }
            if last < ymd(GREGORIAN_FROM) {
                return Err(DateError::Lunisolar);
            }
        }
        None => seireki_year(p.year)?,
    }
    Ok(SourceDate { date, precision })
}

/// A 西暦 year kiban reads as a date: 1800–2199 (outside, a placeholder such as `00000000`,
/// `18000101` or `99991231`). For a reader that parses a declared format of its own (a CSV
/// mapping's `date_format`), so that it refuses what [`parse`] refuses.
pub fn seireki_year(year: i32) -> Result<(), DateError> {
    if year < 1800 {
        Err(DateError::TooEarly)
    } else if year > 2199 {
        Err(DateError::TooLate)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, dd: u32) -> Result<NaiveDate, DateError> {
        Ok(NaiveDate::from_ymd_opt(y, m, dd).unwrap())
    }

    fn day(s: &str) -> Result<NaiveDate, DateError> {
        parse_day(s)
    }

    #[test]
    fn seireki() {
        assert_eq!(day("20110701103045"), d(2011, 7, 1));
        assert_eq!(day("20111220224447.3399"), d(2011, 12, 20));
        assert_eq!(day("20091201120000+0900"), d(2009, 12, 1));
        assert_eq!(day("2022-06-09"), d(2022, 6, 9));
        assert_eq!(day("1976-01-19T22:58:16-05:00"), d(1976, 1, 19));
        assert_eq!(day("2022/6/9 0:00:00"), d(2022, 6, 9));
        assert_eq!(day("1975年3月1日"), d(1975, 3, 1));
        assert_eq!(day("１９７５．０３．０１"), d(1975, 3, 1));
        let p = parse("2022-05").unwrap();
        assert_eq!(
            (p.date, p.precision),
            (d(2022, 5, 1).unwrap(), Precision::Month)
        );
        assert_eq!(parse("2018").unwrap().precision, Precision::Year);
        assert_eq!(parse("200912").unwrap().precision, Precision::Month);
        assert_eq!(day("2024-04"), Err(DateError::NotADay));
        assert_eq!(day("20111399"), Err(DateError::NoSuchDate));
        assert_eq!(day("2015-02-30"), Err(DateError::NoSuchDate));
        assert_eq!(day("00000000"), Err(DateError::NoSuchDate));
        assert_eq!(day("17000101"), Err(DateError::TooEarly));
        assert_eq!(day("99991231"), Err(DateError::TooLate));
        assert_eq!(parse("450704"), Err(DateError::TooLate));
        assert_eq!(day("75/3/1"), Err(DateError::Ambiguous));
        assert_eq!(day("3/1/1975"), Err(DateError::Ambiguous));
        assert_eq!(day("1975-03/01"), Err(DateError::Unrecognized));
        assert_eq!(day("1975-03-01x"), Err(DateError::Unrecognized));
        assert_eq!(day("abc"), Err(DateError::Unrecognized));
        assert_eq!(day(""), Err(DateError::Empty));
    }

    #[test]
    fn wareki() {
        assert_eq!(day("S45.07.04"), d(1970, 7, 4));
        assert_eq!(day("s45/7/4"), d(1970, 7, 4));
        assert_eq!(day("昭和45年7月4日"), d(1970, 7, 4));
        assert_eq!(day("昭和 45年 7月 4日"), d(1970, 7, 4));
        assert_eq!(day("昭45.7.4"), d(1970, 7, 4));
        assert_eq!(day("㍼45.7.4"), d(1970, 7, 4));
        assert_eq!(day("Ｓ４５．０７．０４"), d(1970, 7, 4));
        assert_eq!(day("S450704"), d(1970, 7, 4));
        assert_eq!(day("3450704"), d(1970, 7, 4));
        assert_eq!(day("H18.01.02"), d(2006, 1, 2));
        assert_eq!(day("H5.1.2"), d(1993, 1, 2));
        assert_eq!(day("平成元年1月8日"), d(1989, 1, 8));
        assert_eq!(day("H1-1-8"), d(1989, 1, 8));
        assert_eq!(day("令和元年5月1日"), d(2019, 5, 1));
        assert_eq!(day("R2.2.29"), d(2020, 2, 29));
        assert_eq!(day("大正3年4月5日"), d(1914, 4, 5));
        assert_eq!(day("M45.7.29"), d(1912, 7, 29));
        assert_eq!(day("2151224"), d(1926, 12, 24));
        // era bounds
        assert_eq!(day("平成31年5月1日"), Err(DateError::OutsideEra));
        assert_eq!(parse("平成31年5月"), Err(DateError::OutsideEra));
        assert_eq!(parse("令和元年4月"), Err(DateError::OutsideEra));
        assert_eq!(day("令和元年4月30日"), Err(DateError::OutsideEra));
        assert_eq!(day("S64.1.8"), Err(DateError::OutsideEra));
        assert_eq!(day("S64.1.7"), d(1989, 1, 7));
        assert_eq!(day("M45.7.30"), Err(DateError::OutsideEra));
        assert_eq!(day("S0.1.1"), Err(DateError::OutsideEra));
        assert_eq!(day("M5.12.2"), Err(DateError::Lunisolar));
        assert_eq!(day("M6.1.1"), d(1873, 1, 1));
        assert_eq!(parse("平成元年1月").unwrap().date, d(1989, 1, 1).unwrap());
        assert_eq!(day("H2.2.30"), Err(DateError::NoSuchDate));
        assert_eq!(day("S45.07.04.1"), Err(DateError::Unrecognized));
        assert_eq!(day("S123.1.1"), Err(DateError::Unrecognized));
    }

    #[test]
    fn uke_fields() {
        assert_eq!(parse_uke_day("4310430"), d(2019, 4, 30));
        assert_eq!(parse_uke_day("5010501"), d(2019, 5, 1));
        assert_eq!(parse_uke_day("5010430"), Err(DateError::OutsideEra));
        assert_eq!(parse_uke_day("4310501"), Err(DateError::OutsideEra));
        assert_eq!(parse_uke_day("20240705"), d(2024, 7, 5));
        assert_eq!(parse_uke_day("2024-07-05"), Err(DateError::Unrecognized));
        assert_eq!(parse_uke_day("6010101"), Err(DateError::Unrecognized));
        assert_eq!(parse_uke_month("202407"), d(2024, 7, 1));
        assert_eq!(parse_uke_month("43104"), d(2019, 4, 1));
        assert_eq!(parse_uke_month("43105"), Err(DateError::OutsideEra));
        assert_eq!(parse_uke_month("50104"), Err(DateError::OutsideEra));
        assert_eq!(parse_uke_month("40101"), d(1989, 1, 1));
    }

    #[test]
    fn lenient_keeps_corrupted_days() {
        assert_eq!(parse_lenient("19751131"), Some((1975, 11, 31)));
        assert_eq!(parse_lenient("S50.2.30"), Some((1975, 2, 30)));
        assert_eq!(parse_lenient("1975-13-01"), None);
        assert_eq!(parse_lenient("1975-03"), None);
    }

    #[test]
    fn wareki_round_trip() {
        assert_eq!(
            to_wareki(d(1989, 1, 7).unwrap()).as_deref(),
            Some("昭和64年1月7日")
        );
        assert_eq!(
            to_wareki(d(1989, 1, 8).unwrap()).as_deref(),
            Some("平成元年1月8日")
        );
        assert_eq!(to_wareki(d(1872, 1, 8).unwrap()), None);
        let x = d(2019, 5, 1).unwrap();
        assert_eq!(parse_day(&to_wareki(x).unwrap()), Ok(x));
    }
}
