//! Documents and pages: a thin layer over krilla that positions text from the top of the
//! page (y grows downwards, baselines given), in points.

use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;

use crate::PdfError;
use crate::font::Face;

/// Paper size. A5 is the usual counter slip; A4 for reports and mailing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Paper {
    #[default]
    A4,
    A5,
}

impl Paper {
    /// Width and height in PDF points (portrait).
    pub fn size(self) -> (f32, f32) {
        match self {
            Paper::A4 => (595.28, 841.89),
            Paper::A5 => (419.53, 595.28),
        }
    }
}

/// Horizontal alignment of text to its anchor x: the left edge, the right edge, or the centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Align {
    #[default]
    Left,
    Right,
    Center,
}

/// A PDF being written with the embedded font.
pub struct Document {
    doc: krilla::Document,
    face: Face,
}

impl Document {
    /// A new document set in IPAex Gothic.
    pub fn new() -> Result<Document, PdfError> {
        Ok(Document {
            doc: krilla::Document::new(),
            face: Face::ipaex_gothic()?,
        })
    }

    /// The font, to measure and wrap before drawing.
    pub fn face(&self) -> &Face {
        &self.face
    }

    /// Adds a page of `paper` with `margin` points on every side and draws it with `draw`.
    /// A closure rather than a returned page because krilla's page borrows the document
    /// until it is finished; this way a page can neither be left open nor outlive it.
    pub fn page<R>(
        &mut self,
        paper: Paper,
        margin: f32,
        draw: impl FnOnce(&mut Page<'_, '_>) -> R,
    ) -> Result<R, PdfError> {
        let (width, height) = paper.size();
        let settings =
            PageSettings::from_wh(width, height).ok_or(PdfError::PageSize { width, height })?;
        if !(0.0..width.min(height) / 2.0).contains(&margin) {
            return Err(PdfError::Margin(margin));
        }
        let mut page = self.doc.start_page_with(settings);
        let mut surface = page.surface();
        let out = draw(&mut Page {
            face: &self.face,
            surface: &mut surface,
            width,
            height,
            margin,
        });
        surface.finish();
        page.finish();
        Ok(out)
    }

    /// The PDF bytes. Deterministic: the same drawing gives the same bytes.
    pub fn finish(self) -> Result<Vec<u8>, PdfError> {
        self.doc
            .finish()
            .map_err(|e| PdfError::Write(format!("{e:?}")))
    }
}

/// One column of a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Column {
    /// Anchor of the column's text (see [`Align`]).
    pub x: f32,
    pub align: Align,
    /// Wrap the cell's text to this width; `None` keeps it on one line.
    pub wrap: Option<f32>,
}

/// A table of text rows with optional horizontal rules between them (key–value lists,
/// figure tables). A row is as tall as its cell with the most lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<Column>,
    /// Font size of every cell.
    pub size: f32,
    /// Distance between the baselines of a cell's wrapped lines.
    pub line_height: f32,
    /// Added below a row's last line, before the next row's baseline.
    pub row_gap: f32,
    /// Rules from x0 to x1 above the first row and below every row.
    pub rules: Option<(f32, f32)>,
    /// How far above a row's baseline its rule is drawn.
    pub rule_above: f32,
    /// Rows whose baseline would fall below this y are left out (the page is full).
    pub bottom: Option<f32>,
}

/// A bar chart: one bar per (label, value), scaled to the largest, labelled below and
/// with its value above.
pub struct BarChart<'a> {
    pub title: &'a str,
    /// The chart's box: left, top, width, height.
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
    pub bars: &'a [(String, f64)],
    pub value_label: &'a dyn Fn(f64) -> String,
}

/// The bars' colour, the HTML report's.
const BAR_COLOR: (u8, u8, u8) = (59, 110, 168);

/// A page being drawn. Coordinates are points from the top left corner; text is placed by
/// its baseline.
pub struct Page<'a, 's> {
    face: &'a Face,
    surface: &'a mut Surface<'s>,
    width: f32,
    height: f32,
    margin: f32,
}

impl<'a> Page<'a, '_> {
    pub fn face(&self) -> &'a Face {
        self.face
    }

    pub fn width(&self) -> f32 {
        self.width
    }

    pub fn height(&self) -> f32 {
        self.height
    }

    pub fn margin(&self) -> f32 {
        self.margin
    }

    /// The left margin's edge (also the top margin's: margins are equal).
    pub fn left(&self) -> f32 {
        self.margin
    }

    /// The first baseline for text of `size` whose top sits on the top margin.
    pub fn top_baseline(&self, size: f32) -> f32 {
        self.margin + size
    }

    pub fn right(&self) -> f32 {
        self.width - self.margin
    }

    pub fn bottom(&self) -> f32 {
        self.height - self.margin
    }

    /// Width between the margins.
    pub fn content_width(&self) -> f32 {
        self.right() - self.left()
    }

    /// Text with its baseline at `y`, starting at `x`.
    pub fn text(&mut self, x: f32, y: f32, size: f32, text: &str) {
        let glyphs = self.face.shape(text);
        self.surface.draw_glyphs(
            Point::from_xy(x, y),
            &glyphs,
            self.face.font(),
            text,
            size,
            false,
        );
    }

    /// Text ending at `right`.
    pub fn text_right(&mut self, right: f32, y: f32, size: f32, text: &str) {
        let w = self.face.width(text, size);
        self.text(right - w, y, size, text);
    }

    /// Text centred on `cx`.
    pub fn text_centered(&mut self, cx: f32, y: f32, size: f32, text: &str) {
        let w = self.face.width(text, size);
        self.text(cx - w / 2.0, y, size, text);
    }

    /// Text aligned to `x` as `align` says.
    pub fn text_aligned(&mut self, x: f32, align: Align, y: f32, size: f32, text: &str) {
        match align {
            Align::Left => self.text(x, y, size, text),
            Align::Right => self.text_right(x, y, size, text),
            Align::Center => self.text_centered(x, y, size, text),
        }
    }

    /// Lines one below the other from baseline `y`, `leading` apart; returns the baseline
    /// after the last.
    pub fn lines<S: AsRef<str>>(
        &mut self,
        (x, align): (f32, Align),
        mut y: f32,
        size: f32,
        leading: f32,
        lines: &[S],
    ) -> f32 {
        for line in lines {
            self.text_aligned(x, align, y, size, line.as_ref());
            y += leading;
        }
        y
    }

    /// `text` wrapped to `width` (see [`Face::wrap`]) from baseline `y` at `x`, lines
    /// `leading` apart; returns the baseline after the last line.
    pub fn paragraph(
        &mut self,
        x: f32,
        y: f32,
        width: f32,
        (size, leading): (f32, f32),
        text: &str,
    ) -> f32 {
        let lines = self.face.wrap(text, size, width);
        self.lines((x, Align::Left), y, size, leading, &lines)
    }

    /// A thin horizontal rule.
    pub fn hline(&mut self, x0: f32, x1: f32, y: f32) {
        let mut pb = PathBuilder::new();
        pb.move_to(x0, y);
        pb.line_to(x1, y);
        if let Some(path) = pb.finish() {
            self.surface.set_fill(None);
            self.surface.set_stroke(Some(Stroke {
                width: 0.5,
                ..Default::default()
            }));
            self.surface.draw_path(&path);
            self.surface.set_stroke(None);
            self.surface.set_fill(Some(Fill::default()));
        }
    }

    /// A filled rectangle (x, y top left); nothing for an empty or negative size.
    pub fn fill_rect(&mut self, x: f32, y: f32, w: f32, h: f32, (r, g, b): (u8, u8, u8)) {
        let Some(rect) = Rect::from_xywh(x, y, w, h) else {
            return;
        };
        let mut pb = PathBuilder::new();
        pb.push_rect(rect);
        if let Some(path) = pb.finish() {
            self.surface.set_fill(Some(Fill {
                paint: rgb::Color::new(r, g, b).into(),
                ..Default::default()
            }));
            self.surface.draw_path(&path);
            self.surface.set_fill(Some(Fill::default()));
        }
    }

    /// Draws `rows` (cells in column order; missing cells blank, extra cells ignored) with
    /// the first baseline at `y`; returns the baseline after the last row drawn.
    pub fn table<R, S>(&mut self, t: &Table, mut y: f32, rows: &[R]) -> f32
    where
        R: AsRef<[S]>,
        S: AsRef<str>,
    {
        let rule = |p: &mut Self, y: f32| {
            if let Some((x0, x1)) = t.rules {
                p.hline(x0, x1, y - t.rule_above);
            }
        };
        rule(self, y);
        for row in rows {
            if t.bottom.is_some_and(|b| y > b) {
                break;
            }
            let mut lines = 1;
            for (col, cell) in t.columns.iter().zip(row.as_ref()) {
                let cell = cell.as_ref();
                let wrapped = match col.wrap {
                    Some(w) => self.face.wrap(cell, t.size, w),
                    None => vec![cell.to_string()],
                };
                for (i, line) in wrapped.iter().enumerate() {
                    let ly = y + i as f32 * t.line_height;
                    self.text_aligned(col.x, col.align, ly, t.size, line);
                }
                lines = lines.max(wrapped.len());
            }
            y += t.line_height * lines as f32 + t.row_gap;
            rule(self, y);
        }
        y
    }

    /// A bar chart in its box (title on top, labels below the base line).
    pub fn bar_chart(&mut self, c: &BarChart<'_>) {
        let (x, y, w, h) = (c.x, c.y, c.width, c.height);
        self.text_centered(x + w / 2.0, y + 12.0, 11.0, c.title);
        let top = y + 30.0;
        let base = y + h - 24.0;
        let plot_h = base - top;
        self.hline(x, x + w, base);
        let max = c.bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-12);
        let slot = w / c.bars.len().max(1) as f32;
        for (i, (label, v)) in c.bars.iter().enumerate() {
            // A non-zero value stays visible however small against the largest.
            let bh = if *v > 0.0 {
                ((v / max) as f32 * plot_h).max(1.0)
            } else {
                0.0
            };
            let bx = x + i as f32 * slot + slot * 0.15;
            let bw = slot * 0.7;
            self.fill_rect(bx, base - bh, bw, bh, BAR_COLOR);
            let cx = bx + bw / 2.0;
            self.text_centered(cx, base + 11.0, 7.5, label);
            self.text_centered(cx, (base - bh - 3.0).max(top), 7.0, &(c.value_label)(*v));
        }
    }
}
