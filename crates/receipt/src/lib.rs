//! kiban-receipt: the written receipt for a request to stop provision (提供停止の求め) or to
//! delete (削除の求め), rendered as a Japanese PDF (R-OPT-5; 法31条, 施行規則第31条).
//!
//! The receipt states every item the regulation requires: that a request was made (提供停止の
//! 求めがあった旨), who made it (氏名 and relation to the patient, enough to identify them),
//! the date it was received, that this document is issued (本書を交付する旨), the date
//! provision stops, and the date of issue; plus the receipt number and the issuer (the
//! handler, or the producer receiving on its behalf).
//!
//! The font is IPAex Gothic (IPA Font License v1.0, `assets/fonts/`), compiled in with
//! `include_bytes!` so receipts render on a machine without Japanese fonts; each PDF embeds
//! only the glyphs it uses (krilla subsets), so a receipt stays around 30 KB.
//!
//! This crate only renders: it does no I/O, reads no database and decides nothing. The
//! requester's name and the patient reference are personal data: they appear in the PDF
//! (its purpose) but never in errors or `Debug` output.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use krilla::Document;
use krilla::geom::{PathBuilder, Point};
use krilla::page::PageSettings;
use krilla::text::{Font, GlyphId, KrillaGlyph};
use skrifa::MetadataProvider;
use skrifa::instance::{LocationRef, Size};

/// IPAex Gothic 004.01 (Debian `fonts-ipaexfont-gothic`), IPA Font License v1.0.
pub static IPAEX_GOTHIC: &[u8] = include_bytes!("../../../assets/fonts/ipaexg.ttf");

#[derive(Debug, thiserror::Error)]
pub enum ReceiptError {
    #[error("receipt field {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("the embedded receipt font could not be loaded")]
    Font,
    #[error("the PDF could not be written: {0}")]
    Pdf(String),
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

/// Paper size. A5 is the usual counter slip; A4 for mailing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Paper {
    #[default]
    A4,
    A5,
}

impl Paper {
    /// Width and height in PDF points.
    fn size(self) -> (f32, f32) {
        match self {
            Paper::A4 => (595.28, 841.89),
            Paper::A5 => (419.53, 595.28),
        }
    }
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

/// Renders the receipt as a PDF (embedded, subsetted IPAex Gothic). Deterministic for the
/// same receipt.
pub fn render(r: &Receipt) -> Result<Vec<u8>, ReceiptError> {
    validate(r)?;
    let face = Face::load()?;
    let (w, h) = r.paper.size();
    let a5 = r.paper == Paper::A5;
    let margin = if a5 { 36.0 } else { 56.0 };
    let body = if a5 { 9.0 } else { 10.5 };
    let mut doc = Document::new();
    {
        let settings = PageSettings::from_wh(w, h).ok_or(ReceiptError::Pdf("page size".into()))?;
        let mut page = doc.start_page_with(settings);
        let mut s = page.surface();
        let mut pen = Pen {
            face: &face,
            surface: &mut s,
        };
        let right = w - margin;
        let width = right - margin;
        let mut y = margin + body;

        // Top right: number and date of issue.
        for line in [
            format!("受付番号　{}", r.receipt_number),
            format!("交付日　{}", date_ja(r.issued)),
        ] {
            pen.text_right(right, y, body, &line);
            y += body * 1.6;
        }
        y += body;

        // Addressee.
        pen.text(margin, y, body * 1.3, &format!("{}　様", r.requester_name));
        y += body * 3.0;

        // Title.
        let title_size = if a5 { 13.0 } else { 16.0 };
        let title = match r.kind {
            RequestKind::Stop => "提供停止の求めに係る受付書",
            RequestKind::Delete => "提供停止及び削除の求めに係る受付書",
        };
        pen.text_centered(w / 2.0, y, title_size, title);
        y += title_size * 2.6;

        // Body: that a request was made, and that this document is issued.
        let para = format!(
            "{}について、下記のとおり{}がありました。次世代医療基盤法に基づき、\
             本書を交付します。",
            r.handler_name,
            r.kind.what()
        );
        for line in face.wrap(&para, body, width) {
            pen.text(margin, y, body, &line);
            y += body * 1.7;
        }
        y += body;
        pen.text_centered(w / 2.0, y, body * 1.1, "記");
        y += body * 2.4;

        // The items, as a two-column list.
        let label_w = face.width("提供を停止する年月日", body) + body * 2.0;
        let mut items: Vec<(String, String)> = vec![
            ("受付番号".into(), r.receipt_number.clone()),
            ("求めの内容".into(), r.kind.what().to_string()),
            (
                "求めを行った者".into(),
                format!("{}（本人との関係：{}）", r.requester_name, r.relation),
            ),
        ];
        if let Some(p) = &r.patient_reference {
            items.push(("対象となる本人".into(), p.clone()));
        }
        items.push(("医療情報取扱事業者".into(), r.handler_name.clone()));
        let mut received = date_ja(r.received);
        if let Some(c) = &r.channel {
            received.push_str(&format!("　{c}"));
        }
        items.push(("求めを受けた年月日".into(), received));
        items.push(("提供を停止する年月日".into(), date_ja(r.stop_date)));
        items.push(("本書の交付年月日".into(), date_ja(r.issued)));
        let rule = |pen: &mut Pen<'_, '_>, y: f32| pen.hline(margin, right, y);
        rule(&mut pen, y - body * 1.1);
        for (label, value) in &items {
            pen.text(margin + body * 0.5, y, body, label);
            let lines = face.wrap(value, body, width - label_w - body * 0.5);
            for (i, line) in lines.iter().enumerate() {
                pen.text(margin + label_w, y + i as f32 * body * 1.5, body, line);
            }
            y += body * (1.5 * lines.len().max(1) as f32 + 0.9);
            rule(&mut pen, y - body * 1.1);
        }
        if r.kind == RequestKind::Delete {
            y += body * 0.6;
            for line in face.wrap(
                "提供済みの医療情報のうち本人を識別できる情報は、可能な限り速やかに削除し、以後の提供には含めません。",
                body * 0.9,
                width,
            ) {
                pen.text(margin, y, body * 0.9, &line);
                y += body * 1.5;
            }
        }
        y += body * 2.5;

        // Issuer, bottom right block.
        let role = match r.issuer.role {
            IssuerRole::Handler => "交付者（医療情報取扱事業者）",
            IssuerRole::Producer => "交付者（認定作成事業者）",
        };
        let block_x = margin + width * 0.42;
        let mut issuer_lines = vec![role.to_string(), r.issuer.name.clone()];
        issuer_lines.extend(face.wrap(&r.issuer.address, body, right - block_x));
        if let Some(rep) = &r.issuer.representative {
            issuer_lines.push(format!("代表者　{rep}"));
        }
        for line in issuer_lines {
            pen.text(block_x, y, body, &line);
            y += body * 1.6;
        }
        let footer = "本書は大切に保管してください。本書の控えは交付日から3年間保存します。";
        let fsize = body * 0.8;
        pen.text(margin, (h - margin).max(y + fsize), fsize, footer);
        s.finish();
        page.finish();
    }
    doc.finish()
        .map_err(|e| ReceiptError::Pdf(format!("{e:?}")))
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
    Ok(())
}

/// The font with what layout needs: cmap and advances.
struct Face {
    font: Font,
    glyphs: skrifa::FontRef<'static>,
    upem: f32,
}

impl Face {
    fn load() -> Result<Face, ReceiptError> {
        let font = Font::new(IPAEX_GOTHIC.into(), 0).ok_or(ReceiptError::Font)?;
        let glyphs = skrifa::FontRef::new(IPAEX_GOTHIC).map_err(|_| ReceiptError::Font)?;
        let upem = f32::from(
            glyphs
                .metrics(Size::unscaled(), LocationRef::default())
                .units_per_em,
        );
        if upem <= 0.0 {
            return Err(ReceiptError::Font);
        }
        Ok(Face { font, glyphs, upem })
    }

    /// One glyph per character (Japanese needs no shaping; IPAex has no ligatures we use).
    /// A character missing from the font maps to glyph 0 (.notdef) but keeps its text, so
    /// copy and search still see it.
    fn shape(&self, text: &str) -> Vec<KrillaGlyph> {
        let cmap = self.glyphs.charmap();
        let metrics = self
            .glyphs
            .glyph_metrics(Size::unscaled(), LocationRef::default());
        text.char_indices()
            .map(|(i, c)| {
                let gid = cmap.map(c).unwrap_or(skrifa::GlyphId::NOTDEF);
                let adv = metrics.advance_width(gid).unwrap_or(self.upem) / self.upem;
                KrillaGlyph::new(
                    GlyphId::new(gid.to_u32()),
                    adv,
                    0.0,
                    0.0,
                    0.0,
                    i..i + c.len_utf8(),
                    None,
                )
            })
            .collect()
    }

    fn width(&self, text: &str, size: f32) -> f32 {
        self.shape(text).iter().map(|g| g.x_advance).sum::<f32>() * size
    }

    /// Greedy line breaking by character (Japanese breaks anywhere), keeping closing
    /// punctuation off the start of a line (禁則, simplified).
    fn wrap(&self, text: &str, size: f32, max: f32) -> Vec<String> {
        const NO_START: &str = "、。，．）」』】〕！？・ー…,.)!?";
        let mut lines = Vec::new();
        let mut cur = String::new();
        let mut cur_w = 0.0;
        for c in text.chars() {
            let cw = self.width(c.encode_utf8(&mut [0; 4]), size);
            if cur_w + cw > max && !cur.is_empty() && !NO_START.contains(c) {
                lines.push(std::mem::take(&mut cur));
                cur_w = 0.0;
            }
            cur.push(c);
            cur_w += cw;
        }
        if !cur.is_empty() {
            lines.push(cur);
        }
        lines
    }
}

struct Pen<'f, 's> {
    face: &'f Face,
    surface: &'f mut krilla::surface::Surface<'s>,
}

impl Pen<'_, '_> {
    /// Text with its baseline at `y` (from the top of the page).
    fn text(&mut self, x: f32, y: f32, size: f32, text: &str) {
        let glyphs = self.face.shape(text);
        self.surface.draw_glyphs(
            Point::from_xy(x, y),
            &glyphs,
            self.face.font.clone(),
            text,
            size,
            false,
        );
    }

    fn text_right(&mut self, right: f32, y: f32, size: f32, text: &str) {
        let w = self.face.width(text, size);
        self.text(right - w, y, size, text);
    }

    fn text_centered(&mut self, cx: f32, y: f32, size: f32, text: &str) {
        let w = self.face.width(text, size);
        self.text(cx - w / 2.0, y, size, text);
    }

    fn hline(&mut self, x0: f32, x1: f32, y: f32) {
        let mut pb = PathBuilder::new();
        pb.move_to(x0, y);
        pb.line_to(x1, y);
        if let Some(path) = pb.finish() {
            self.surface.set_fill(None);
            self.surface.set_stroke(Some(krilla::paint::Stroke {
                width: 0.5,
                ..Default::default()
            }));
            self.surface.draw_path(&path);
            self.surface.set_stroke(None);
            self.surface.set_fill(Some(krilla::paint::Fill::default()));
        }
    }
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
        }
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

    #[test]
    fn wrapping_keeps_every_character_and_respects_the_width() {
        let face = Face::load().unwrap();
        let text = "提供済みの医療情報のうち本人を識別できる情報は、可能な限り速やかに削除します。";
        let lines = face.wrap(text, 10.0, 120.0);
        assert!(lines.len() > 1);
        assert_eq!(lines.concat(), text);
        for l in &lines[..lines.len() - 1] {
            assert!(face.width(l, 10.0) <= 120.0 + 10.0, "{l}");
        }
        assert!(
            lines
                .iter()
                .all(|l| !l.starts_with('、') && !l.starts_with('。'))
        );
    }
}
