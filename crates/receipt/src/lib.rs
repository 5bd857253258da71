//! kiban-receipt: the written receipt for a request to stop provision (提供停止の求め) or to
//! delete (削除の求め), rendered as a Japanese PDF (R-OPT-5; 法31条, 施行規則第31条).
//!
//! The receipt states every item the regulation requires: that a request was made (提供停止の
//! 求めがあった旨), who made it (氏名 and relation to the patient, enough to identify them),
//! the date it was received, that this document is issued (本書を交付する旨), the date
//! provision stops, and the date of issue; plus the receipt number and the issuer (the
//! handler, or the producer receiving on its behalf).
//!
//! The PDF is drawn through kiban-pdf, which owns the font (IPAex Gothic, IPA Font License
//! v1.0, compiled in so receipts render on a machine without Japanese fonts), wrapping and
//! page layout; each PDF embeds only the glyphs it uses, so a receipt stays around 30 KB.
//!
//! This crate only renders: it does no I/O, reads no database and decides nothing. The
//! requester's name and the patient reference are personal data: they appear in the PDF
//! (its purpose) but never in errors or `Debug` output.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use kiban_pdf::{Align, Column, Document, Page, PdfError, Table};

/// Paper size, kiban-pdf's (A5 the usual counter slip, A4 for mailing); re-exported so
/// callers name it from the receipt.
pub use kiban_pdf::Paper;

#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("receipt field {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("receipt PDF: {0}")]
    Pdf(#[from] PdfError),
}

/// What was requested: a stop, or a deletion (which implies a stop, R-OPT-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Stop,
    Delete,
}

impl RequestKind {
    fn what(self) -> &'static str {
        match self {
            RequestKind::Stop => "医療情報の提供の停止の求め",
            RequestKind::Delete => "医療情報の提供の停止及び提供済みの医療情報の削除の求め",
        }
    }
}

/// What a deletion request reaches, as its receipt states it (R-OPT-6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeletionReach {
    /// The data of the patient provided by the handler the receipt names.
    Handler,
    /// Every registration linked to the same person by the producer's linkage (名寄せ),
    /// across handlers: how many registrations, and the handlers they came from (names, not
    /// their patient IDs).
    Person {
        registrations: usize,
        handlers: Vec<String>,
    },
}

impl DeletionReach {
    /// The scope line printed on the receipt.
    pub fn text_ja(&self, handler_name: &str) -> String {
        match self {
            DeletionReach::Handler => {
                format!("{handler_name}から提供された医療情報（当該医療情報取扱事業者の分のみ）")
            }
            DeletionReach::Person {
                registrations,
                handlers,
            } => format!(
                "同一の本人として名寄せされた全ての医療情報取扱事業者の分（{registrations}件：{}）",
                handlers.join("、")
            ),
        }
    }
}

/// Who issues the receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerRole {
    /// 医療情報取扱事業者: the party the law obliges to issue it.
    Handler,
    /// 認定作成事業者 receiving the request on the handler's behalf.
    Producer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    pub role: IssuerRole,
    pub name: String,
    pub address: String,
    pub representative: Option<String>,
}

/// Everything printed on one receipt.
#[derive(Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The consent event's receipt number (unique, not derived from the patient).
    pub receipt_number: String,
    pub kind: RequestKind,
    /// 氏名 of the person who made the request (personal data).
    pub requester_name: String,
    /// Their relation to the patient in Japanese, e.g. 本人, 法定代理人, 配偶者（遺族）.
    pub relation: String,
    /// The patient the request is about, as the handler knows them (e.g. its patient ID);
    /// `None` when the requester is the patient and nothing else is needed (personal data).
    pub patient_reference: Option<String>,
    /// The handler whose provision stops.
    pub handler_name: String,
    /// How the request was received, in Japanese (e.g. 窓口（書面）); optional.
    pub channel: Option<String>,
    pub received: NaiveDate,
    /// From this date no data of the patient is provided (the gate applies the stop from the
    /// day the request is received).
    pub stop_date: NaiveDate,
    pub issued: NaiveDate,
    pub issuer: Issuer,
    pub paper: Paper,
    /// A deletion request's scope (printed as 削除の範囲); `None` on a stop's receipt, and on a
    /// deletion's when the scope is not stated.
    pub deletion_reach: Option<DeletionReach>,
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receipt")
            .field("receipt_number", &self.receipt_number)
            .field("kind", &self.kind)
            .field("requester_name", &"..")
            .field(
                "patient_reference",
                &self.patient_reference.as_ref().map(|_| ".."),
            )
            .field("received", &self.received)
            .field("stop_date", &self.stop_date)
            .field("issued", &self.issued)
            .field("issuer", &self.issuer.name)
            .field("deletion_reach", &self.deletion_reach)
            .finish()
    }
}

/// `2024年5月1日（令和6年5月1日）`: Western and Japanese era, as Japanese forms usually show
/// both. Dates before Reiwa show the Western date only.
pub fn date_ja(d: NaiveDate) -> String {
    let western = format!("{}年{}月{}日", d.year(), d.month(), d.day());
    let reiwa_start = NaiveDate::from_ymd_opt(2019, 5, 1);
    match reiwa_start {
        Some(start) if d >= start => {
            let y = d.year() - 2018;
            let y = if y == 1 {
                "元".to_string()
            } else {
                y.to_string()
            };
            format!("{western}（令和{y}年{}月{}日）", d.month(), d.day())
        }
        _ => western,
    }
}

/// Renders the receipt as a PDF (embedded, subsetted IPAex Gothic, through kiban-pdf).
/// Deterministic for the same receipt.
pub fn render(r: &Receipt) -> Result<Vec<u8>, ReceiptError> {
    validate(r)?;
    let a5 = r.paper == Paper::A5;
    let margin = if a5 { 36.0 } else { 56.0 };
    let body = if a5 { 9.0 } else { 10.5 };
    let mut doc = Document::new()?;
    doc.page(r.paper, margin, |p| draw(p, r, body))?;
    Ok(doc.finish()?)
}

fn draw(p: &mut Page<'_, '_>, r: &Receipt, body: f32) {
    let a5 = r.paper == Paper::A5;
    let (w, h) = (p.width(), p.height());
    let (margin, right, width) = (p.left(), p.right(), p.content_width());
    let face = p.face();
    let mut y = p.top_baseline(body);

    // Top right: number and date of issue.
    let top = [
        format!("受付番号　{}", r.receipt_number),
        format!("交付日　{}", date_ja(r.issued)),
    ];
    y = p.lines((right, Align::Right), y, body, body * 1.6, &top);
    y += body;

    // Addressee.
    p.text(margin, y, body * 1.3, &format!("{}　様", r.requester_name));
    y += body * 3.0;

    // Title.
    let title_size = if a5 { 13.0 } else { 16.0 };
    let title = match r.kind {
        RequestKind::Stop => "提供停止の求めに係る受付書",
        RequestKind::Delete => "提供停止及び削除の求めに係る受付書",
    };
    p.text_centered(w / 2.0, y, title_size, title);
    y += title_size * 2.6;

    // Body: that a request was made, and that this document is issued.
    let para = format!(
        "{}について、下記のとおり{}がありました。次世代医療基盤法に基づき、\
         本書を交付します。",
        r.handler_name,
        r.kind.what()
    );
    y = p.paragraph(margin, y, width, (body, body * 1.7), &para);
    y += body;
    p.text_centered(w / 2.0, y, body * 1.1, "記");
    y += body * 2.4;

    // The items, as a ruled two-column list.
    let label_w = face.width("提供を停止する年月日", body) + body * 2.0;
    let mut items: Vec<[String; 2]> = vec![
        ["受付番号".into(), r.receipt_number.clone()],
        ["求めの内容".into(), r.kind.what().to_string()],
        [
            "求めを行った者".into(),
            format!("{}（本人との関係：{}）", r.requester_name, r.relation),
        ],
    ];
    if let Some(patient) = &r.patient_reference {
        items.push(["対象となる本人".into(), patient.clone()]);
    }
    items.push(["医療情報取扱事業者".into(), r.handler_name.clone()]);
    if let Some(reach) = &r.deletion_reach {
        items.push(["削除の範囲".into(), reach.text_ja(&r.handler_name)]);
    }
    let mut received = date_ja(r.received);
    if let Some(c) = &r.channel {
        received.push_str(&format!("　{c}"));
    }
    items.push(["求めを受けた年月日".into(), received]);
    items.push(["提供を停止する年月日".into(), date_ja(r.stop_date)]);
    items.push(["本書の交付年月日".into(), date_ja(r.issued)]);
    let table = Table {
        columns: vec![
            Column {
                x: margin + body * 0.5,
                align: Align::Left,
                wrap: None,
            },
            Column {
                x: margin + label_w,
                align: Align::Left,
                wrap: Some(width - label_w - body * 0.5),
            },
        ],
        size: body,
        line_height: body * 1.5,
        row_gap: body * 0.9,
        rules: Some((margin, right)),
        rule_above: body * 1.1,
        // Validation bounds the text, so the list fits the page.
        bottom: None,
    };
    y = p.table(&table, y, &items);
    if r.kind == RequestKind::Delete {
        y += body * 0.6;
        y = p.paragraph(
            margin,
            y,
            width,
            (body * 0.9, body * 1.5),
            "提供済みの医療情報のうち本人を識別できる情報は、可能な限り速やかに削除し、以後の提供には含めません。",
        );
    }
    y += body * 2.5;

    // Issuer, bottom right block.
    let role = match r.issuer.role {
        IssuerRole::Handler => "交付者（医療情報取扱事業者）",
        IssuerRole::Producer => "交付者（認定作成事業者）",
    };
    let block_x = margin + width * 0.42;
    let leading = body * 1.6;
    y = p.lines(
        (block_x, Align::Left),
        y,
        body,
        leading,
        &[role, &r.issuer.name],
    );
    y = p.paragraph(
        block_x,
        y,
        right - block_x,
        (body, leading),
        &r.issuer.address,
    );
    if let Some(rep) = &r.issuer.representative {
        p.text(block_x, y, body, &format!("代表者　{rep}"));
        y += leading;
    }
    let footer = "本書は大切に保管してください。本書の控えは交付日から3年間保存します。";
    let fsize = body * 0.8;
    p.text(margin, (h - margin).max(y + fsize), fsize, footer);
}

fn validate(r: &Receipt) -> Result<(), ReceiptError> {
    let bad = |field, reason| Err(ReceiptError::Invalid { field, reason });
    if r.receipt_number.trim().is_empty() {
        return bad("receipt number", "is empty");
    }
    if r.requester_name.trim().is_empty() {
        return bad(
            "requester",
            "is empty (the receipt must say who made the request)",
        );
    }
    if r.relation.trim().is_empty() {
        return bad("relation", "is empty");
    }
    if r.handler_name.trim().is_empty() || r.issuer.name.trim().is_empty() {
        return bad("issuer", "name is empty");
    }
    if r.stop_date < r.received {
        return bad("stop date", "is before the date the request was received");
    }
    if r.issued < r.received {
        return bad("issue date", "is before the date the request was received");
    }
    let all = [
        &r.receipt_number,
        &r.requester_name,
        &r.relation,
        &r.handler_name,
        &r.issuer.name,
        &r.issuer.address,
    ];
    if all.iter().any(|s| s.chars().count() > 400) {
        return bad("text", "longer than 400 characters");
    }
    match &r.deletion_reach {
        Some(_) if r.kind != RequestKind::Delete => {
            return bad("deletion scope", "belongs to a deletion request's receipt");
        }
        Some(DeletionReach::Person {
            registrations,
            handlers,
        }) => {
            if *registrations == 0 || handlers.is_empty() {
                return bad("deletion scope", "reaches no registration");
            }
            // The list must fit the page: a person is rarely at more than a few handlers.
            if handlers.len() > 20
                || handlers.iter().map(|h| h.chars().count()).sum::<usize>() > 600
            {
                return bad("deletion scope", "too many handlers to print");
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(kind: RequestKind, paper: Paper) -> Receipt {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        Receipt {
            receipt_number: "H1-20240501-ABCD1234".into(),
            kind,
            requester_name: "山田 花子".into(),
            relation: "本人".into(),
            patient_reference: Some("患者ID 0001234".into()),
            handler_name: "さくら総合病院".into(),
            channel: Some("窓口（書面）".into()),
            received: d("2024-05-01"),
            stop_date: d("2024-05-01"),
            issued: d("2024-05-02"),
            issuer: Issuer {
                role: IssuerRole::Handler,
                name: "さくら総合病院".into(),
                address: "東京都千代田区霞が関1-2-3".into(),
                representative: Some("院長 佐藤 一郎".into()),
            },
            paper,
            deletion_reach: None,
        }
    }

    #[test]
    fn a_deletion_receipt_states_its_scope_and_a_stop_receipt_cannot() {
        let mut r = sample(RequestKind::Delete, Paper::A5);
        r.deletion_reach = Some(DeletionReach::Person {
            registrations: 2,
            handlers: vec!["さくら総合病院".into(), "みなと診療所".into()],
        });
        assert!(render(&r).is_ok());
        let text = r.deletion_reach.as_ref().unwrap().text_ja(&r.handler_name);
        assert!(
            text.contains("2件") && text.contains("みなと診療所"),
            "{text}"
        );
        let mut stop = sample(RequestKind::Stop, Paper::A4);
        stop.deletion_reach = Some(DeletionReach::Handler);
        assert!(render(&stop).is_err());
        r.deletion_reach = Some(DeletionReach::Person {
            registrations: 0,
            handlers: vec![],
        });
        assert!(render(&r).is_err());
    }

    #[test]
    fn japanese_dates_show_the_era() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(date_ja(d("2024-05-01")), "2024年5月1日（令和6年5月1日）");
        assert_eq!(date_ja(d("2019-05-01")), "2019年5月1日（令和元年5月1日）");
        assert_eq!(date_ja(d("2019-04-30")), "2019年4月30日");
    }

    #[test]
    fn renders_a_small_pdf_with_a_subset_font() {
        // R-OPT-5: a receipt PDF; subsetting keeps it far below the 6 MB font.
        for paper in [Paper::A4, Paper::A5] {
            let pdf = render(&sample(RequestKind::Stop, paper)).unwrap();
            assert!(pdf.starts_with(b"%PDF-"));
            assert!(pdf.len() < 100_000, "receipt is {} bytes", pdf.len());
            assert!(
                pdf.windows(9).any(|w| w == b"FontFile2"),
                "font must be embedded"
            );
        }
    }

    #[test]
    fn rendering_is_deterministic() {
        let r = sample(RequestKind::Delete, Paper::A5);
        assert_eq!(render(&r).unwrap(), render(&r).unwrap());
    }

    #[test]
    fn invalid_receipts_are_refused_without_personal_data() {
        let mut r = sample(RequestKind::Stop, Paper::A4);
        r.requester_name = " ".into();
        let e = render(&r).unwrap_err().to_string();
        assert!(e.contains("requester"), "{e}");
        let mut r = sample(RequestKind::Stop, Paper::A4);
        r.stop_date = r.received.pred_opt().unwrap();
        assert!(render(&r).is_err());
        let dbg = format!("{:?}", sample(RequestKind::Stop, Paper::A4));
        assert!(!dbg.contains("山田") && !dbg.contains("0001234"), "{dbg}");
    }
}
