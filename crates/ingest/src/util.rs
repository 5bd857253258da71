//! Small lenient parsers shared by the readers: dates, numbers, code-system names.

use chrono::NaiveDate;
use unicode_normalization::UnicodeNormalization;

pub use kiban_model::date::{DateError, Precision, SourceDate};

/// Reads a date in any spelling a source writes (HL7 TS/DT `YYYY[MM[DD[HHMM…]]]`, FHIR
/// `YYYY[-MM[-DD[Thh…]]]`, `YYYY/M/D`, `YYYY年M月D日`, 和暦 `S45.07.04`, `昭和45年7月4日`,
/// `平成元年1月8日`, `3450704` …) through the one parser of kiban, [`kiban_model::date`]:
/// every character is accounted for, nothing is guessed, and why a text is not a date is a
/// [`DateError`]. Partial dates take the first day of the period (a year-only onset becomes
/// January 1st): the clinical store needs a day, and the first day is the convention OMOP
/// ETLs use.
pub fn read_date(s: &str) -> Result<SourceDate, DateError> {
    kiban_model::date::parse(s)
}

/// [`read_date`]'s date, or None (for optional fields whose loss is not worth a flag).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    read_date(s).ok().map(|d| d.date)
}

/// Like [`parse_date`], but only a date given to the day. For 資格取得年月日 (HL7 IN1-12, FHIR
/// Coverage.period.start): linkage compares it with the days a card was used, and a partial
/// date completed to the first of the period would make a card look valid before it was
/// issued, which reads as evidence of another person.
pub fn parse_day(s: &str) -> Option<NaiveDate> {
    read_day(s).ok()
}

/// [`parse_day`] with the reason.
pub fn read_day(s: &str) -> Result<NaiveDate, DateError> {
    kiban_model::date::parse_day(s)
}

/// ISO `YYYY-MM-DD` of a parsed date, for identity fields.
pub fn iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Full-width digits and signs to ASCII (NFKC), then a plain float. `<0.5`, `1+` and
/// other qualified results are not numbers: they stay text.
pub fn parse_number(s: &str) -> Option<f64> {
    let n: String = s.nfkc().collect::<String>().trim().replace(',', "");
    if n.is_empty() {
        return None;
    }
    let v: f64 = n.parse().ok()?;
    v.is_finite().then_some(v)
}

/// A reference range `low-high`, `low～high`, `-high`, `low-`, or a one-sided bound
/// `<130`, `<=130`, `≦130`, `>40` (SS-MIX2 vital signs write upper limits that way).
pub fn parse_range(s: &str) -> (Option<f64>, Option<f64>) {
    let n: String = s.nfkc().collect::<String>();
    let n = n.trim();
    if n.is_empty() {
        return (None, None);
    }
    for (prefix, upper) in [
        ("<=", true),
        ("≦", true),
        ("≤", true),
        ("<", true),
        (">=", false),
        ("≧", false),
        ("≥", false),
        (">", false),
    ] {
        if let Some(rest) = n.strip_prefix(prefix) {
            let v = parse_number(rest);
            return if upper { (None, v) } else { (v, None) };
        }
    }
    // Split at a separator that is not a leading minus sign.
    for sep in ['～', '~', '-', '－', '—'] {
        if let Some(pos) = n.get(1..).and_then(|rest| rest.find(sep)).map(|p| p + 1) {
            let (a, b) = n.split_at(pos);
            let b = &b[sep.len_utf8()..];
            return (parse_number(a), parse_number(b));
        }
    }
    (None, None)
}

/// What kind of code system a source's system name denotes. `standard` is the name written to
/// `code_system` when the code is one kiban treats as standard.
pub fn standard_system(system: &str) -> Option<&'static str> {
    let s = system.trim();
    let u = s.to_ascii_uppercase();
    let u = u.as_str();
    Some(match u {
        "I10" | "ICD10" | "ICD-10" | "ICD10JP" | "ICD-10-JP" => "ICD10",
        "JC10" | "JLAC10" => "JLAC10",
        "JC11" | "JLAC11" => "JLAC11",
        "LN" | "LOINC" => "LOINC",
        "YJ" | "99YJ" | "YJCODE" => "YJ",
        "HOT" | "HOT7" | "HOT9" | "HOT13" => "HOT",
        "SCT" | "SNOMED" | "SNM" | "SNOMEDCT" => "SNOMED",
        "RXNORM" => "RxNorm",
        "JJ1017" | "JJ1017-16M" | "JJ1017-32" => "JJ1017",
        _ => {
            let l = s.to_ascii_lowercase();
            if l.contains("icd-10") || l.contains("icd10") || l.ends_with("2.16.840.1.113883.6.3") {
                "ICD10"
            } else if l.contains("snomed") {
                "SNOMED"
            } else if l.contains("loinc") {
                "LOINC"
            } else if l.contains("rxnorm") {
                "RxNorm"
            } else if l.ends_with("1.2.392.200119.4.504")
                || l.ends_with("1.2.392.200119.6.1005")
                || l.contains("jlac10")
                || l.contains("jc10")
            {
                // JLAC10 (臨床検査項目分類コード) and the 特定健診 item code system built on it.
                "JLAC10"
            } else if l.ends_with("1.2.392.100495.20.2.74")
                || l.contains("yj-code")
                || l.ends_with("/yj")
            {
                "YJ"
            } else if l.contains("1.2.392.200119.4.403") || l.contains("hot") {
                "HOT"
            } else if l.contains("cvx") {
                "CVX"
            } else {
                return None;
            }
        }
    })
}

/// Japanese source systems that have a name worth normalizing (MEDIS 病名交換用コード, レセ電).
pub fn source_system_name(system: &str) -> String {
    let u = system.trim();
    match u.to_ascii_uppercase().as_str() {
        "MDCDX2" | "MDCDX" => "MEDIS-DC".to_string(),
        _ if u.contains("master-disease-keyNumber") || u.ends_with("1.2.392.200119.4.101.6") => {
            "MEDIS-DC".to_string()
        }
        _ if u.contains("master-disease-modKeyNumber") => "MEDIS-DC-MOD".to_string(),
        _ => u.to_string(),
    }
}

/// The prefecture (都道府県) an address starts with; only the prefecture enters the clinical
/// store (finer address is identity). Addresses without one (「静岡市…」) give None.
pub fn prefecture_of(address: &str) -> Option<String> {
    let a: String = address.nfkc().filter(|c| !c.is_whitespace()).collect();
    kiban_model::geo::PREFECTURES
        .iter()
        .find(|p| a.starts_with(**p))
        .map(|p| p.to_string())
}

/// Trims and turns an empty string into None.
pub fn opt(s: impl AsRef<str>) -> Option<String> {
    let t = s.as_ref().trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_every_spelling() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd);
        assert_eq!(parse_date("20110701103045"), d(2011, 7, 1));
        assert_eq!(parse_date("20111220224447.3399"), d(2011, 12, 20));
        assert_eq!(parse_date("2022-06-09"), d(2022, 6, 9));
        assert_eq!(parse_date("1976-01-19T22:58:16-05:00"), d(1976, 1, 19));
        assert_eq!(parse_date("2022-05"), d(2022, 5, 1));
        assert_eq!(parse_date("2018"), d(2018, 1, 1));
        assert_eq!(parse_date("20111399"), None);
        assert_eq!(parse_date("S45.07.04"), d(1970, 7, 4));
        assert_eq!(parse_date("H18.1.2"), d(2006, 1, 2));
        assert_eq!(parse_date("平成31年5月1日"), None);
        assert_eq!(parse_date("abc"), None);
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn days_need_the_day() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd);
        assert_eq!(parse_day("20091201"), d(2009, 12, 1));
        assert_eq!(parse_day("20091201120000+0900"), d(2009, 12, 1));
        assert_eq!(parse_day("2024-04-01T00:00:00+09:00"), d(2024, 4, 1));
        assert_eq!(parse_day("2024-04"), None, "month only");
        assert_eq!(parse_day("200912"), None, "month only");
        assert_eq!(parse_day("2018"), None, "year only");
        assert_eq!(parse_day("20090231"), None, "no such day");
        assert_eq!(parse_day(""), None);
    }

    #[test]
    fn numbers_and_ranges() {
        assert_eq!(parse_number("7.2"), Some(7.2));
        assert_eq!(parse_number("１２．５"), Some(12.5));
        assert_eq!(parse_number("<0.5"), None);
        assert_eq!(parse_range("6.70-8.3"), (Some(6.7), Some(8.3)));
        assert_eq!(parse_range("-1.0-2"), (Some(-1.0), Some(2.0)));
        assert_eq!(parse_range("3.7～5.5"), (Some(3.7), Some(5.5)));
        assert_eq!(parse_range(""), (None, None));
        assert_eq!(parse_range("<85"), (None, Some(85.0)));
        assert_eq!(parse_range("≦130"), (None, Some(130.0)));
        assert_eq!(parse_range(">40"), (Some(40.0), None));
    }

    #[test]
    fn prefecture_from_address() {
        assert_eq!(
            prefecture_of("静岡県静岡市登呂１−３−５").as_deref(),
            Some("静岡県")
        );
        assert_eq!(prefecture_of("静岡市駿河区"), None);
    }

    #[test]
    fn code_systems() {
        assert_eq!(standard_system("I10"), Some("ICD10"));
        assert_eq!(standard_system("HOT9"), Some("HOT"));
        assert_eq!(standard_system("JC10"), Some("JLAC10"));
        assert_eq!(standard_system("http://snomed.info/sct"), Some("SNOMED"));
        assert_eq!(standard_system("http://loinc.org"), Some("LOINC"));
        assert_eq!(
            standard_system("urn:oid:1.2.392.200119.6.1005"),
            Some("JLAC10")
        );
        assert_eq!(standard_system("MDCDX2"), None);
        assert_eq!(source_system_name("MDCDX2"), "MEDIS-DC");
    }
}
