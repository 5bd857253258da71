//! レセプト電算処理システム 医科 claims (`RECEIPTC.UKE`), per 「オンライン又は光ディスク等による請求に
//! 係る記録条件仕様（医科用）」 (令和4年4月版) and the older layouts still met in the field.
//!
//! The file is Shift_JIS (CP932; a file that turns out to be UTF-8 is read as UTF-8), one
//! comma-separated record per CRLF line, ended by the EOF byte 0x1A. It is read **line by
//! line**: only the receipt being assembled is held in memory, so a 100 MB file costs one
//! receipt of memory (R-STD-1, performance).
//!
//! The unit is **one receipt**: an `RE` record and every record after it up to the next `RE`
//! or `GO`. A receipt becomes one [`SourceFacts`]:
//! * identity from RE (氏名, カタカナ氏名, 男女区分, 生年月日, カルテ番号) and HO (保険者番号,
//!   記号, 番号) plus 枝番 from SN. `patient_id` is the カルテ番号; when a receipt has none, a
//!   stable key is built from HO 保険者番号 + 記号 + 番号 + 生年月日 + 男女区分 (or KO 負担者番号 +
//!   受給者番号 for 公費単独 receipts), and every fact's provenance says so.
//! * visits: an inpatient receipt (レセプト種別 ending in an odd digit) is one inpatient visit
//!   keyed by its 入院年月日 (`I{YYYYMMDD}`, so the monthly receipts of one stay carry the same
//!   visit ID); an outpatient receipt is one visit per 受診日 — the JD days when JD is present,
//!   else the union of the 算定日 of SI/IY/TO — keyed `O{YYYYMMDD}`; without any day, one
//!   visit on the first day of 診療年月.
//! * SY → condition (傷病名コード as `source_code`, system `レセ電傷病名`, ICD-10 left empty —
//!   no mapping table ships with kiban; 主傷病 `01` → primary; 修飾語 `8002` 「の疑い」 →
//!   suspected; the 修飾語 codes are kept in `source_name` as `[修飾語 xxxx+yyyy]`; 転帰 →
//!   outcome).
//! * SI → procedure, IY → drug, TO → observation (特定器材), one fact per 算定日 (day columns
//!   1日〜31日, the count of that day as quantity/回数), or one fact on the first day of
//!   診療年月 when the record has no day flags. A record whose 診療識別 is omitted inherits
//!   the previous one (the spec's continuation rule).
//! * SJ → note (症状詳記; continuation records without 区分 are appended).
//! * KO, MF, GR, CO, and records of an organ donor (TI/TR/TS and what follows them) are
//!   counted in [`crate::FileSummary::ignored`], never dropped silently.
//!
//! Dates: 西暦 `YYYYMMDD` / `YYYYMM` as the current spec writes them, and 和暦 `GYYMMDD` /
//! `GYYMM` (元号 1 明治, 2 大正, 3 昭和, 4 平成, 5 令和) as older layouts do; see
//! [`parse_uke_date`], which is kiban's one date parser ([`kiban_model::date`]).
//! A date the receipt can do without (生年月日, 入院年月日, a 傷病名's 診療開始日) that cannot
//! be read is a field-level [`QuarantineCode::UnreadableDate`] entry and the receipt goes on.
//!
//! A receipt whose RE is malformed (or any record of it holds a malformed mandatory field) is
//! quarantined whole with its line and field; the receipts around it are unaffected. Records
//! outside any receipt, a missing IR or GO, and a GO whose 総件数 disagrees with the file are
//! reported as quarantine items of their own.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead};

use chrono::{Datelike, NaiveDate};
use encoding_rs::SHIFT_JIS;
use kiban_model::{
    Condition, Drug, Fact, Identity, Note, ObservationFact, Procedure, Provenance, Sex,
    SourceFacts, Visit, VisitType,
};
use unicode_normalization::UnicodeNormalization;

use crate::util::{iso, parse_number};
use crate::{Emitter, FileSummary, Item, QuarantineCode, Quarantined};

/// Longest line kept (the longest UKE record, SJ, is about 2.5 KB): longer lines are
/// quarantined without being held in memory.
pub const MAX_LINE: usize = 1 << 20;

/// `source_system` of the codes a receipt carries.
pub const SYSTEM_DISEASE: &str = "レセ電傷病名";
pub const SYSTEM_PROCEDURE: &str = "レセ電診療行為";
pub const SYSTEM_DRUG: &str = "レセ電医薬品";
pub const SYSTEM_DEVICE: &str = "レセ電特定器材";

// ---------------------------------------------------------------------------------------------
// Streaming lines and decoding (shared with the DPC reader)

/// One physical line: its 1-based number, its bytes without CR/LF, and whether it was longer
/// than [`MAX_LINE`] (then `bytes` holds only the start).
pub(crate) struct RawLine {
    pub no: usize,
    pub bytes: Vec<u8>,
    pub too_long: bool,
}

/// Splits a byte stream into lines (LF or CRLF) without reading more than one line ahead.
/// With `stop_at_eof_byte`, the byte 0x1A ends the stream (the UKE EOF code); bytes after it
/// are reported through [`Lines::after_eof`].
pub(crate) struct Lines<R> {
    inner: R,
    no: usize,
    done: bool,
    stop_at_eof_byte: bool,
    /// Non-whitespace bytes were found after the EOF code.
    pub after_eof: bool,
}

impl<R: BufRead> Lines<R> {
    pub fn new(inner: R, stop_at_eof_byte: bool) -> Self {
        Lines {
            inner,
            no: 0,
            done: false,
            stop_at_eof_byte,
            after_eof: false,
        }
    }

    pub fn next_line(&mut self) -> io::Result<Option<RawLine>> {
        if self.done {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        let mut too_long = false;
        let mut any = false;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                self.done = true;
                break;
            }
            any = true;
            // One scan for the first newline or EOF code (scanning the buffer for each
            // separately would be quadratic on in-memory input).
            let stop = self.stop_at_eof_byte;
            let hit = avail
                .iter()
                .position(|b| *b == b'\n' || (stop && *b == 0x1A));
            let (end, consumed, nl, eof) = match hit {
                Some(i) if avail.get(i) == Some(&b'\n') => (i, i + 1, true, false),
                Some(i) => (i, i + 1, false, true),
                None => (avail.len(), avail.len(), false, false),
            };
            let room = MAX_LINE.saturating_sub(bytes.len());
            if end > room {
                too_long = true;
            }
            bytes.extend_from_slice(&avail[..end.min(room)]);
            let finished_line = nl || eof;
            self.inner.consume(consumed);
            if eof {
                self.done = true;
                self.scan_after_eof()?;
                break;
            }
            if finished_line {
                break;
            }
        }
        if !any || (self.done && bytes.is_empty() && !too_long) {
            // End of input (or an empty remainder after the last newline / EOF code).
            if !any {
                return Ok(None);
            }
            if bytes.is_empty() {
                return Ok(None);
            }
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        self.no += 1;
        Ok(Some(RawLine {
            no: self.no,
            bytes,
            too_long,
        }))
    }

    fn scan_after_eof(&mut self) -> io::Result<()> {
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                return Ok(());
            }
            if avail
                .iter()
                .any(|b| !b.is_ascii_whitespace() && *b != 0x1A && *b != 0)
            {
                self.after_eof = true;
            }
            let n = avail.len();
            self.inner.consume(n);
        }
    }
}

/// Decides the text encoding from the first non-ASCII line: valid UTF-8 → UTF-8 for the file,
/// otherwise Shift_JIS (CP932; encoding_rs's `SHIFT_JIS` is the WHATWG/Windows-31J table).
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    utf8: Option<bool>,
}

impl Decoder {
    /// The decoded text and the number of replaced (undecodable) characters.
    pub fn decode(&mut self, bytes: &[u8]) -> (String, usize) {
        let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(bytes);
        if bytes.is_ascii() {
            return (String::from_utf8_lossy(bytes).into_owned(), 0);
        }
        let utf8 = *self
            .utf8
            .get_or_insert_with(|| std::str::from_utf8(bytes).is_ok());
        if utf8 && let Ok(s) = std::str::from_utf8(bytes) {
            return (s.to_string(), 0);
        }
        let (text, had_errors) = SHIFT_JIS.decode_without_bom_handling(bytes);
        let errors = if had_errors {
            text.chars().filter(|c| *c == '\u{FFFD}').count()
        } else {
            0
        };
        (text.into_owned(), errors)
    }
}

// ---------------------------------------------------------------------------------------------
// Dates

fn digits(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// A UKE date: 西暦 `YYYYMMDD` (current spec) or 和暦 `GYYMMDD` (元号 code 1 明治, 2 大正,
/// 3 昭和, 4 平成, 5 令和; 元年 is `01`), read by kiban's one date parser
/// ([`kiban_model::date::parse_uke_day`]): a 和暦 date outside its era is not a date
/// (`5010430` is before 令和 began; `4310501`, 平成31年5月1日, is 令和元年5月1日).
pub fn parse_uke_date(s: &str) -> Option<NaiveDate> {
    kiban_model::date::parse_uke_day(s).ok()
}

/// A UKE year-month (診療年月, 請求年月): `YYYYMM` or 和暦 `GYYMM`, as the first day of the
/// month. A 和暦 month outside its era is rejected.
pub fn parse_uke_month(s: &str) -> Option<NaiveDate> {
    kiban_model::date::parse_uke_month(s).ok()
}

// ---------------------------------------------------------------------------------------------
// Detection

/// UKE by name (`RECEIPTC.UKE`, `*.UKE`) or content (the first record is `IR,`, after an
/// optional UTF-8 BOM).
pub fn looks_like_uke(lower_name: &str, head: &[u8]) -> bool {
    if lower_name.ends_with(".uke") {
        return true;
    }
    let body = head.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(head);
    body.starts_with(b"IR,")
}

// ---------------------------------------------------------------------------------------------
// Reading

/// One record: line number, record ID, fields (`f[0]` is the ID), trimmed.
#[derive(Debug)]
struct Rec {
    line: usize,
    f: Vec<String>,
}

impl Rec {
    fn get(&self, i: usize) -> &str {
        self.f.get(i).map(String::as_str).unwrap_or("")
    }
    fn id(&self) -> &str {
        self.get(0)
    }
}

#[derive(Debug)]
struct Receipt {
    /// 1-based ordinal in the file.
    no: usize,
    re: Rec,
    body: Vec<Rec>,
    /// The first problem met while collecting (a line that is not a record, a line too long).
    /// (line, field, code, reason) of the first malformed line of the receipt.
    broken: Option<(usize, String, QuarantineCode, String)>,
}

/// Reads a UKE file from bytes into items (the fuzzed entry point; file name `RECEIPTC.UKE`,
/// empty handler code). Never panics.
pub fn parse_uke(bytes: &[u8]) -> (Vec<Item>, FileSummary) {
    let mut items = Vec::new();
    let summary = read_uke(bytes, "RECEIPTC.UKE", "", &mut |i| items.push(i)).unwrap_or_default();
    (items, summary)
}

/// Streams a UKE file into `sink`, one receipt at a time. Errors only on I/O.
pub fn read_uke<R: BufRead>(
    input: R,
    file: &str,
    handler_code: &str,
    sink: &mut dyn FnMut(Item),
) -> io::Result<FileSummary> {
    let mut em = Emitter {
        sink,
        summary: FileSummary::default(),
    };
    read_uke_into(input, file, handler_code, &mut em)?;
    Ok(em.summary)
}

struct State<'a> {
    file: &'a str,
    handler: &'a str,
    cur: Option<Receipt>,
    receipts: usize,
    /// First line and number of records found outside any receipt, not yet reported.
    stray: Option<(usize, usize, usize)>,
    seen_ir: bool,
    ir_volume: Option<String>,
    seen_go: bool,
    last_line: usize,
}

impl State<'_> {
    fn add_stray(&mut self, line: usize) {
        match &mut self.stray {
            Some((_, last, n)) => {
                *last = line;
                *n += 1;
            }
            None => self.stray = Some((line, line, 1)),
        }
    }

    fn flush_stray(&mut self, em: &mut Emitter<'_>) {
        if let Some((first, last, n)) = self.stray.take() {
            em.summary.units += 1;
            let location = if first == last {
                format!("line {first}")
            } else {
                format!("lines {first}-{last}")
            };
            em.quarantine(
                self.file,
                location,
                None,
                QuarantineCode::Parse,
                format!(
                    "{n} line(s) outside any receipt (before the first RE or after GO) that are not IR/GO records"
                ),
            );
        }
    }

    fn finish(&mut self, em: &mut Emitter<'_>) {
        if let Some(r) = self.cur.take() {
            em.summary.units += 1;
            let mut flags = Vec::new();
            match build_receipt(&r, self.file, self.handler, &mut em.summary, &mut flags) {
                Ok(sf) => {
                    for f in flags {
                        em.emit(Item::Quarantine(f));
                    }
                    em.emit(Item::Facts(sf))
                }
                Err(q) => em.emit(Item::Quarantine(q)),
            }
        }
    }
}

const RECEIPT_RECORDS: [&str; 13] = [
    "HO", "KO", "SN", "JD", "MF", "GR", "SY", "SI", "IY", "TO", "CO", "SJ", "RE",
];

pub(crate) fn read_uke_into<R: BufRead>(
    input: R,
    file: &str,
    handler_code: &str,
    em: &mut Emitter<'_>,
) -> io::Result<()> {
    let mut lines = Lines::new(input, true);
    let mut dec = Decoder::default();
    let mut st = State {
        file,
        handler: handler_code,
        cur: None,
        receipts: 0,
        stray: None,
        seen_ir: false,
        ir_volume: None,
        seen_go: false,
        last_line: 0,
    };
    let mut first_record = true;
    while let Some(raw) = lines.next_line()? {
        st.last_line = raw.no;
        if raw.too_long {
            match &mut st.cur {
                Some(r) if r.broken.is_none() => {
                    r.broken = Some((
                        raw.no,
                        "record".into(),
                        QuarantineCode::TooLarge,
                        format!("line longer than {MAX_LINE} bytes"),
                    ));
                }
                Some(_) => {}
                None => st.add_stray(raw.no),
            }
            first_record = false;
            continue;
        }
        if raw.bytes.iter().all(|b| b.is_ascii_whitespace()) {
            em.summary.ignore("empty line");
            continue;
        }
        let (text, errors) = dec.decode(&raw.bytes);
        em.summary.decode_errors += errors;
        let f: Vec<String> = text.split(',').map(|s| s.trim().to_string()).collect();
        let rec = Rec { line: raw.no, f };
        let id = rec.id().to_string();
        let is_record_id = id.len() == 2 && id.bytes().all(|b| b.is_ascii_uppercase());
        if first_record {
            first_record = false;
            if id != "IR" {
                em.summary.units += 1;
                em.quarantine(
                    file,
                    format!("line {}", raw.no),
                    Some("IR"),
                    QuarantineCode::MissingField,
                    "the file does not start with an IR record (医療機関情報); receipts are still read",
                );
            }
        }
        match id.as_str() {
            "IR" => {
                st.finish(em);
                st.flush_stray(em);
                if st.seen_ir {
                    em.summary
                        .ignore("IR record after the first (multi-volume join)");
                }
                st.seen_ir = true;
                st.ir_volume = Some(rec.get(8).to_string());
            }
            "RE" => {
                st.finish(em);
                st.flush_stray(em);
                st.receipts += 1;
                st.cur = Some(Receipt {
                    no: st.receipts,
                    re: rec,
                    body: Vec::new(),
                    broken: None,
                });
            }
            "GO" => {
                st.finish(em);
                st.flush_stray(em);
                st.seen_go = true;
                check_go(&rec, &st, em);
            }
            _ if st.cur.is_some() && !st.seen_go => {
                if let Some(r) = st.cur.as_mut() {
                    if is_record_id {
                        r.body.push(rec);
                    } else if r.broken.is_none() {
                        r.broken = Some((
                            raw.no,
                            "record ID".into(),
                            QuarantineCode::Parse,
                            "not a UKE record (the line does not start with a 2-letter record ID)"
                                .into(),
                        ));
                    }
                }
            }
            _ => {
                if is_record_id && !RECEIPT_RECORDS.contains(&id.as_str()) && !st.seen_go {
                    em.summary
                        .ignore(format!("UKE record {id} outside a receipt: not read"));
                } else {
                    st.add_stray(raw.no);
                }
            }
        }
    }
    st.finish(em);
    st.flush_stray(em);
    if lines.after_eof {
        em.summary.ignore("bytes after the EOF code 0x1A");
    }
    if st.last_line == 0 {
        em.summary.units += 1;
        em.quarantine(
            file,
            "file",
            None,
            QuarantineCode::Empty,
            "empty file: no UKE records",
        );
    } else if !st.seen_go {
        em.summary.units += 1;
        em.quarantine(
            file,
            format!("line {}", st.last_line),
            Some("GO"),
            QuarantineCode::Truncated,
            "the file ends without a GO record (診療報酬請求書): truncated file?",
        );
    }
    Ok(())
}

/// GO-2 総件数 against the receipts read, for a single-volume file (IR volume `00`, GO `99`):
/// a difference means receipts were lost or added on the way.
fn check_go(go: &Rec, st: &State<'_>, em: &mut Emitter<'_>) {
    let single = st.ir_volume.as_deref() == Some("00") && go.get(3) == "99";
    if !single {
        return;
    }
    if let Ok(total) = go.get(1).parse::<usize>()
        && total != st.receipts
    {
        em.summary.units += 1;
        em.quarantine(
            st.file,
            format!("line {}", go.line),
            Some("GO-2 総件数"),
            QuarantineCode::Inconsistent,
            format!(
                "総件数 says {total} receipts but the file holds {}: truncated or edited file?",
                st.receipts
            ),
        );
    }
}

fn nfkc(s: &str) -> String {
    s.nfkc().collect::<String>().trim().to_string()
}

fn is_kana_only(s: &str) -> bool {
    let n = nfkc(s);
    !n.is_empty()
        && n.chars()
            .all(|c| matches!(c, '\u{30A0}'..='\u{30FF}' | ' ' | '\u{3000}'))
}

/// Day flags of a record: `(day, count)` for days 1..=31 found at `fields[base + day]`.
fn day_flags(
    r: &Rec,
    base: usize,
    month: NaiveDate,
    qual: &str,
) -> Result<Vec<(NaiveDate, u32)>, (usize, String, String)> {
    let mut out = Vec::new();
    for day in 1..=31u32 {
        let v = r.get(base + day as usize);
        if v.is_empty() {
            continue;
        }
        let field = format!("{qual}-{} 算定日 {day}日", base + day as usize + 1);
        let n: u32 = digits(v)
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| (r.line, field.clone(), "not a count of times".to_string()))?;
        if n == 0 {
            continue;
        }
        let date = NaiveDate::from_ymd_opt(month.year(), month.month(), day).ok_or_else(|| {
            (
                r.line,
                field.clone(),
                "this day does not exist in 診療年月".to_string(),
            )
        })?;
        out.push((date, n));
    }
    Ok(out)
}

fn code9(r: &Rec, qual: &str, what: &str) -> Result<String, (usize, String, String)> {
    let c = r.get(3);
    if c.len() == 9 && c.bytes().all(|b| b.is_ascii_digit()) {
        Ok(c.to_string())
    } else {
        Err((
            r.line,
            format!("{qual}-4 {what}"),
            "must be a 9-digit code".into(),
        ))
    }
}

fn opt_number(
    r: &Rec,
    i: usize,
    qual: &str,
    what: &str,
) -> Result<Option<f64>, (usize, String, String)> {
    let v = r.get(i);
    if v.is_empty() {
        return Ok(None);
    }
    parse_number(v).map(Some).ok_or_else(|| {
        (
            r.line,
            format!("{qual}-{} {what}", i + 1),
            "not a number".into(),
        )
    })
}

/// Drug kind from the 診療識別 (別表20): 21–28 投薬, 31–33 注射.
fn drug_kind(shikibetsu: &str) -> &'static str {
    match shikibetsu {
        "21" | "22" | "23" | "24" | "25" | "26" | "27" | "28" => "prescription",
        "31" | "32" | "33" => "injection",
        _ => "administration",
    }
}

/// Builds one receipt, or the quarantine item naming the first malformed line and field.
/// A date that cannot be read and that the receipt can do without (生年月日, 入院年月日, a
/// 傷病名's 診療開始日) is a field-level entry in `flags` ([`QuarantineCode::UnreadableDate`])
/// and the receipt goes on: the birth date is kept as its source text for linkage, the
/// admission is dated by 診療年月, the one condition is left out.
fn build_receipt(
    r: &Receipt,
    file: &str,
    handler: &str,
    summary: &mut FileSummary,
    flags: &mut Vec<Quarantined>,
) -> Result<SourceFacts, Quarantined> {
    let mut flag = |line: usize, field: &str, e: kiban_model::date::DateError, kept: &str| {
        flags.push(Quarantined {
            file: file.to_string(),
            location: format!("line {line} (receipt {})", r.no),
            field: Some(field.to_string()),
            code: QuarantineCode::UnreadableDate,
            reason: format!("{e}; {kept} (the receipt was accepted)"),
        })
    };
    let qc = |(line, field, code, reason): (usize, String, QuarantineCode, String)| Quarantined {
        file: file.to_string(),
        location: format!("line {line} (receipt {})", r.no),
        field: Some(field),
        code,
        reason,
    };
    // Field-level problems of a well-formed record: the value is unusable.
    let q = |(line, field, reason): (usize, String, String)| {
        qc((line, field, QuarantineCode::InvalidValue, reason))
    };
    if let Some(b) = &r.broken {
        return Err(qc(b.clone()));
    }
    let re = &r.re;
    let err = |field: &str, reason: &str| q((re.line, field.to_string(), reason.to_string()));
    if re.f.len() < 7 {
        return Err(qc((
            re.line,
            "RE".to_string(),
            QuarantineCode::Parse,
            format!(
                "RE has {} fields, at least 7 expected (up to 生年月日)",
                re.f.len()
            ),
        )));
    }
    let rtype = re.get(2);
    if rtype.len() != 4 || !rtype.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(
            "RE-3 レセプト種別",
            "must be a 4-digit receipt type code (別表5)",
        ));
    }
    let inpatient = rtype.bytes().last().is_some_and(|b| (b - b'0') % 2 == 1);
    let month = parse_uke_month(re.get(3))
        .ok_or_else(|| err("RE-4 診療年月", "must be YYYYMM (西暦) or GYYMM (和暦)"))?;
    let sex = match re.get(5) {
        "1" => Sex::Male,
        "2" => Sex::Female,
        "" => Sex::Unknown,
        _ => return Err(err("RE-6 男女区分", "must be 1 (男) or 2 (女)")),
    };
    // 生年月日: a value that is not a date is kept as its source text (linkage evidence).
    let mut birth_text = None;
    let birth = match re.get(6) {
        "" => None,
        s => match kiban_model::date::parse_uke_day(s) {
            Ok(d) => Some(d),
            Err(e) => {
                flag(
                    re.line,
                    "RE-7 生年月日",
                    e,
                    "kept as its source text for linkage",
                );
                birth_text = Some(nfkc(s));
                None
            }
        },
    };
    let admission = match re.get(8) {
        "" => None,
        s => match kiban_model::date::parse_uke_day(s) {
            Ok(d) => Some(d),
            Err(e) => {
                flag(
                    re.line,
                    "RE-9 入院年月日",
                    e,
                    "the admission is dated by 診療年月",
                );
                None
            }
        },
    };
    let department = crate::util::opt(re.get(21));

    // Receipt body: find HO/KO/SN/JD, cut off organ-donor records.
    let mut body: Vec<&Rec> = Vec::new();
    let mut donor = false;
    for rec in &r.body {
        if matches!(rec.id(), "TI" | "TR" | "TS") {
            donor = true;
        }
        if donor {
            summary.ignore("臓器提供者 records (TI/TR/TS and what follows): not read");
        } else {
            body.push(rec);
        }
    }
    let ho = body.iter().find(|x| x.id() == "HO");
    let ko = body.iter().find(|x| x.id() == "KO");
    let sn = body.iter().find(|x| x.id() == "SN");

    // Identity and patient ID.
    let karte = nfkc(re.get(13));
    let sex_code = match sex {
        Sex::Male => "1",
        Sex::Female => "2",
        _ => "",
    };
    let birth_s = birth
        .map(iso)
        .or_else(|| birth_text.clone())
        .unwrap_or_default();
    let (patient_id, pid_note) = if !karte.is_empty() {
        (karte, None)
    } else if let Some(ho) = ho.filter(|h| !h.get(1).is_empty() || !h.get(3).is_empty()) {
        (
            format!(
                "HO:{}:{}:{}:{}:{}",
                nfkc(ho.get(1)),
                nfkc(ho.get(2)),
                nfkc(ho.get(3)),
                birth_s,
                sex_code
            ),
            Some("patient_id built from HO 保険者番号+記号+番号+生年月日+男女区分 (no カルテ番号)"),
        )
    } else if let Some(ko) = ko.filter(|k| !k.get(1).is_empty()) {
        (
            format!(
                "KO:{}:{}:{}:{}",
                nfkc(ko.get(1)),
                nfkc(ko.get(2)),
                birth_s,
                sex_code
            ),
            Some(
                "patient_id built from KO 負担者番号+受給者番号+生年月日+男女区分 (no カルテ番号)",
            ),
        )
    } else {
        return Err(err(
            "RE-14 カルテ番号",
            "empty, and no HO or KO record to build a stable patient key from",
        ));
    };
    let mut id = Identity::new(patient_id.clone());
    let name = re.get(4);
    if !name.is_empty() {
        if name.is_ascii() {
            id.name_alpha = Some(name.to_string());
        } else if is_kana_only(name) {
            id.name_kana = Some(nfkc(name));
        } else {
            id.name_kanji = Some(name.to_string());
        }
    }
    if let Some(k) = crate::util::opt(re.get(36)) {
        id.name_kana = Some(nfkc(&k));
    }
    id.sex = sex;
    id.birth_date = birth.map(iso);
    id.birth_date_text = birth_text;
    if let Some(ho) = ho {
        id.insurer_number = crate::util::opt(ho.get(1));
        id.insured_symbol = crate::util::opt(ho.get(2));
        id.insured_number = crate::util::opt(ho.get(3));
    }
    if let Some(sn) = sn {
        id.insured_branch = crate::util::opt(sn.get(6));
    }

    let prov = |line: usize, rec: &str, note: Option<&str>| {
        let mut s = format!("receipt {}, line {line} ({rec})", r.no);
        for n in [note, pid_note].into_iter().flatten() {
            s.push_str("; ");
            s.push_str(n);
        }
        Provenance {
            handler_code: handler.to_string(),
            source_file: file.to_string(),
            source_record: s,
        }
    };

    // Visit days.
    let mut jd_days: BTreeSet<NaiveDate> = BTreeSet::new();
    let mut has_jd = false;
    let mut flagged_days: BTreeSet<NaiveDate> = BTreeSet::new();
    for rec in &body {
        match rec.id() {
            "JD" => {
                has_jd = true;
                for day in 1..=31u32 {
                    if !rec.get(1 + day as usize).is_empty() {
                        let d = NaiveDate::from_ymd_opt(month.year(), month.month(), day)
                            .ok_or_else(|| {
                                q((
                                    rec.line,
                                    format!("JD-{} {day}日の情報", day + 2),
                                    "this day does not exist in 診療年月".into(),
                                ))
                            })?;
                        jd_days.insert(d);
                    }
                }
            }
            "SI" | "IY" => {
                for (d, _) in day_flags(rec, 12, month, rec.id()).map_err(q)? {
                    flagged_days.insert(d);
                }
            }
            "TO" => {
                for (d, _) in day_flags(rec, 16, month, "TO").map_err(q)? {
                    flagged_days.insert(d);
                }
            }
            _ => {}
        }
    }
    let visit_days = if has_jd { jd_days } else { flagged_days };

    let mut facts: Vec<(Fact, Provenance)> = Vec::new();
    let ym = month.format("%Y%m").to_string();
    let inpatient_id = format!("I{}", admission.unwrap_or(month).format("%Y%m%d"));
    if inpatient {
        let start = admission
            .or_else(|| visit_days.first().copied())
            .unwrap_or(month);
        facts.push((
            Fact::Visit(Visit {
                source_visit_id: Some(inpatient_id.clone()),
                visit_type: VisitType::Inpatient,
                start_date: start,
                end_date: None,
                department: department.clone(),
            }),
            prov(re.line, "RE", None),
        ));
    } else if visit_days.is_empty() {
        facts.push((
            Fact::Visit(Visit {
                source_visit_id: Some(format!("O{ym}")),
                visit_type: VisitType::Outpatient,
                start_date: month,
                end_date: None,
                department: department.clone(),
            }),
            prov(
                re.line,
                "RE",
                Some("no 受診日 in the receipt: visit dated the first day of 診療年月"),
            ),
        ));
    } else {
        for d in &visit_days {
            facts.push((
                Fact::Visit(Visit {
                    source_visit_id: Some(format!("O{}", d.format("%Y%m%d"))),
                    visit_type: VisitType::Outpatient,
                    start_date: *d,
                    end_date: Some(*d),
                    department: department.clone(),
                }),
                prov(re.line, if has_jd { "RE+JD" } else { "RE" }, None),
            ));
        }
    }
    let visit_of = |d: NaiveDate| -> Option<String> {
        if inpatient {
            Some(inpatient_id.clone())
        } else if visit_days.contains(&d) {
            Some(format!("O{}", d.format("%Y%m%d")))
        } else if visit_days.is_empty() && d == month {
            Some(format!("O{ym}"))
        } else {
            None
        }
    };

    // Body records.
    let no_day = "no 算定日: dated the first day of 診療年月";
    let mut shikibetsu = String::new();
    let mut last_note: Option<usize> = None;
    for rec in &body {
        let id_ = rec.id();
        if matches!(id_, "SI" | "IY" | "TO" | "CO") && !rec.get(1).is_empty() {
            shikibetsu = rec.get(1).to_string();
        }
        if id_ != "SJ" {
            last_note = None;
        }
        match id_ {
            "SY" => {
                let code = rec.get(1);
                if code.len() != 7 || !code.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(q((
                        rec.line,
                        "SY-2 傷病名コード".into(),
                        "must be a 7-digit code".into(),
                    )));
                }
                let start = match kiban_model::date::parse_uke_day(rec.get(2)) {
                    Ok(d) => d,
                    Err(e) => {
                        flag(rec.line, "SY-3 診療開始日", e, "this condition is left out");
                        continue;
                    }
                };
                let outcome = match rec.get(3) {
                    "" => None,
                    "1" => Some("continuing"),
                    "2" => Some("cured"),
                    "3" => Some("died"),
                    "4" => Some("stopped"),
                    _ => {
                        return Err(q((
                            rec.line,
                            "SY-4 転帰区分".into(),
                            "must be 1–4 (別表18)".into(),
                        )));
                    }
                };
                let mods = rec.get(4);
                if mods.len() % 4 != 0 || !mods.is_ascii() {
                    return Err(q((
                        rec.line,
                        "SY-5 修飾語コード".into(),
                        "must be 4-character codes (length a multiple of 4)".into(),
                    )));
                }
                let mods: Vec<&str> = (0..mods.len() / 4)
                    .filter_map(|i| mods.get(i * 4..i * 4 + 4))
                    .collect();
                let mut source_name = crate::util::opt(rec.get(5));
                if !mods.is_empty() {
                    let tag = format!("[修飾語 {}]", mods.join("+"));
                    source_name = Some(match source_name {
                        Some(n) => format!("{n} {tag}"),
                        None => tag,
                    });
                }
                facts.push((
                    Fact::Condition(Condition {
                        source_visit_id: visit_of(start),
                        start_date: start,
                        end_date: None,
                        code: None,
                        code_system: None,
                        source_code: Some(code.to_string()),
                        source_system: Some(SYSTEM_DISEASE.into()),
                        source_name,
                        suspected: mods.contains(&"8002"),
                        primary: rec.get(6) == "01",
                        outcome: outcome.map(str::to_string),
                    }),
                    prov(rec.line, "SY", None),
                ));
            }
            "SI" => {
                let code = code9(rec, "SI", "診療行為コード").map_err(q)?;
                let times = opt_number(rec, 6, "SI", "回数").map_err(q)?;
                let days = day_flags(rec, 12, month, "SI").map_err(q)?;
                let dated: Vec<(NaiveDate, Option<f64>, Option<&str>)> = if days.is_empty() {
                    vec![(month, times, Some(no_day))]
                } else {
                    days.iter()
                        .map(|(d, n)| (*d, Some(f64::from(*n)), None))
                        .collect()
                };
                for (d, n, note) in dated {
                    facts.push((
                        Fact::Procedure(Procedure {
                            source_visit_id: visit_of(d),
                            date: d,
                            code: None,
                            code_system: None,
                            source_code: Some(code.clone()),
                            source_system: Some(SYSTEM_PROCEDURE.into()),
                            source_name: None,
                            quantity: n,
                        }),
                        prov(rec.line, "SI", note),
                    ));
                }
            }
            "IY" => {
                let code = code9(rec, "IY", "医薬品コード").map_err(q)?;
                let amount = opt_number(rec, 4, "IY", "使用量").map_err(q)?;
                let times = opt_number(rec, 6, "IY", "回数").map_err(q)?;
                let days = day_flags(rec, 12, month, "IY").map_err(q)?;
                let kind = drug_kind(&shikibetsu);
                let dated: Vec<(NaiveDate, Option<f64>, Option<&str>)> = if days.is_empty() {
                    vec![(month, times, Some(no_day))]
                } else {
                    days.iter()
                        .map(|(d, n)| (*d, Some(f64::from(*n)), None))
                        .collect()
                };
                for (d, n, note) in dated {
                    // 内服 (21): 回数 is the number of days supplied.
                    let days_supply = if shikibetsu == "21" {
                        n.map(|x| x as i32)
                    } else {
                        None
                    };
                    facts.push((
                        Fact::Drug(Drug {
                            source_visit_id: visit_of(d),
                            start_date: d,
                            end_date: None,
                            code: None,
                            code_system: None,
                            source_code: Some(code.clone()),
                            source_system: Some(SYSTEM_DRUG.into()),
                            source_name: None,
                            quantity: amount,
                            unit: None,
                            days_supply,
                            route: None,
                            kind: Some(kind.into()),
                        }),
                        prov(rec.line, "IY", note),
                    ));
                }
            }
            "TO" => {
                let code = code9(rec, "TO", "特定器材コード").map_err(q)?;
                let amount = opt_number(rec, 4, "TO", "使用量").map_err(q)?;
                let days = day_flags(rec, 16, month, "TO").map_err(q)?;
                let dated: Vec<(NaiveDate, Option<&str>)> = if days.is_empty() {
                    vec![(month, Some(no_day))]
                } else {
                    days.iter().map(|(d, _)| (*d, None)).collect()
                };
                for (d, note) in dated {
                    facts.push((
                        Fact::Observation(ObservationFact {
                            source_visit_id: visit_of(d),
                            date: d,
                            code: None,
                            code_system: None,
                            source_code: Some(code.clone()),
                            source_system: Some(SYSTEM_DEVICE.into()),
                            source_name: crate::util::opt(rec.get(10)),
                            value_number: amount,
                            value_text: None,
                            unit: crate::util::opt(rec.get(7)),
                        }),
                        prov(rec.line, "TO", note),
                    ));
                }
            }
            "SJ" => {
                let text = rec.f.get(2..).map(|v| v.join(",")).unwrap_or_default();
                let kubun = rec.get(1);
                match (kubun.is_empty(), last_note) {
                    (true, Some(i)) => {
                        if let Some((Fact::Note(n), _)) = facts.get_mut(i) {
                            n.text.push('\n');
                            n.text.push_str(&text);
                        }
                    }
                    _ => {
                        facts.push((
                            Fact::Note(Note {
                                source_visit_id: visit_of(month),
                                date: month,
                                note_type: Some("症状詳記".into()),
                                title: crate::util::opt(kubun),
                                text,
                            }),
                            prov(rec.line, "SJ", Some("dated the first day of 診療年月")),
                        ));
                        last_note = Some(facts.len() - 1);
                    }
                }
            }
            "HO" | "SN" | "JD" => {}
            "KO" => {
                summary.ignore("KO 公費 record: billing data, not read (patient-key fallback only)")
            }
            "MF" => summary.ignore("MF 窓口負担額 record: billing data, not read"),
            "GR" => summary.ignore("GR 包括評価対象外理由 record: billing data, not read"),
            "CO" => summary.ignore("CO コメント record: billing comment, not read"),
            other => summary.ignore(format!("UKE record {other}: not read")),
        }
    }
    let extra_ho = body
        .iter()
        .filter(|x| x.id() == "HO")
        .count()
        .saturating_sub(1);
    for _ in 0..extra_ho {
        summary.ignore("second HO record of a receipt: not read");
    }
    Ok(SourceFacts {
        patient_id,
        identity: Some(id),
        facts,
    })
}

/// Counts of a UKE file's records by ID, for tests and summaries (streams; never panics).
pub fn record_counts(bytes: &[u8]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let mut lines = Lines::new(bytes, true);
    while let Ok(Some(l)) = lines.next_line() {
        let id: String = l.bytes.iter().take(2).map(|b| *b as char).collect();
        if l.bytes.get(2) == Some(&b',') {
            *out.entry(id).or_insert(0) += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, dd: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, dd)
    }

    #[test]
    fn wareki_and_seireki_dates() {
        assert_eq!(parse_uke_date("4310430"), d(2019, 4, 30)); // 平成31年4月30日
        assert_eq!(parse_uke_date("5010501"), d(2019, 5, 1)); // 令和元年5月1日
        assert_eq!(parse_uke_date("5010430"), None); // before 令和 began
        // 平成31年5月 does not exist (令和元年5月): an error, never a guess
        assert_eq!(parse_uke_date("4310501"), None);
        assert_eq!(parse_uke_date("3230405"), d(1948, 4, 5));
        assert_eq!(parse_uke_date("2151224"), d(1926, 12, 24));
        assert_eq!(parse_uke_date("1450729"), d(1912, 7, 29));
        assert_eq!(parse_uke_date("20240705"), d(2024, 7, 5));
        assert_eq!(parse_uke_date("4000101"), None); // year 0
        assert_eq!(parse_uke_date("6010101"), None); // unknown era
        assert_eq!(parse_uke_date("20240230"), None);
        assert_eq!(parse_uke_date(""), None);
        assert_eq!(parse_uke_month("202407"), d(2024, 7, 1));
        assert_eq!(parse_uke_month("50105"), d(2019, 5, 1)); // 令和元年5月
        assert_eq!(parse_uke_month("43104"), d(2019, 4, 1)); // 平成31年4月
        assert_eq!(parse_uke_month("50104"), None);
        assert_eq!(parse_uke_month("2024"), None);
    }

    #[test]
    fn lines_split_crlf_and_stop_at_eof_byte() {
        let data = b"IR,1\r\nRE,1\r\nGO,1\r\n\x1aJUNK";
        let mut l = Lines::new(&data[..], true);
        let mut got = Vec::new();
        while let Some(x) = l.next_line().unwrap() {
            got.push((x.no, String::from_utf8(x.bytes).unwrap()));
        }
        assert_eq!(
            got,
            vec![(1, "IR,1".into()), (2, "RE,1".into()), (3, "GO,1".into())]
        );
        assert!(l.after_eof);
    }

    #[test]
    fn overlong_line_is_flagged_not_kept() {
        let mut data = vec![b'A'; MAX_LINE + 10];
        data.extend_from_slice(b"\nIR,1\n");
        let mut l = Lines::new(&data[..], false);
        let a = l.next_line().unwrap().unwrap();
        assert!(a.too_long);
        assert_eq!(a.bytes.len(), MAX_LINE);
        let b = l.next_line().unwrap().unwrap();
        assert_eq!(b.bytes, b"IR,1");
        assert!(l.next_line().unwrap().is_none());
    }

    #[test]
    fn decoder_reads_cp932_and_utf8() {
        let (sjis, _, _) = SHIFT_JIS.encode("RE,1,1112,202407,山田　太郎");
        let mut dec = Decoder::default();
        assert_eq!(dec.decode(&sjis).0, "RE,1,1112,202407,山田　太郎");
        let mut dec = Decoder::default();
        assert_eq!(dec.decode("髙橋".as_bytes()).0, "髙橋");
    }
}
