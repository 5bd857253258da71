//! DPC 入院EF統合ファイル (the E file 診療明細 and F file 行為明細 merged; layout of 31
//! tab-separated columns EF-1 … EF-31, one file per month).
//!
//! Encoding: Shift_JIS (CP932) as the spec says, or UTF-8 as converted exports and the
//! published samples are — decided per file from the first non-ASCII line (valid UTF-8 →
//! UTF-8, else CP932). LF or CRLF. The title row (`施設コード\tデータ識別番号…`) is optional.
//! The file is streamed line by line; only the admission being assembled is held in memory.
//!
//! The unit is **one admission of one patient**: consecutive rows with the same データ識別番号
//! (EF-2, the patient ID) and 入院年月日 (EF-4). It becomes one [`SourceFacts`]:
//! * one visit keyed `I{入院年月日}` (inpatient, or outpatient when 入外区分 EF-30 is `1`),
//!   from 入院年月日 to 退院年月日 (`00000000`, still in hospital, → no end), department
//!   診療科区分 (EF-26). If the same admission's rows come back later in the file (unsorted
//!   export) they form another unit without repeating the visit.
//! * F rows (行為明細番号 EF-7 ≥ `001`), dated 実施年月日 (EF-24), by the first digit of the
//!   レセプト電算処理システム用コード (EF-9): `1` 診療行為 → procedure (解釈番号 EF-10 such as
//!   `K7212` as `code`, system `点数表区分番号`), `6` 医薬品 → drug (使用量 EF-12, kind from the
//!   データ区分), `7` 特定器材 → observation, `8` コメント → counted as ignored. Without a
//!   usable code the データ区分 (EF-5) decides: 21–33 drug, otherwise procedure. データ区分 97
//!   (食事療養) is billing and counted as ignored.
//! * E rows (行為明細番号 `000`) summarize their F rows and are counted as ignored, so that
//!   nothing is counted twice.
//! * identity: the patient ID and the 保険者番号 (EF-22) — EF files carry no name or birth date.
//!
//! A row whose key (EF-2, EF-4) is unusable is quarantined alone with its line; any other
//! malformed field quarantines its admission whole, naming line and column — except a date the
//! admission can do without (退院年月日 EF-3, a row's 実施年月日 EF-24) that is not a date: a
//! field-level [`QuarantineCode::UnreadableDate`] entry, the discharge left empty or that one
//! row left out, and the admission goes on.

use std::collections::HashSet;
use std::io::{self, BufRead};

use chrono::NaiveDate;
use kiban_model::date::DateError;
use kiban_model::{
    Drug, Fact, Identity, ObservationFact, Procedure, Provenance, SourceFacts, Visit, VisitType,
};

use crate::uke::{Decoder, Lines, MAX_LINE, SYSTEM_DEVICE, SYSTEM_DRUG, SYSTEM_PROCEDURE};
use crate::util::{opt, parse_number};
use crate::{Emitter, FileSummary, Item, QuarantineCode, Quarantined};

/// Column names (EF-1 … EF-31) for quarantine reasons.
const COLUMNS: [&str; 31] = [
    "施設コード",
    "データ識別番号",
    "退院年月日",
    "入院年月日",
    "データ区分",
    "順序番号",
    "行為明細番号",
    "病院点数マスタコード",
    "レセプト電算処理システム用コード",
    "解釈番号",
    "診療明細名称",
    "使用量",
    "基準単位",
    "明細点数・金額",
    "円・点区分",
    "出来高実績点数",
    "行為明細区分情報",
    "行為点数",
    "行為薬剤料",
    "行為材料料",
    "行為回数",
    "保険者番号",
    "レセプト種別コード",
    "実施年月日",
    "レセプト科区分",
    "診療科区分",
    "医師コード",
    "病棟コード",
    "病棟区分",
    "入外区分",
    "施設タイプ",
];

/// The column name of 0-based index `i`, as `EF-24 実施年月日`.
fn col(i: usize) -> String {
    format!("EF-{} {}", i + 1, COLUMNS.get(i).copied().unwrap_or("?"))
}

/// DPC EF by name (`EF*.txt`, any case, with a tab in the first line), by its title row, or by
/// shape (≥ 30 columns, a 9-digit 施設コード and a 10-digit データ識別番号).
pub fn looks_like_dpc(lower_name: &str, head: &[u8]) -> bool {
    let body = head.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(head);
    let first = body.split(|b| *b == b'\n').next().unwrap_or(&[]);
    if !first.contains(&b'\t') {
        return false;
    }
    if lower_name.starts_with("ef") && lower_name.ends_with(".txt") {
        return true;
    }
    let title_utf8 = "施設コード\t".as_bytes();
    let (title_sjis, _, _) = encoding_rs::SHIFT_JIS.encode("施設コード\t");
    if first.starts_with(title_utf8) || first.starts_with(&title_sjis) {
        return true;
    }
    let cols: Vec<&[u8]> = first.split(|b| *b == b'\t').collect();
    let all_digits = |c: &[u8], n: usize| c.len() == n && c.iter().all(u8::is_ascii_digit);
    cols.len() >= 30 && all_digits(cols[0], 9) && all_digits(cols[1], 10)
}

/// Reads a DPC EF file from bytes (the fuzzed entry point; file name `EF.txt`, empty handler
/// code). Never panics.
pub fn parse_dpc(bytes: &[u8]) -> (Vec<Item>, FileSummary) {
    let mut items = Vec::new();
    let summary = read_dpc(bytes, "EF.txt", "", &mut |i| items.push(i)).unwrap_or_default();
    (items, summary)
}

/// Streams a DPC EF file into `sink`, one admission at a time. Errors only on I/O.
pub fn read_dpc<R: BufRead>(
    input: R,
    file: &str,
    handler_code: &str,
    sink: &mut dyn FnMut(Item),
) -> io::Result<FileSummary> {
    let mut em = Emitter {
        sink,
        summary: FileSummary::default(),
    };
    read_dpc_into(input, file, handler_code, &mut em)?;
    Ok(em.summary)
}

struct Row {
    line: usize,
    c: Vec<String>,
}

impl Row {
    fn get(&self, i: usize) -> &str {
        self.c.get(i).map(String::as_str).unwrap_or("")
    }
}

struct Admission {
    pid: String,
    admitted: NaiveDate,
    rows: Vec<Row>,
    /// First line that could not be read (too long), which quarantines the admission.
    broken: Option<usize>,
}

pub(crate) fn read_dpc_into<R: BufRead>(
    input: R,
    file: &str,
    handler_code: &str,
    em: &mut Emitter<'_>,
) -> io::Result<()> {
    let mut lines = Lines::new(input, false);
    let mut dec = Decoder::default();
    let mut cur: Option<Admission> = None;
    let mut seen: HashSet<(String, NaiveDate)> = HashSet::new();
    let mut any_line = false;
    let line_q = |em: &mut Emitter<'_>,
                  line: usize,
                  field: Option<&str>,
                  code: QuarantineCode,
                  reason: &str| {
        em.summary.units += 1;
        em.quarantine(file, format!("line {line}"), field, code, reason);
    };
    while let Some(raw) = lines.next_line()? {
        any_line = true;
        if raw.too_long {
            match cur.as_mut() {
                Some(a) if a.broken.is_none() => a.broken = Some(raw.no),
                Some(_) => {}
                None => line_q(
                    em,
                    raw.no,
                    None,
                    QuarantineCode::TooLarge,
                    &format!("line longer than {MAX_LINE} bytes"),
                ),
            }
            continue;
        }
        if raw.bytes.iter().all(|b| b.is_ascii_whitespace()) {
            em.summary.ignore("empty line");
            continue;
        }
        let (text, errors) = dec.decode(&raw.bytes);
        em.summary.decode_errors += errors;
        if raw.no == 1 && text.trim_start().starts_with("施設コード") {
            em.summary.ignore("title row");
            continue;
        }
        let c: Vec<String> = text.split('\t').map(|s| s.trim().to_string()).collect();
        let row = Row { line: raw.no, c };
        if row.c.len() < 4 {
            line_q(
                em,
                raw.no,
                None,
                QuarantineCode::Parse,
                &format!(
                    "not an EF row: {} tab-separated column(s), 30 or 31 expected",
                    row.c.len()
                ),
            );
            continue;
        }
        let pid = row.get(1).to_string();
        if pid.is_empty() {
            line_q(
                em,
                raw.no,
                Some(&col(1)),
                QuarantineCode::MissingField,
                "empty: the row has no patient",
            );
            continue;
        }
        let Ok(admitted) = ymd(row.get(3)) else {
            line_q(
                em,
                raw.no,
                Some(&col(3)),
                QuarantineCode::InvalidValue,
                "must be a date YYYYMMDD: the row belongs to no admission",
            );
            continue;
        };
        let same = cur
            .as_ref()
            .is_some_and(|a| a.pid == pid && a.admitted == admitted);
        if !same {
            if let Some(a) = cur.take() {
                finish(a, file, handler_code, &mut seen, em);
            }
            cur = Some(Admission {
                pid,
                admitted,
                rows: Vec::new(),
                broken: None,
            });
        }
        if let Some(a) = cur.as_mut() {
            a.rows.push(row);
        }
    }
    if let Some(a) = cur.take() {
        finish(a, file, handler_code, &mut seen, em);
    }
    if !any_line {
        em.summary.units += 1;
        em.quarantine(
            file,
            "file",
            None,
            QuarantineCode::Empty,
            "empty file: no EF rows",
        );
    }
    Ok(())
}

/// Why an EF date field is not one, for a reason text.
fn why(e: DateError) -> String {
    match e {
        DateError::Empty | DateError::Unrecognized => "must be a date YYYYMMDD".into(),
        e => e.to_string(),
    }
}

/// An EF date: `YYYYMMDD` only, read by kiban's one date parser ([`kiban_model::date`]).
fn ymd(s: &str) -> Result<NaiveDate, DateError> {
    let s = s.trim();
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(if s.is_empty() {
            DateError::Empty
        } else {
            DateError::Unrecognized
        });
    }
    kiban_model::date::parse_day(s)
}

fn finish(
    a: Admission,
    file: &str,
    handler: &str,
    seen: &mut HashSet<(String, NaiveDate)>,
    em: &mut Emitter<'_>,
) {
    em.summary.units += 1;
    let first_visit = seen.insert((a.pid.clone(), a.admitted));
    let mut flags = Vec::new();
    match build(&a, file, handler, first_visit, &mut em.summary, &mut flags) {
        Ok(sf) => {
            for f in flags {
                em.emit(Item::Quarantine(f));
            }
            em.emit(Item::Facts(sf))
        }
        Err(q) => em.emit(Item::Quarantine(q)),
    }
}

fn drug_kind(data_kubun: &str) -> &'static str {
    match data_kubun {
        "21" | "22" | "23" | "24" | "25" | "26" | "27" | "28" => "prescription",
        "31" | "32" | "33" => "injection",
        _ => "administration",
    }
}

enum Kind {
    Procedure,
    Drug,
    Device,
}

fn build(
    a: &Admission,
    file: &str,
    handler: &str,
    first_visit: bool,
    summary: &mut FileSummary,
    flags: &mut Vec<Quarantined>,
) -> Result<SourceFacts, Quarantined> {
    let q =
        |line: usize, field: Option<String>, code: QuarantineCode, reason: String| Quarantined {
            file: file.to_string(),
            location: format!(
                "line {line} (admission starting at line {})",
                a.rows.first().map_or(line, |r| r.line)
            ),
            field,
            code,
            reason,
        };
    if let Some(line) = a.broken {
        return Err(q(
            line,
            None,
            QuarantineCode::TooLarge,
            format!("line longer than {MAX_LINE} bytes"),
        ));
    }
    let prov = |line: usize| Provenance {
        handler_code: handler.to_string(),
        source_file: file.to_string(),
        source_record: format!("line {line}"),
    };
    let visit_id = format!("I{}", a.admitted.format("%Y%m%d"));
    let mut facts: Vec<(Fact, Provenance)> = Vec::new();
    let mut discharged: Option<NaiveDate> = None;
    let mut department: Option<String> = None;
    let mut outpatient = false;
    let mut insurer: Option<String> = None;
    for r in &a.rows {
        if r.c.len() < 30 {
            return Err(q(
                r.line,
                None,
                QuarantineCode::Parse,
                format!("{} tab-separated columns, 30 or 31 expected", r.c.len()),
            ));
        }
        match r.get(2) {
            "" | "00000000" => {}
            s => match ymd(s) {
                Ok(d) => discharged = Some(d),
                // The stay goes on without its end: a field-level entry, not the admission.
                Err(e) => flags.push(q(
                    r.line,
                    Some(col(2)),
                    QuarantineCode::UnreadableDate,
                    format!(
                        "{} (or 00000000); the discharge is left empty (the admission was accepted)",
                        why(e)
                    ),
                )),
            },
        }
        if department.is_none() {
            department = opt(r.get(25));
        }
        if insurer.is_none() {
            insurer = opt(r.get(21));
        }
        if r.get(29) == "1" {
            outpatient = true;
        }
        let detail = r.get(6);
        if detail.len() != 3 || !detail.bytes().all(|b| b.is_ascii_digit()) {
            return Err(q(
                r.line,
                Some(col(6)),
                QuarantineCode::InvalidValue,
                "must be 3 digits (000–999)".into(),
            ));
        }
        let date = ymd(r.get(23));
        let amount = match r.get(11) {
            "" => None,
            s => Some(parse_number(s).ok_or_else(|| {
                q(
                    r.line,
                    Some(col(11)),
                    QuarantineCode::InvalidValue,
                    "not a number".into(),
                )
            })?),
        };
        let times = match r.get(20) {
            "" => None,
            s => Some(parse_number(s).ok_or_else(|| {
                q(
                    r.line,
                    Some(col(20)),
                    QuarantineCode::InvalidValue,
                    "not a number".into(),
                )
            })?),
        };
        if detail == "000" {
            summary.ignore("EF E-file row (行為明細番号 000): summarized by its F rows");
            continue;
        }
        let kubun = r.get(4);
        if kubun == "97" {
            summary.ignore("EF row of データ区分 97 (食事療養): billing, not read");
            continue;
        }
        let code = r.get(8);
        let coded = code.len() == 9 && code.bytes().all(|b| b.is_ascii_digit());
        let kind = match code.as_bytes().first() {
            Some(b'1') if coded => Kind::Procedure,
            Some(b'6') if coded => Kind::Drug,
            Some(b'7') if coded => Kind::Device,
            Some(b'8') if coded => {
                summary.ignore("EF comment row (code 8…): not read");
                continue;
            }
            _ => match kubun {
                "21" | "22" | "23" | "24" | "25" | "26" | "27" | "28" | "31" | "32" | "33" => {
                    Kind::Drug
                }
                _ => Kind::Procedure,
            },
        };
        let source_code = coded.then(|| code.to_string());
        let name = opt(r.get(10));
        if source_code.is_none() && name.is_none() {
            summary.ignore("EF row without code or name: not read");
            continue;
        }
        let date = match date {
            Ok(d) => d,
            Err(e) => {
                // This row's fact has no day: it is left out, the admission goes on.
                flags.push(q(
                    r.line,
                    Some(col(23)),
                    QuarantineCode::UnreadableDate,
                    format!(
                        "{}; this row is left out (the admission was accepted)",
                        why(e)
                    ),
                ));
                continue;
            }
        };
        let fact = match kind {
            Kind::Procedure => Fact::Procedure(Procedure {
                source_visit_id: Some(visit_id.clone()),
                date,
                code: opt(r.get(9)),
                code_system: opt(r.get(9)).map(|_| "点数表区分番号".to_string()),
                source_code,
                source_system: Some(SYSTEM_PROCEDURE.into()),
                source_name: name,
                quantity: times,
            }),
            Kind::Drug => Fact::Drug(Drug {
                source_visit_id: Some(visit_id.clone()),
                start_date: date,
                end_date: None,
                code: None,
                code_system: None,
                source_code,
                source_system: Some(SYSTEM_DRUG.into()),
                source_name: name,
                quantity: amount,
                unit: opt(r.get(12)).filter(|u| u != "000"),
                days_supply: None,
                route: None,
                kind: Some(drug_kind(kubun).into()),
            }),
            Kind::Device => Fact::Observation(ObservationFact {
                source_visit_id: Some(visit_id.clone()),
                date,
                code: None,
                code_system: None,
                source_code,
                source_system: Some(SYSTEM_DEVICE.into()),
                source_name: name,
                value_number: amount,
                value_text: None,
                unit: opt(r.get(12)).filter(|u| u != "000"),
            }),
        };
        facts.push((fact, prov(r.line)));
    }
    if first_visit {
        let line = a.rows.first().map_or(0, |r| r.line);
        facts.insert(
            0,
            (
                Fact::Visit(Visit {
                    source_visit_id: Some(visit_id.clone()),
                    visit_type: if outpatient {
                        VisitType::Outpatient
                    } else {
                        VisitType::Inpatient
                    },
                    start_date: a.admitted,
                    end_date: discharged,
                    department,
                }),
                prov(line),
            ),
        );
    } else {
        summary.ignore("EF rows of an admission met earlier in the file: visit not repeated");
    }
    let mut id = Identity::new(a.pid.clone());
    id.insurer_number = insurer;
    Ok(SourceFacts {
        patient_id: a.pid.clone(),
        identity: Some(id),
        facts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_by_name_title_and_shape() {
        assert!(looks_like_dpc("efn_123_2407.txt", b"a\tb\n"));
        assert!(!looks_like_dpc("efn_123_2407.txt", b"no tabs here\n"));
        assert!(looks_like_dpc(
            "x.txt",
            "施設コード\tデータ識別番号\n".as_bytes()
        ));
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode("施設コード\tデータ識別番号\n");
        assert!(looks_like_dpc("x.dat", &sjis));
        let shape = format!("000000000\t0000000001{}\n", "\t".repeat(29));
        assert!(looks_like_dpc("x.dat", shape.as_bytes()));
        assert!(!looks_like_dpc("x.dat", b"a\tb\tc\n"));
    }
}
