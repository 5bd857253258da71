//! The books on the workspace (issue 15, item 7; R-REC-4, R-REC-7, R-REL-3/4): thin calls
//! into `kiban_workflow::books`, each audited with the workspace's actor (IDs and counts
//! only — never a name or an address), and the one view of every entry an inspector asks
//! for: `kiban books` lists the book entries together with the receipt, provision and
//! erasure records of `kiban_records` as one row type ([`BooksRow`]: kind, date,
//! counter-party, items, reference), with the fee and turnaround of every request version
//! (R-REL-3), and exports them as CSV (UTF-8 with a BOM, so Excel reads the Japanese) or as
//! a Japanese PDF (through `kiban-pdf`).
//!
//! The delivery entry is not written here but in the approval's own transaction
//! (`release_approval`, with [`delivery_items`] naming the tables and columns of the
//! package). No row holds patient data: persons only as counts, erasure records without
//! their keyed patient or registration.

use kiban_workflow::shown_id as shown;
use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use kiban_pdf::{Align, Column, Document, Paper, Table};
use kiban_release::Manifest;
use kiban_workflow::{
    BookEntry, BookItems, BookKind, FairnessRow, NewCorrection, NewOnward, NewProducer,
    NewTransfer, NewTransferContract, NewUserErasure, Producer, TransferContract,
};
use serde::Serialize;
use sqlx::Row;

use crate::{PipelineError, Refusal, Workspace};

/// One row of `kiban books`: a book entry or a record of an earlier issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BooksRow {
    /// A book kind (`delivery`, `onward`, `user_erasure`, `transfer_out`, `transfer_in`)
    /// or a record kind (`receipt`, `provision`, `erasure`).
    pub kind: String,
    /// A book entry's number (what `kiban books correct` takes); `None` for the records.
    pub entry_no: Option<i64>,
    pub date: NaiveDate,
    pub counterparty_id: Option<String>,
    pub counterparty_name: Option<String>,
    pub counterparty_address: Option<String>,
    /// The receiving user of an onward provision.
    pub to_name: Option<String>,
    pub to_address: Option<String>,
    /// Table → columns (empty: the whole table).
    pub items: BookItems,
    /// What the row refers to: `release:… request:… contract:…`, `contract:…` or `record:…`.
    pub reference: String,
    pub level: Option<String>,
    /// Persons (delivered) or patients (records) as a count.
    pub persons: Option<u64>,
    pub recorded_at: String,
    pub recorded_by: Option<String>,
    /// A correction: the book entry it corrects (R-REC-4).
    pub corrects: Option<i64>,
    /// A corrected book entry: the entry that corrects it (it is no longer in force).
    pub corrected_by: Option<i64>,
    /// A correction: why.
    pub correction_reason: Option<String>,
}

/// `kiban books`: the rows and the fairness figures.
#[derive(Debug, Clone, Serialize)]
pub struct Books {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub entries: Vec<BooksRow>,
    /// Every request version's fee and turnaround (R-REL-3).
    pub fairness: Vec<FairnessRow>,
}

/// What `kiban books --kind` filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BooksKind {
    Book(BookKind),
    Receipt,
    Provision,
    Erasure,
}

impl BooksKind {
    pub fn parse(s: &str) -> Option<BooksKind> {
        match s {
            "receipt" => Some(BooksKind::Receipt),
            "provision" => Some(BooksKind::Provision),
            "erasure" => Some(BooksKind::Erasure),
            s => BookKind::parse(s).map(BooksKind::Book),
        }
    }
}

/// The export formats of `kiban books export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BooksFormat {
    Csv,
    Pdf,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct BooksExport {
    pub rows: usize,
    pub bytes: u64,
}

impl From<BookEntry> for BooksRow {
    fn from(e: BookEntry) -> BooksRow {
        let mut reference = Vec::new();
        if let Some(r) = &e.release {
            reference.push(format!("release:{r}"));
        }
        if let Some(r) = &e.request {
            reference.push(format!("request:{r}"));
        }
        if let Some(c) = &e.contract {
            reference.push(format!("contract:{c}"));
        }
        if let Some(m) = &e.method {
            reference.push(format!("method:{m}"));
        }
        reference.push(format!("entry:{}", e.entry_no));
        BooksRow {
            kind: e.kind.as_str().into(),
            date: e.date,
            counterparty_id: Some(e.counterparty_id),
            counterparty_name: Some(e.counterparty_name),
            counterparty_address: Some(e.counterparty_address),
            to_name: e.to_name,
            to_address: e.to_address,
            items: e.items,
            reference: reference.join(" "),
            level: e.level.map(|l| l.as_str().into()),
            persons: e.persons,
            recorded_at: e.recorded.at,
            recorded_by: Some(e.recorded.by),
            corrects: e.corrects,
            entry_no: Some(e.entry_no),
            corrected_by: e.corrected_by,
            correction_reason: e.correction_reason,
        }
    }
}

fn tables_only(items: &kiban_records::Items) -> BookItems {
    items.keys().map(|t| (t.clone(), Vec::new())).collect()
}

/// The tables of a package and the columns of each (its CSV header), as a delivery's items.
pub fn delivery_items(package: &Path, manifest: &Manifest) -> Result<BookItems, PipelineError> {
    use std::io::BufRead;
    let mut out = BTreeMap::new();
    for (table, entry) in &manifest.tables {
        let path = package.join(&entry.csv);
        let f = std::fs::File::open(&path).map_err(|e| PipelineError::io(&path, e))?;
        let mut header = String::new();
        // A CSV header is one short line: at most 64 KiB is read.
        std::io::BufReader::new(std::io::Read::take(f, 64 * 1024))
            .read_line(&mut header)
            .map_err(|e| PipelineError::io(&path, e))?;
        let mut cols: Vec<String> = header
            .trim_start_matches('\u{feff}')
            .trim_end()
            .split(',')
            .map(|c| c.trim_matches('"').to_string())
            .filter(|c| !c.is_empty())
            .collect();
        cols.sort();
        cols.dedup();
        out.insert(table.clone(), cols);
    }
    Ok(out)
}

impl Workspace {
    /// `kiban producer add`, audited `producer.add`.
    pub async fn add_producer(&self, p: NewProducer) -> Result<Producer, PipelineError> {
        let object = format!("producer:{}", p.id);
        self.audited(
            "producer.add",
            &object,
            async { Ok(self.workflow().add_producer(p, &self.stamp()).await?) },
            |p: &Producer| vec![("version", p.version as u64)],
        )
        .await
    }

    /// Every producer's current version.
    pub async fn list_producers(&self) -> Result<Vec<Producer>, PipelineError> {
        Ok(self.workflow().producers().await?)
    }

    /// `kiban transfer contract`, audited `transfer.contract`.
    pub async fn add_transfer_contract(
        &self,
        c: NewTransferContract,
    ) -> Result<TransferContract, PipelineError> {
        let object = format!("transfer_contract:{} producer:{}", c.id, c.producer);
        self.audited(
            "transfer.contract",
            &object,
            async {
                Ok(self
                    .workflow()
                    .add_transfer_contract(c, &self.stamp())
                    .await?)
            },
            |c: &TransferContract| vec![("items", c.items.len() as u64)],
        )
        .await
    }

    /// Every inter-producer contract.
    pub async fn list_transfer_contracts(&self) -> Result<Vec<TransferContract>, PipelineError> {
        Ok(self.workflow().transfer_contracts().await?)
    }

    /// `kiban transfer record`, audited `transfer.record`.
    pub async fn record_transfer(&self, t: NewTransfer) -> Result<BookEntry, PipelineError> {
        let object = format!(
            "producer:{} direction:{} contract:{}",
            t.producer,
            t.direction.as_str(),
            t.contract
        );
        self.audited(
            "transfer.record",
            &object,
            async { Ok(self.workflow().record_transfer(t, &self.stamp()).await?) },
            entry_counts,
        )
        .await
    }

    /// `kiban user report-provision`: a user's report of onward provision, audited
    /// `user.report_provision` (the receiving user's name is not in the event).
    pub async fn report_onward(&self, r: NewOnward) -> Result<BookEntry, PipelineError> {
        let object = format!("user:{} release:{}", r.user, shown(&r.release));
        self.audited(
            "user.report_provision",
            &object,
            async {
                self.release_known(&r.release).await?;
                Ok(self.workflow().report_onward(r, &self.stamp()).await?)
            },
            entry_counts,
        )
        .await
    }

    /// `kiban user report-erasure`: a user's report that delivered data was erased,
    /// audited `user.report_erasure`.
    pub async fn report_user_erasure(&self, r: NewUserErasure) -> Result<BookEntry, PipelineError> {
        let object = format!("user:{} release:{}", r.user, shown(&r.release));
        self.audited(
            "user.report_erasure",
            &object,
            async {
                self.release_known(&r.release).await?;
                Ok(self
                    .workflow()
                    .report_user_erasure(r, &self.stamp())
                    .await?)
            },
            entry_counts,
        )
        .await
    }

    /// `kiban books correct`: a correction of a book entry (a new entry naming the entry in
    /// force, see `Workflow::correct_entry`), audited `books.correct` with the entry numbers
    /// and the count of items only — never a name, an address or the reason's text.
    pub async fn correct_book_entry(
        &self,
        entry_no: i64,
        c: NewCorrection,
    ) -> Result<BookEntry, PipelineError> {
        let object = format!("book_entry:{entry_no}");
        self.audited(
            "books.correct",
            &object,
            async {
                Ok(self
                    .workflow()
                    .correct_entry(entry_no, c, &self.stamp())
                    .await?)
            },
            |e: &BookEntry| {
                vec![
                    ("entry_no", e.entry_no.max(0) as u64),
                    ("corrects", e.corrects.unwrap_or(0).max(0) as u64),
                    ("items", e.items.len() as u64),
                ]
            },
        )
        .await
    }

    /// The delivery entry of a release in force, if it has one.
    pub async fn delivery_entry(&self, release: &str) -> Result<Option<BookEntry>, PipelineError> {
        Ok(self.workflow().delivery_entry(release).await?)
    }

    /// Refused `release_unknown` when no release of that ID is on record.
    async fn release_known(&self, release: &str) -> Result<(), PipelineError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM releases WHERE release_id = $1")
            .bind(release)
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)?;
        if n == 0 {
            return Err(Refusal::ReleaseUnknown {
                release: shown(release),
            }
            .into());
        }
        Ok(())
    }

    /// `kiban books`: every book entry and record dated in `[from, to]`, of `kind` when
    /// given, by date (then kind, then when written), with the fairness figures. A read,
    /// audited `books.list` (counts only).
    pub async fn list_books(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        kind: Option<BooksKind>,
    ) -> Result<Books, PipelineError> {
        self.audited(
            "books.list",
            "books",
            self.books_inner(from, to, kind),
            |b: &Books| {
                vec![
                    ("rows", b.entries.len() as u64),
                    ("requests", b.fairness.len() as u64),
                ]
            },
        )
        .await
    }

    async fn books_inner(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        kind: Option<BooksKind>,
    ) -> Result<Books, PipelineError> {
        if let (Some(f), Some(t)) = (from, to)
            && t < f
        {
            return Err(Refusal::RangeInverted { from: f, to: t }.into());
        }
        let want = |k: BooksKind| kind.is_none_or(|w| w == k);
        let mut rows: Vec<(u8, BooksRow)> = Vec::new();
        let book_kind = match kind {
            Some(BooksKind::Book(k)) => Some(Some(k)),
            Some(_) => None,
            None => Some(None),
        };
        if let Some(k) = book_kind {
            for e in self.workflow().books(from, to, k).await? {
                rows.push((0, e.into()));
            }
        }
        let db = &self.db;
        if want(BooksKind::Receipt) {
            for e in kiban_records::list_receipts(db, from, to).await? {
                let r = e.record;
                rows.push((
                    1,
                    BooksRow {
                        kind: "receipt".into(),
                        date: r.received_date,
                        counterparty_id: Some(r.handler_code),
                        counterparty_name: Some(r.handler_name),
                        counterparty_address: Some(r.handler_address),
                        to_name: None,
                        to_address: None,
                        items: tables_only(&r.items),
                        reference: format!("record:{}", e.record_id),
                        level: None,
                        persons: Some(r.patient_count),
                        recorded_at: e.recorded_at,
                        recorded_by: None,
                        corrects: None,
                        entry_no: None,
                        corrected_by: None,
                        correction_reason: None,
                    },
                ));
            }
        }
        if want(BooksKind::Provision) {
            for e in kiban_records::list_provisions(db, from, to).await? {
                let r = e.record;
                rows.push((
                    2,
                    BooksRow {
                        kind: "provision".into(),
                        date: r.provided_date,
                        counterparty_id: Some(r.handler_code),
                        counterparty_name: Some(r.producer_name),
                        counterparty_address: Some(r.producer_address),
                        to_name: None,
                        to_address: None,
                        items: tables_only(&r.items),
                        reference: format!("record:{}", e.record_id),
                        level: None,
                        persons: Some(e.patient_count),
                        recorded_at: e.recorded_at,
                        recorded_by: None,
                        corrects: None,
                        entry_no: None,
                        corrected_by: None,
                        correction_reason: None,
                    },
                ));
            }
        }
        if want(BooksKind::Erasure) {
            for e in kiban_records::list_erasures(db, from, to).await? {
                let r = e.record;
                // The keyed patient and the registration stay out: counts and items only.
                rows.push((
                    3,
                    BooksRow {
                        kind: "erasure".into(),
                        date: r.erased_date,
                        counterparty_id: r.handler_code,
                        counterparty_name: None,
                        counterparty_address: None,
                        to_name: None,
                        to_address: None,
                        items: tables_only(&r.items),
                        reference: format!("record:{} reason:{}", e.record_id, r.reason),
                        level: None,
                        persons: None,
                        recorded_at: e.recorded_at,
                        recorded_by: None,
                        corrects: None,
                        entry_no: None,
                        corrected_by: None,
                        correction_reason: None,
                    },
                ));
            }
        }
        rows.sort_by(|a, b| {
            (a.1.date, a.0, &a.1.recorded_at, &a.1.reference).cmp(&(
                b.1.date,
                b.0,
                &b.1.recorded_at,
                &b.1.reference,
            ))
        });
        Ok(Books {
            from,
            to,
            entries: rows.into_iter().map(|(_, r)| r).collect(),
            fairness: self.workflow().fairness().await?,
        })
    }

    /// `kiban books export --format csv|pdf --out F`: the rows of [`Workspace::list_books`]
    /// written to `out` (refused when it exists), audited `books.export`.
    pub async fn export_books(
        &self,
        format: BooksFormat,
        out: &Path,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<BooksExport, PipelineError> {
        let object = match format {
            BooksFormat::Csv => "books format:csv",
            BooksFormat::Pdf => "books format:pdf",
        };
        self.audited(
            "books.export",
            object,
            async {
                if out.exists() {
                    return Err(Refusal::OutputNotEmpty {
                        path: out.to_path_buf(),
                    }
                    .into());
                }
                let books = self.books_inner(from, to, None).await?;
                let bytes = match format {
                    BooksFormat::Csv => books_csv(&books.entries)?,
                    BooksFormat::Pdf => books_pdf(&books)?,
                };
                let mut f = kiban_store::perms::create_private_file(out)
                    .map_err(|e| PipelineError::io(out, e))?;
                std::io::Write::write_all(&mut f, &bytes).map_err(|e| PipelineError::io(out, e))?;
                f.sync_all().map_err(|e| PipelineError::io(out, e))?;
                Ok(BooksExport {
                    rows: books.entries.len(),
                    bytes: bytes.len() as u64,
                })
            },
            |e: &BooksExport| vec![("rows", e.rows as u64), ("bytes", e.bytes)],
        )
        .await
    }
}

fn entry_counts(e: &BookEntry) -> Vec<(&'static str, u64)> {
    let mut c = vec![
        ("entry_no", e.entry_no.max(0) as u64),
        ("items", e.items.len() as u64),
    ];
    if onward_of_pseudonymized(e) {
        // Recorded, never refused: the report is evidence the producer must act on, and an
        // auditor scanning the log finds it by this count.
        c.push(("pseudonymized_onward", 1));
    }
    c
}

/// An onward provision of pseudonymized data: a certified user may not provide it to a
/// third party (法33条の2 via R-PSEUDO-2), so the entry records a suspected violation.
pub fn onward_of_pseudonymized(e: &BookEntry) -> bool {
    e.kind == BookKind::Onward && e.level == Some(kiban_workflow::Level::Pseudonymized)
}

/// The CSV export's header, stable: Japanese with the `--json` field name.
pub const CSV_HEADER: [&str; 16] = [
    "種別(kind)",
    "日付(date)",
    "相手方ID(counterparty_id)",
    "相手方の名称(counterparty_name)",
    "相手方の住所(counterparty_address)",
    "提供先の名称(to_name)",
    "提供先の住所(to_address)",
    "項目(items)",
    "参照(reference)",
    "加工の程度(level)",
    "人数(persons)",
    "記録日時(recorded_at)",
    "記録者(recorded_by)",
    "訂正対象の記載番号(corrects)",
    "訂正した記載番号(corrected_by)",
    "訂正の理由(correction_reason)",
];

/// A cell a spreadsheet must not read as a formula: a leading `=`, `+`, `-`, `@`, tab or
/// carriage return gets an apostrophe before it.
fn cell(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

/// The rows as CSV: UTF-8 with a BOM, the stable [`CSV_HEADER`], one line per row.
pub fn books_csv(rows: &[BooksRow]) -> Result<Vec<u8>, PipelineError> {
    let mut w = csv::Writer::from_writer(vec![0xEF, 0xBB, 0xBF]);
    let err = |e: csv::Error| PipelineError::Internal(format!("books csv: {e}"));
    w.write_record(CSV_HEADER).map_err(err)?;
    let opt = |s: &Option<String>| cell(s.as_deref().unwrap_or(""));
    for r in rows {
        w.write_record([
            r.kind.clone(),
            r.date.to_string(),
            opt(&r.counterparty_id),
            opt(&r.counterparty_name),
            opt(&r.counterparty_address),
            opt(&r.to_name),
            opt(&r.to_address),
            cell(&kiban_workflow::books::items_text(&r.items)),
            cell(&r.reference),
            opt(&r.level),
            r.persons.map(|p| p.to_string()).unwrap_or_default(),
            r.recorded_at.clone(),
            opt(&r.recorded_by),
            r.corrects.map(|n| n.to_string()).unwrap_or_default(),
            r.corrected_by.map(|n| n.to_string()).unwrap_or_default(),
            opt(&r.correction_reason),
        ])
        .map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| PipelineError::Internal(format!("books csv: {e}")))
}

/// The Japanese words of a row's kind.
pub fn kind_ja(kind: &str) -> &'static str {
    match kind {
        "delivery" => "利用者への提供",
        "onward" => "利用者間の提供（報告）",
        "user_erasure" => "利用者による消去（報告）",
        "transfer_out" => "他の認定作成事業者への提供",
        "transfer_in" => "他の認定作成事業者からの受領",
        "receipt" => "受領の記録",
        "provision" => "提供の記録（取扱事業者）",
        "erasure" => "消去の記録",
        _ => "その他",
    }
}

/// The books as a Japanese A4 PDF: the entries (date, kind, counter-party with name and
/// address, items, reference), as many pages as they need, then the fairness figures.
pub fn books_pdf(b: &Books) -> Result<Vec<u8>, PipelineError> {
    let pdf = |e: kiban_pdf::PdfError| PipelineError::Internal(format!("books pdf: {e}"));
    let mut doc = Document::new().map_err(pdf)?;
    let margin = 36.0;
    let size = 7.5;
    let (width, height) = Paper::A4.size();
    let content = width - 2.0 * margin;
    // Columns: date, kind, counter-party, items, reference.
    let xs = [0.0, 0.11, 0.27, 0.55, 0.77].map(|f| margin + f * content);
    let widths = [0.10, 0.15, 0.27, 0.21, 0.23].map(|f| f * content);
    let table = Table {
        columns: (0..5)
            .map(|i| Column {
                x: xs[i],
                align: Align::Left,
                wrap: Some(widths[i]),
            })
            .collect(),
        size,
        line_height: size * 1.35,
        row_gap: size * 0.6,
        rules: Some((margin, width - margin)),
        rule_above: size * 1.0,
        bottom: None,
    };
    let range = format!(
        "期間: {} 〜 {}",
        b.from.map(|d| d.to_string()).unwrap_or_else(|| "—".into()),
        b.to.map(|d| d.to_string()).unwrap_or_else(|| "—".into())
    );
    let rows: Vec<[String; 5]> = b
        .entries
        .iter()
        .map(|r| {
            let mut party = String::new();
            if let Some(id) = &r.counterparty_id {
                party.push_str(id);
            }
            for s in [&r.counterparty_name, &r.counterparty_address]
                .into_iter()
                .flatten()
            {
                party.push(' ');
                party.push_str(s);
            }
            if let Some(n) = &r.to_name {
                party.push_str(&format!(" → 提供先 {n}"));
                if let Some(a) = &r.to_address {
                    party.push_str(&format!(" {a}"));
                }
            }
            let mut reference = r.reference.clone();
            if let Some(l) = &r.level {
                reference.push_str(&format!(" level:{l}"));
            }
            if let Some(p) = r.persons {
                reference.push_str(&format!(" {p}人"));
            }
            if let Some(n) = r.corrects {
                reference.push_str(&format!(" 第{n}号の訂正"));
                if let Some(why) = &r.correction_reason {
                    reference.push_str(&format!("（理由: {why}）"));
                }
            }
            if let Some(n) = r.corrected_by {
                reference.push_str(&format!(" 第{n}号により訂正"));
            }
            [
                r.date.to_string(),
                kind_ja(&r.kind).to_string(),
                party,
                kiban_workflow::books::items_text(&r.items),
                reference,
            ]
        })
        .collect();
    // Each row's height, from the wrapped lines of its tallest cell.
    let heights: Vec<f32> = rows
        .iter()
        .map(|r| {
            let lines = r
                .iter()
                .zip(widths)
                .map(|(c, w)| doc.face().wrap(c, size, w).len().max(1))
                .max()
                .unwrap_or(1);
            table.line_height * lines as f32 + table.row_gap
        })
        .collect();
    let header = ["日付", "種別", "相手方（ID・名称・住所）", "項目", "参照"];
    let mut start = 0;
    let mut page_no = 1;
    loop {
        let first = page_no == 1;
        let mut y = margin + if first { 60.0 } else { 20.0 } + size * 2.5;
        let mut end = start;
        while end < rows.len() && y + heights[end] <= height - margin {
            y += heights[end];
            end += 1;
        }
        if end == start && start < rows.len() {
            end = start + 1; // a row taller than a page is drawn (cut) rather than lost
        }
        let chunk = &rows[start..end];
        doc.page(Paper::A4, margin, |p| {
            let mut y = margin + 14.0;
            if first {
                p.text(margin, y, 14.0, "帳簿（法第13条・施行規則第12条）");
                y += 18.0;
                p.text(margin, y, 9.0, &range);
                y += 14.0;
                p.text(
                    margin,
                    y,
                    8.0,
                    "利用者への提供・利用者間の提供・消去・他の認定作成事業者との授受、および受領・提供・消去の記録",
                );
                y += 14.0;
            } else {
                p.text(margin, y, 8.0, &format!("帳簿（続き） {page_no} 頁"));
                y += 6.0;
            }
            y += size * 1.5;
            let y = p.table(&table, y, &[header]);
            p.table(&table, y, chunk);
        })
        .map_err(pdf)?;
        start = end;
        page_no += 1;
        if start >= rows.len() {
            break;
        }
    }
    // The fairness figures (R-REL-3).
    let fair: Vec<[String; 5]> = b
        .fairness
        .iter()
        .map(|f| {
            [
                format!("{} 版{}", f.request, f.version),
                format!("{} ({})", f.user, f.user_kind.as_str()),
                f.fee_yen
                    .map(|y| format!("{y} 円"))
                    .unwrap_or_else(|| "—".into()),
                format!(
                    "{} → {}",
                    f.requested_on,
                    f.answered_on
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "未審査".into())
                ),
                f.turnaround_days
                    .map(|d| format!("{d} 日"))
                    .unwrap_or_else(|| "—".into()),
            ]
        })
        .collect();
    let per_page = ((height - 2.0 * margin - 60.0) / (table.line_height + table.row_gap))
        .floor()
        .max(1.0) as usize;
    let chunks: Vec<&[[String; 5]]> = if fair.is_empty() {
        vec![&[]]
    } else {
        fair.chunks(per_page).collect()
    };
    for chunk in chunks {
        doc.page(Paper::A4, margin, |p| {
            let mut y = margin + 14.0;
            p.text(
                margin,
                y,
                12.0,
                "提供依頼ごとの手数料と処理日数（不当な差別的取扱いの確認）",
            );
            y += 20.0;
            let y = p.table(
                &table,
                y,
                &[[
                    "提供依頼",
                    "利用者",
                    "手数料",
                    "受付日 → 審査日",
                    "処理日数",
                ]],
            );
            p.table(&table, y, chunk);
        })
        .map_err(pdf)?;
    }
    doc.finish().map_err(pdf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> BooksRow {
        BooksRow {
            kind: "delivery".into(),
            date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default(),
            counterparty_id: Some("U-1".into()),
            counterparty_name: Some(name.into()),
            counterparty_address: Some("東京都文京区本郷7-3-1".into()),
            to_name: None,
            to_address: None,
            items: BTreeMap::from([("person".to_string(), vec!["sex".to_string()])]),
            reference: "release:rel-1 entry:1".into(),
            level: Some("anonymized".into()),
            persons: Some(4),
            recorded_at: "2026-03-01T00:00:00Z".into(),
            recorded_by: Some("bob".into()),
            corrects: None,
            entry_no: None,
            corrected_by: None,
            correction_reason: None,
        }
    }

    #[test]
    fn csv_has_a_bom_a_stable_header_and_no_formulas() {
        let bytes = books_csv(&[row("=HYPERLINK(\"http://x\")")]).expect("csv");
        assert_eq!(&bytes[..3], &[0xEF, 0xBB, 0xBF]);
        let text = String::from_utf8(bytes[3..].to_vec()).expect("utf-8");
        let mut rdr = csv::Reader::from_reader(text.as_bytes());
        let h: Vec<String> = rdr
            .headers()
            .expect("header")
            .iter()
            .map(str::to_string)
            .collect();
        assert_eq!(h, CSV_HEADER);
        let rec = rdr.records().next().expect("row").expect("row");
        assert!(rec[3].starts_with("'="), "{:?}", &rec[3]);
        assert_eq!(&rec[7], "person(sex)");
    }

    #[test]
    fn the_pdf_carries_the_japanese_headings_and_the_rows() {
        let books = Books {
            from: None,
            to: None,
            entries: (0..120).map(|i| row(&format!("東都大学{i}"))).collect(),
            fairness: vec![],
        };
        let pdf = books_pdf(&books).expect("pdf");
        let Some(text) = kiban_pdf::testing::pdftotext(&pdf) else {
            return;
        };
        let flat = kiban_pdf::testing::squash(&text);
        assert!(flat.contains("帳簿（法第13条・施行規則第12条）"), "{text}");
        assert!(flat.contains("利用者への提供"));
        // Every row on some page: the first and the last.
        assert!(flat.contains("東都大学0"));
        assert!(flat.contains("東都大学119"));
        assert!(flat.contains("処理日数"));
    }
}
