//! kiban-pdf: the one place kiban writes Japanese PDFs — the stop-request receipt
//! (`kiban-receipt`, R-OPT-5) and the release's risk report (`kiban-release`, R-ANON-7).
//!
//! It owns the font (IPAex Gothic, IPA Font License v1.0, `assets/fonts/`, compiled in once
//! with `include_bytes!` so PDFs render on a machine without Japanese fonts), measuring text
//! with the font's own advances, wrapping Japanese and Latin text to a width, and a small
//! page builder on top of krilla: A4/A5 pages with margins, aligned text, wrapped
//! paragraphs, ruled tables and a bar chart. Each PDF embeds only the glyphs it uses (krilla
//! subsets the font), so a one-page document stays around 30–40 KB.
//!
//! Text is laid out one glyph per character with the advances from the font's `hmtx`:
//! Japanese needs no shaping and IPAex Gothic has no ligatures kiban relies on, so no shaping
//! engine is pulled in. The library only renders: no I/O, nothing printed, same bytes for the
//! same input.

mod font;
mod page;
mod wrap;

#[cfg(feature = "testing")]
pub mod testing;

pub use font::{Face, IPAEX_GOTHIC};
pub use page::{Align, BarChart, Column, Document, Page, Paper, Table};

/// Why a PDF could not be produced. No variant carries document text: callers render
/// personal data (the receipt's requester), which must not leak into error messages.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("the embedded font could not be loaded")]
    Font,
    #[error("invalid page size {width} × {height} pt")]
    PageSize { width: f32, height: f32 },
    #[error("a margin of {0} pt does not leave room on the page")]
    Margin(f32),
    #[error("the PDF could not be written: {0}")]
    Write(String),
}
