//! The risk report as PDF (R-ANON-7): the same content as the HTML report, two A4 pages
//! (figures on the second), drawn with krilla and the embedded IPAex Gothic font (the
//! receipt's approach: one glyph per character, advances from the font's hmtx, subsetted).

use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph};
use skrifa::MetadataProvider;
use skrifa::instance::{LocationRef, Size};

use crate::ReleaseError;
use crate::report_html::{ReportContext, class_bars, pct, risk_bars, summary_rows};
use crate::risk::RiskAssessment;

const W: f32 = 595.28;
const H: f32 = 841.89;
const MARGIN: f32 = 50.0;

fn pdf_err(what: &str) -> ReleaseError {
    ReleaseError::Spec(format!("risk report PDF: {what}"))
}

struct Face {
    font: Font,
    glyphs: skrifa::FontRef<'static>,
    upem: f32,
}

impl Face {
    fn load() -> Result<Face, ReleaseError> {
        let bytes: &'static [u8] = kiban_receipt::IPAEX_GOTHIC;
        let font = Font::new(bytes.into(), 0).ok_or_else(|| pdf_err("font"))?;
        let glyphs = skrifa::FontRef::new(bytes).map_err(|_| pdf_err("font"))?;
        let upem = f32::from(
            glyphs
                .metrics(Size::unscaled(), LocationRef::default())
                .units_per_em,
        );
        if upem <= 0.0 {
            return Err(pdf_err("font"));
        }
        Ok(Face { font, glyphs, upem })
    }

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
}

struct Pen<'f, 's, 'p> {
    face: &'f Face,
    s: &'p mut Surface<'s>,
}

impl Pen<'_, '_, '_> {
    fn text(&mut self, x: f32, y: f32, size: f32, text: &str) {
        let glyphs = self.face.shape(text);
        self.s.draw_glyphs(
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
            self.s.set_fill(None);
            self.s.set_stroke(Some(Stroke {
                width: 0.5,
                ..Default::default()
            }));
            self.s.draw_path(&path);
            self.s.set_stroke(None);
            self.s.set_fill(Some(Fill::default()));
        }
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32) {
        let Some(r) = Rect::from_xywh(x, y, w, h) else {
            return;
        };
        let mut pb = PathBuilder::new();
        pb.push_rect(r);
        if let Some(path) = pb.finish() {
            self.s.set_fill(Some(Fill {
                paint: rgb::Color::new(59, 110, 168).into(),
                ..Default::default()
            }));
            self.s.draw_path(&path);
            self.s.set_fill(Some(Fill::default()));
        }
    }

    /// A bar chart in the box (x, y top, w, h).
    fn bars(
        &mut self,
        title: &str,
        (x, y, w, h): (f32, f32, f32, f32),
        bars: &[(String, f64)],
        value_label: &dyn Fn(f64) -> String,
    ) {
        self.text_centered(x + w / 2.0, y + 12.0, 11.0, title);
        let top = y + 30.0;
        let base = y + h - 24.0;
        let plot_h = base - top;
        self.hline(x, x + w, base);
        let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-12);
        let slot = w / bars.len().max(1) as f32;
        for (i, (label, v)) in bars.iter().enumerate() {
            let bh = if *v > 0.0 {
                ((v / max) as f32 * plot_h).max(1.0)
            } else {
                0.0
            };
            let bx = x + i as f32 * slot + slot * 0.15;
            let bw = slot * 0.7;
            self.rect(bx, base - bh, bw, bh);
            let cx = bx + bw / 2.0;
            self.text_centered(cx, base + 11.0, 7.5, label);
            self.text_centered(cx, (base - bh - 3.0).max(top), 7.0, &value_label(*v));
        }
    }
}

/// Renders the report as PDF bytes. Deterministic for the same input.
pub fn render_pdf(ctx: &ReportContext, r: &RiskAssessment) -> Result<Vec<u8>, ReleaseError> {
    let face = Face::load()?;
    let mut doc = Document::new();
    let right = W - MARGIN;
    {
        let settings = PageSettings::from_wh(W, H).ok_or_else(|| pdf_err("page size"))?;
        let mut page = doc.start_page_with(settings);
        let mut s = page.surface();
        let mut pen = Pen {
            face: &face,
            s: &mut s,
        };
        let mut y = MARGIN + 16.0;
        pen.text(MARGIN, y, 16.0, "再識別リスク報告書");
        y += 18.0;
        pen.text(MARGIN, y, 10.0, "Re-identification risk report (R-ANON-7)");
        y += 22.0;
        let mut meta = vec![
            format!("提供ID Release: {}", ctx.release_id),
            format!(
                "プロファイル Profile: {} ／ 水準 Level: {} ／ 作成日 Created: {}",
                ctx.profile, ctx.level, ctx.created_on
            ),
        ];
        if let Some(k) = ctx.k {
            meta.push(format!("k = {k}"));
        }
        meta.push(format!(
            "準識別子 Quasi-identifiers: {}",
            r.quasi_identifiers
                .iter()
                .zip(&r.levels)
                .map(|(q, l)| format!("{q} (level {l})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for (q, g) in &ctx.generalization {
            meta.push(format!("一般化 Generalization: {q} → {g}"));
        }
        for line in meta {
            pen.text(MARGIN, y, 9.0, &line);
            y += 14.0;
        }
        y += 10.0;
        pen.text(MARGIN, y, 12.0, "リスク指標 Risk measures");
        y += 16.0;
        let mut rows: Vec<(String, String)> = summary_rows(r)
            .into_iter()
            .map(|(ja, en, v)| (format!("{ja}  {en}"), v))
            .collect();
        if !ctx.peculiar.is_empty() {
            rows.extend(ctx.peculiar.iter().cloned());
        }
        pen.hline(MARGIN, right, y - 10.0);
        for (label, v) in rows {
            if y > H - MARGIN {
                break;
            }
            pen.text(MARGIN + 2.0, y, 8.5, &label);
            pen.text_right(right - 2.0, y, 8.5, &v);
            y += 14.5;
            pen.hline(MARGIN, right, y - 10.0);
        }
        s.finish();
        page.finish();
    }
    {
        let settings = PageSettings::from_wh(W, H).ok_or_else(|| pdf_err("page size"))?;
        let mut page = doc.start_page_with(settings);
        let mut s = page.surface();
        let mut pen = Pen {
            face: &face,
            s: &mut s,
        };
        let cw = W - 2.0 * MARGIN;
        pen.bars(
            "図1 同値クラスの大きさの分布（クラス数） / Class sizes",
            (MARGIN, MARGIN, cw, 300.0),
            &class_bars(r),
            &|v| format!("{v:.0}"),
        );
        pen.bars(
            "図2 リスクの分布（レコードの割合） / Risk distribution",
            (MARGIN, MARGIN + 340.0, cw, 300.0),
            &risk_bars(r),
            &|v| pct(v),
        );
        s.finish();
        page.finish();
    }
    doc.finish().map_err(|e| pdf_err(&format!("{e:?}")))
}
