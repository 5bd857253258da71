//! The embedded font and what layout needs from it: glyphs from the cmap and advances.

use krilla::text::{Font, GlyphId, KrillaGlyph};
use skrifa::MetadataProvider;
use skrifa::instance::{LocationRef, Size};

use crate::PdfError;

/// IPAex Gothic 004.01 (Debian `fonts-ipaexfont-gothic`), IPA Font License v1.0. The only
/// copy compiled into kiban: every PDF goes through this crate.
pub static IPAEX_GOTHIC: &[u8] = include_bytes!("../../../assets/fonts/ipaexg.ttf");

/// The font loaded for krilla (drawing, subsetting) and for skrifa (cmap, advances).
pub struct Face {
    font: Font,
    glyphs: skrifa::FontRef<'static>,
    upem: f32,
}

impl Face {
    /// IPAex Gothic, the embedded font.
    pub fn ipaex_gothic() -> Result<Face, PdfError> {
        Face::from_static(IPAEX_GOTHIC)
    }

    fn from_static(bytes: &'static [u8]) -> Result<Face, PdfError> {
        let font = Font::new(bytes.into(), 0).ok_or(PdfError::Font)?;
        let glyphs = skrifa::FontRef::new(bytes).map_err(|_| PdfError::Font)?;
        let upem = f32::from(
            glyphs
                .metrics(Size::unscaled(), LocationRef::default())
                .units_per_em,
        );
        if upem <= 0.0 {
            return Err(PdfError::Font);
        }
        Ok(Face { font, glyphs, upem })
    }

    /// The krilla font, for drawing.
    pub(crate) fn font(&self) -> Font {
        self.font.clone()
    }

    /// One glyph per character. A character missing from the font maps to glyph 0
    /// (.notdef) but keeps its text, so copy and search in a PDF reader still see it.
    pub(crate) fn shape(&self, text: &str) -> Vec<KrillaGlyph> {
        let cmap = self.glyphs.charmap();
        let metrics = self
            .glyphs
            .glyph_metrics(Size::unscaled(), LocationRef::default());
        text.char_indices()
            .map(|(i, c)| {
                let gid = cmap.map(c).unwrap_or(skrifa::GlyphId::NOTDEF);
                // A glyph without an advance is drawn one em wide rather than on top of the next.
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

    /// Width of `text` in points at font size `size`.
    pub fn width(&self, text: &str, size: f32) -> f32 {
        self.shape(text).iter().map(|g| g.x_advance).sum::<f32>() * size
    }

    /// Width of one character in points at font size `size`.
    pub(crate) fn char_width(&self, c: char, size: f32) -> f32 {
        self.width(c.encode_utf8(&mut [0; 4]), size)
    }
}
