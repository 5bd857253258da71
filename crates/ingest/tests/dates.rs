//! Dates are read by one parser everywhere (issue 14 item 8): every spelling a source writes —
//! 西暦 and 和暦 (M/T/S/H/R letters, era names, their first kanji, square signs, 元年), any
//! separator, zero-padded or not, full-width or not — reads as the date it spells, and nothing
//! else is a date: a misread like `S45.07.04` → `4507-04-01` is impossible by construction
//! (no character is ever skipped, era bounds and the calendar are checked). A date a CSV row
//! can do without no longer costs the row.

use chrono::{Datelike, NaiveDate};
use kiban_ingest::util::{parse_date, read_day};
use kiban_ingest::*;
use kiban_model::date::{DateError, ERAS, Era};
use kiban_model::{Fact, Identity};
use proptest::prelude::*;

fn era_of(d: NaiveDate) -> Option<&'static Era> {
    ERAS.iter().find(|e| e.contains(d))
}

fn full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 + 0xFEE0).unwrap_or(c),
            c => c,
        })
        .collect()
}

/// How a spelling is written.
#[derive(Debug, Clone)]
struct Style {
    /// 0 `.`, 1 `/`, 2 `-`, 3 年月日, 4 compact digits
    sep: u8,
    pad: bool,
    /// 0 letter, 1 lower-case letter, 2 era name, 3 first kanji, 4 square sign
    era_form: u8,
    gannen_kanji: bool,
    space_after_era: bool,
    wide: bool,
    /// 0 none, 1 `T10:20:30+09:00`, 2 ` 0:00:00`
    time: u8,
}

fn style() -> impl Strategy<Value = Style> {
    (
        0u8..5,
        any::<bool>(),
        0u8..5,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0u8..3,
    )
        .prop_map(
            |(sep, pad, era_form, gannen_kanji, space_after_era, wide, time)| Style {
                sep,
                pad,
                era_form,
                gannen_kanji,
                space_after_era,
                wide,
                time,
            },
        )
}

/// Dates from the first Gregorian day of Japan (明治6年) to 2060.
fn date() -> impl Strategy<Value = NaiveDate> {
    let first = NaiveDate::from_ymd_opt(1873, 1, 1).unwrap();
    (0i64..68_000).prop_map(move |n| first + chrono::Duration::days(n))
}

fn two(n: u32, pad: bool) -> String {
    if pad {
        format!("{n:02}")
    } else {
        n.to_string()
    }
}

fn month_day(st: &Style, m: u32, d: u32) -> String {
    match st.sep {
        0 => format!(".{}.{}", two(m, st.pad), two(d, st.pad)),
        1 => format!("/{}/{}", two(m, st.pad), two(d, st.pad)),
        2 => format!("-{}-{}", two(m, st.pad), two(d, st.pad)),
        _ => format!("年{}月{}日", two(m, st.pad), two(d, st.pad)),
    }
}

fn time(st: &Style) -> &'static str {
    match st.time {
        1 => "T10:20:30+09:00",
        2 => " 0:00:00",
        _ => "",
    }
}

fn finish(st: &Style, s: String) -> String {
    if st.wide { full_width(&s) } else { s }
}

/// A 西暦 spelling of `d`.
fn seireki(d: NaiveDate, st: &Style) -> String {
    let s = if st.sep == 4 {
        format!("{:04}{:02}{:02}{}", d.year(), d.month(), d.day(), time(st))
    } else {
        format!(
            "{}{}{}",
            d.year(),
            month_day(st, d.month(), d.day()),
            time(st)
        )
    };
    finish(st, s)
}

fn era_mark(e: &Era, st: &Style) -> String {
    match st.era_form {
        0 => e.letter.to_string(),
        1 => e.letter.to_ascii_lowercase().to_string(),
        2 => e.kanji.to_string(),
        3 => e.kanji.chars().next().unwrap().to_string(),
        _ => e.sign.to_string(),
    }
}

/// A 和暦 spelling of `d` in era `e` (the era year may be out of the era's bounds: the
/// spelling is then of a date that does not exist).
fn wareki_in(e: &Era, d: NaiveDate, st: &Style) -> String {
    let y = (d.year() - e.first_year() + 1) as u32;
    if st.sep == 4 {
        // レセプト GYYMMDD, or the era letter + YYMMDD
        return finish(
            st,
            if st.pad {
                format!("{}{y:02}{:02}{:02}", e.code, d.month(), d.day())
            } else {
                format!("{}{y:02}{:02}{:02}", era_mark(e, st), d.month(), d.day())
            },
        );
    }
    let year = if y == 1 && st.gannen_kanji {
        "元".to_string()
    } else {
        two(y, st.pad)
    };
    let sp = if st.space_after_era { " " } else { "" };
    finish(
        st,
        format!(
            "{}{sp}{year}{}{}",
            era_mark(e, st),
            month_day(st, d.month(), d.day()),
            time(st)
        ),
    )
}

/// What the old reader made of a spelling: its digits only, as YYYYMMDD / YYYYMM / YYYY.
fn digits_guess(s: &str) -> Option<NaiveDate> {
    let norm: String = s
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - 0xFEE0).unwrap(),
            c => c,
        })
        .take_while(|c| *c != 'T' && *c != ' ')
        .filter(char::is_ascii_digit)
        .collect();
    let n = |r: std::ops::Range<usize>| norm.get(r)?.parse::<u32>().ok();
    match norm.len() {
        8.. => NaiveDate::from_ymd_opt(n(0..4)? as i32, n(4..6)?, n(6..8)?),
        6 => NaiveDate::from_ymd_opt(n(0..4)? as i32, n(4..6)?, 1),
        4 => NaiveDate::from_ymd_opt(n(0..4)? as i32, 1, 1),
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every spelling reads as the date it was generated from, never as the digits-only guess.
    #[test]
    fn every_spelling_reads_as_its_date(d in date(), st in style()) {
        let s = seireki(d, &st);
        prop_assert_eq!(read_day(&s), Ok(d), "{}", s);
        prop_assert_eq!(parse_date(&s), Some(d), "{}", s);
        let e = era_of(d).expect("an era");
        let w = wareki_in(e, d, &st);
        prop_assert_eq!(read_day(&w), Ok(d), "{}", w);
        prop_assert_eq!(parse_date(&w), Some(d), "{}", w);
        if let Some(g) = digits_guess(&w) {
            prop_assert_ne!(g, d, "{}", w);
        }
        // Year and month alone read as the first of the month, in both calendars.
        if st.sep < 3 {
            let sep = ['.', '/', '-'][st.sep as usize];
            let ym = format!("{}{sep}{}", d.year(), two(d.month(), st.pad));
            let first = d.with_day(1).unwrap();
            prop_assert_eq!(parse_date(&ym), Some(first), "{}", ym);
            prop_assert_eq!(read_day(&ym), Err(DateError::NotADay), "{}", ym);
        }
    }

    /// No character is ever skipped: a stray character anywhere in a spelling makes it an
    /// error, never a date (a digits-only reader would still find one).
    #[test]
    fn a_stray_character_anywhere_is_an_error(
        d in date(),
        st in style(),
        pos in any::<prop::sample::Index>(),
        c in prop::sample::select(vec!['x', '?', '*', '#', '_', 'a', '@', ',', '%']),
        wareki in any::<bool>(),
    ) {
        let s = if wareki {
            wareki_in(era_of(d).unwrap(), d, &st)
        } else {
            seireki(d, &st)
        };
        let chars: Vec<char> = s.chars().collect();
        let at = pos.index(chars.len() + 1);
        let mut t: String = chars[..at].iter().collect();
        t.push(c);
        t.extend(&chars[at..]);
        prop_assert!(read_day(&t).is_err(), "{} read as {:?}", t, read_day(&t));
        prop_assert_eq!(parse_date(&t), None, "{}", t);
    }

    /// A date spelled in an era it is not in does not exist (平成31年5月1日 is 令和元年5月1日).
    #[test]
    fn a_date_outside_its_era_is_an_error(
        st in style(),
        k in 0usize..5,
        after in any::<bool>(),
        n in 1i64..20_000,
    ) {
        let e = &ERAS[k];
        let first = NaiveDate::from_ymd_opt(e.first.0, e.first.1, e.first.2).unwrap();
        let d = match e.last {
            // after the era ended, in a year the era's numbering still reaches
            Some((y, m, dd)) if after => {
                NaiveDate::from_ymd_opt(y, m, dd).unwrap() + chrono::Duration::days(n)
            }
            // before the era began, in its first year
            _ => {
                let jan1 = NaiveDate::from_ymd_opt(e.first.0, 1, 1).unwrap();
                let before = (first - jan1).num_days();
                prop_assume!(before > 0);
                jan1 + chrono::Duration::days(n % before)
            }
        };
        let y = d.year() - e.first_year() + 1;
        prop_assume!(!e.contains(d) && (1..=99).contains(&y));
        let w = wareki_in(e, d, &st);
        prop_assert!(
            matches!(read_day(&w), Err(DateError::OutsideEra | DateError::Lunisolar)),
            "{} read as {:?}", w, read_day(&w)
        );
    }

    /// A day that is not on the calendar is an error in every spelling, never a neighbour.
    #[test]
    fn a_day_not_on_the_calendar_is_an_error(
        d in date(),
        st in style(),
        extra in 1u32..4,
    ) {
        let first = d.with_day(1).unwrap();
        let next = first.checked_add_months(chrono::Months::new(1)).unwrap();
        let len = (next - first).num_days() as u32;
        let day = len + extra;
        prop_assume!(day <= 31 || st.sep != 4);
        let mut bad = seireki(first, &st);
        let good_md = month_day(&st, d.month(), 1);
        let bad_md = month_day(&st, d.month(), day);
        if st.sep == 4 {
            bad = finish(&st, format!("{:04}{:02}{:02}", d.year(), d.month(), day));
        } else {
            bad = bad.replacen(&finish(&st, good_md.clone()), &finish(&st, bad_md.clone()), 1);
        }
        prop_assert!(read_day(&bad).is_err(), "{} read as {:?}", bad, read_day(&bad));
        let e = era_of(first).unwrap();
        if st.sep != 4 {
            let w = wareki_in(e, first, &st)
                .replacen(&finish(&st, good_md), &finish(&st, bad_md), 1);
            prop_assert!(read_day(&w).is_err(), "{} read as {:?}", w, read_day(&w));
        }
    }
}

#[test]
fn the_findings_of_issue_14() {
    let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd);
    assert_eq!(parse_date("S45.07.04"), d(1970, 7, 4), "not 4507-04-01");
    assert_eq!(parse_date("H18.11.05"), d(2006, 11, 5), "not 1811-05-01");
    assert_eq!(
        parse_date("H5.1.2"),
        d(1993, 1, 2),
        "era years below 18 read"
    );
    assert_eq!(parse_date("平成31年5月1日"), None, "令和元年5月1日");
    assert_eq!(parse_date("令和元年5月1日"), d(2019, 5, 1));
    assert_eq!(parse_date("Ｈ３０．１２．３１"), d(2018, 12, 31));
    assert_eq!(parse_date("450704"), None, "a year 4507 is no date");
    assert_eq!(read_day("3/1/1975"), Err(DateError::Ambiguous));
}

const PERSONS: &str = r#"
[[file]]
name = "p.csv"
table = "person"
patient_id = "ID"
[file.columns]
name_kanji = { join = ["姓", "名"], sep = " " }
name_kana = { join = ["セイ", "メイ"], sep = "　" }
birth_date = "生年月日"
address = { join = ["都道府県", "市区町村", "番地"] }
"#;

fn identities(items: &[Item]) -> Vec<Identity> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Facts(sf) => sf.identity.clone(),
            _ => None,
        })
        .collect()
}

/// The two hospitals of the finding wrote 和暦 birth dates with letters: every row is read to
/// its date, none is quarantined, none is misread.
#[test]
fn csv_reads_wareki_birth_dates_in_auto_mode() {
    let csv = "ID,姓,名,セイ,メイ,生年月日,都道府県,市区町村,番地\n\
               P1,山田,太郎,ヤマダ,タロウ,S45.07.04,東京都,千代田区,千代田1-1\n\
               P2,佐藤,花子,サトウ,ハナコ,H18.11.05,大阪府,,\n\
               P3,鈴木,一郎,スズキ,イチロウ,H5.1.2,,,\n\
               P4,高橋,,タカハシ,,昭和23年4月5日,,,\n\
               P5,田中,次郎,タナカ,ジロウ,令和元年5月1日,,,\n\
               P6,伊藤,三郎,イトウ,サブロウ,Ｓ６４．０１．０７,,,\n";
    let (items, s) = parse_csv(csv.as_bytes(), PERSONS, "p.csv").unwrap();
    assert_eq!(
        (s.accepted, s.quarantined, s.flagged),
        (6, 0, 0),
        "{items:?}"
    );
    let ids = identities(&items);
    let births: Vec<Option<&str>> = ids.iter().map(|i| i.birth_date.as_deref()).collect();
    assert_eq!(
        births,
        vec![
            Some("1970-07-04"),
            Some("2006-11-05"),
            Some("1993-01-02"),
            Some("1948-04-05"),
            Some("2019-05-01"),
            Some("1989-01-07"),
        ]
    );
    // Joined columns: the non-empty parts with the separator.
    assert_eq!(ids[0].name_kanji.as_deref(), Some("山田 太郎"));
    assert_eq!(ids[0].name_kana.as_deref(), Some("ヤマダ　タロウ"));
    assert_eq!(ids[0].address.as_deref(), Some("東京都千代田区千代田1-1"));
    assert_eq!(ids[1].address.as_deref(), Some("大阪府"));
    assert_eq!(ids[2].address, None, "every part empty: an empty field");
    assert_eq!(ids[3].name_kanji.as_deref(), Some("高橋"));
    // The prefecture of the person fact comes from the joined address.
    let Item::Facts(sf) = items.iter().find(|i| matches!(i, Item::Facts(_))).unwrap() else {
        unreachable!()
    };
    let Fact::Person(p) = &sf.facts[0].0 else {
        panic!()
    };
    assert_eq!(p.prefecture.as_deref(), Some("東京都"));
}

/// A birth date that is not a real date no longer costs the record: the row is accepted, the
/// field flagged (line, field, column — never the value) and its text kept for linkage.
#[test]
fn csv_birth_date_that_is_no_date_is_kept_as_text_and_flagged() {
    let csv = "ID,姓,名,セイ,メイ,生年月日,都道府県,市区町村,番地\n\
               P1,山田,太郎,ヤマダ,タロウ,1975-02-30,,,\n\
               P2,佐藤,花子,サトウ,ハナコ,平成31年5月1日,,,\n\
               P3,鈴木,一郎,スズキ,イチロウ,75/3/1,,,\n\
               P4,高橋,誠,タカハシ,マコト,1980-01-02,,,\n";
    let (items, s) = parse_csv(csv.as_bytes(), PERSONS, "p.csv").unwrap();
    assert_eq!(
        (s.units, s.accepted, s.quarantined, s.flagged),
        (4, 4, 0, 3)
    );
    let flags: Vec<(String, String, QuarantineCode, String)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Quarantine(q) => Some((
                q.location.clone(),
                q.field.clone().unwrap_or_default(),
                q.code,
                q.reason.clone(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(flags.len(), 3);
    for (i, (loc, field, code, reason)) in flags.iter().enumerate() {
        assert_eq!(loc, &format!("line {}", i + 2));
        assert_eq!(field, "birth_date (column \"生年月日\")");
        assert_eq!(*code, QuarantineCode::UnreadableDate);
        assert_eq!(code.as_str(), "unreadable_date");
        assert!(reason.ends_with("kept as its source text for linkage (the row was accepted)"));
        for v in ["1975-02-30", "平成31年5月1日", "75/3/1"] {
            assert!(!reason.contains(v), "no value in reasons: {reason}");
        }
    }
    assert!(flags[0].3.starts_with("not a calendar date"));
    assert!(flags[1].3.starts_with("outside its era"));
    assert!(flags[2].3.starts_with("ambiguous"));
    let ids = identities(&items);
    let kept: Vec<(Option<&str>, Option<&str>)> = ids
        .iter()
        .map(|i| (i.birth_date.as_deref(), i.birth_date_text.as_deref()))
        .collect();
    assert_eq!(
        kept,
        vec![
            (None, Some("1975-02-30")),
            (None, Some("平成31年5月1日")),
            (None, Some("75/3/1")),
            (Some("1980-01-02"), None),
        ]
    );
    // The vault record of an ordinary identity is unchanged (the field is skipped when empty),
    // and a record written before the field existed still reads.
    let json = serde_json::to_string(&ids[3]).unwrap();
    assert!(!json.contains("birth_date_text"), "{json}");
    let old: Identity = serde_json::from_str(&json).unwrap();
    assert_eq!(old, ids[3]);
    let odd = serde_json::to_string(&ids[0]).unwrap();
    let back: Identity = serde_json::from_str(&odd).unwrap();
    assert_eq!(back.birth_date_evidence(), Some("1975-02-30"));
}

/// A fact's own date still decides: without it there is no fact, so the row is quarantined;
/// an end date that is no date is flagged and left empty.
#[test]
fn csv_fact_dates() {
    let mapping = r#"
[[file]]
name = "v.csv"
table = "visit"
patient_id = "ID"
[file.columns]
start_date = "開始"
end_date = "終了"
"#;
    let csv = "ID,開始,終了\n\
               P1,R6.4.1,R6.4.3\n\
               P2,R6.4.31,\n\
               P3,2024-04-01,99991231\n";
    let (items, s) = parse_csv(csv.as_bytes(), mapping, "v.csv").unwrap();
    assert_eq!((s.accepted, s.quarantined, s.flagged), (2, 1, 1));
    let visits: Vec<(String, Option<String>)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Facts(sf) => match &sf.facts[0].0 {
                Fact::Visit(v) => {
                    Some((v.start_date.to_string(), v.end_date.map(|d| d.to_string())))
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        visits,
        vec![
            ("2024-04-01".into(), Some("2024-04-03".into())),
            ("2024-04-01".into(), None),
        ]
    );
    let codes: Vec<(String, QuarantineCode)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Quarantine(q) => Some((q.location.clone(), q.code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ("line 3".into(), QuarantineCode::InvalidValue),
            ("line 4".into(), QuarantineCode::UnreadableDate),
        ]
    );
}

/// A declared `date_format` refuses what the one parser refuses: the placeholder years
/// outside 1800–2199 (`9999-12-31` for "no end", `1700-01-01`) are no dates there either.
#[test]
fn csv_declared_date_format_refuses_placeholder_years() {
    let mapping = r#"
[[file]]
name = "v.csv"
table = "visit"
patient_id = "ID"
date_format = "%Y-%m-%d"
[file.columns]
start_date = "開始"
end_date = "終了"
"#;
    let csv = "ID,開始,終了\n\
               P1,2024-04-01,9999-12-31\n\
               P2,9999-12-31,\n\
               P3,2024-04-01,1700-01-01\n\
               P4,2024-04-01,2199-12-31\n";
    let (items, s) = parse_csv(csv.as_bytes(), mapping, "v.csv").unwrap();
    assert_eq!((s.accepted, s.quarantined, s.flagged), (3, 1, 2));
    let ends: Vec<Option<String>> = items
        .iter()
        .filter_map(|i| match i {
            Item::Facts(sf) => match &sf.facts[0].0 {
                Fact::Visit(v) => Some(v.end_date.map(|d| d.to_string())),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(ends, vec![None, None, Some("2199-12-31".into())]);
    let reasons: Vec<(String, QuarantineCode, bool)> = items
        .iter()
        .filter_map(|i| match i {
            Item::Quarantine(q) => Some((
                q.location.clone(),
                q.code,
                q.reason.contains(&DateError::TooLate.to_string())
                    || q.reason.contains(&DateError::TooEarly.to_string()),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("line 2".into(), QuarantineCode::UnreadableDate, true),
            ("line 3".into(), QuarantineCode::InvalidValue, true),
            ("line 4".into(), QuarantineCode::UnreadableDate, true),
        ]
    );
}

#[test]
fn join_mapping_errors_name_the_field() {
    for (cols, want) in [
        ("name_kanji = { join = [] }", "name_kanji"),
        (
            "name_kanji = { join = [\"a\"], glue = \" \" }",
            "name_kanji",
        ),
        ("name_kanji = { join = [\"a\", 3] }", "name_kanji"),
        ("name_kanji = 3", "name_kanji"),
    ] {
        let m = format!(
            "[[file]]\nname = \"p.csv\"\ntable = \"person\"\npatient_id = \"ID\"\n[file.columns]\n{cols}\n"
        );
        let e = kiban_ingest::csvmap::CsvMapping::parse(&m)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want) && e.contains("p.csv"), "{e}");
    }
    // Header-less files join by number.
    let m = "[[file]]\nname = \"p.csv\"\ntable = \"person\"\npatient_id = \"#1\"\nheader = false\n\
             [file.columns]\nname_kanji = { join = [\"#2\", \"#3\"], sep = \" \" }\n";
    let (items, _) = parse_csv("P1,山田,太郎\n".as_bytes(), m, "p.csv").unwrap();
    assert_eq!(
        identities(&items)[0].name_kanji.as_deref(),
        Some("山田 太郎")
    );
    let m = m.replace("#3", "姓");
    let e = kiban_ingest::csvmap::CsvMapping::parse(&m)
        .unwrap_err()
        .to_string();
    assert!(e.contains("#N"), "{e}");
}
