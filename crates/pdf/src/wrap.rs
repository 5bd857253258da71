//! Line breaking for Japanese with some Latin in it (names of hospitals, addresses, IDs).
//!
//! Japanese breaks between any two characters; Latin words break only at spaces (a word
//! longer than the whole width is the exception and breaks by character). A simplified 禁則:
//! closing punctuation and the long-vowel mark never start a line.

use crate::font::Face;

/// Characters that never start a line (行頭禁則, simplified): closing brackets, commas,
/// full stops, the long-vowel mark.
const NO_START: &str = "、。，．）」』】〕！？・ー…,.)!?";

/// Characters between which a line may break without a space: kana, kanji, CJK punctuation
/// and full-width forms.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3000..=0x303F       // CJK symbols and punctuation (、。「」々〆)
        | 0x3040..=0x30FF     // hiragana, katakana
        | 0x31F0..=0x31FF     // katakana phonetic extensions
        | 0x3200..=0x33FF     // enclosed CJK, CJK compatibility (㈱, ㎡)
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFE30..=0xFE4F     // CJK compatibility forms
        | 0xFF00..=0xFFEF     // full-width and half-width forms
        | 0x20000..=0x3FFFF   // CJK extensions B and later (𠮷)
    )
}

/// What a line is made of: runs of white space (break opportunities, dropped at a break),
/// single CJK characters, and Latin words (runs of anything else).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Token<'t> {
    Space(&'t str),
    Cjk(char),
    Word(&'t str),
}

fn tokens(line: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        let run_end = |keep: &dyn Fn(char) -> bool| {
            rest.char_indices()
                .find(|&(_, d)| !keep(d))
                .map_or(rest.len(), |(i, _)| i)
        };
        let end = if c.is_whitespace() {
            let end = run_end(&|d: char| d.is_whitespace());
            out.push(Token::Space(&rest[..end]));
            end
        } else if is_cjk(c) {
            out.push(Token::Cjk(c));
            c.len_utf8()
        } else {
            let end = run_end(&|d: char| !d.is_whitespace() && !is_cjk(d));
            out.push(Token::Word(&rest[..end]));
            end
        };
        rest = &rest[end..];
    }
    out
}

/// The line being filled.
struct Filler<'f> {
    face: &'f Face,
    size: f32,
    max: f32,
    lines: Vec<String>,
    cur: String,
    cur_w: f32,
    /// White space waiting for the next word: written only if the line goes on.
    space: String,
    space_w: f32,
}

impl Filler<'_> {
    fn break_line(&mut self) {
        self.lines.push(std::mem::take(&mut self.cur));
        self.cur_w = 0.0;
        self.space.clear();
        self.space_w = 0.0;
    }

    /// Whether `w` more points, after the pending space, overflow a line that has something
    /// on it (an empty line takes anything, or nothing would ever be placed).
    fn overflows(&self, w: f32) -> bool {
        self.cur_w + self.space_w + w > self.max && !self.cur.is_empty()
    }

    fn push(&mut self, text: &str, w: f32) {
        self.cur.push_str(&self.space);
        self.cur.push_str(text);
        self.cur_w += self.space_w + w;
        self.space.clear();
        self.space_w = 0.0;
    }

    fn space(&mut self, s: &str) {
        // After a break the space that caused it is gone; leading space of the text (an
        // indent, 「　」) is kept.
        if self.cur.is_empty() && !self.lines.is_empty() {
            return;
        }
        self.space.push_str(s);
        self.space_w += self.face.width(s, self.size);
    }

    /// Character by character, as Japanese is set.
    fn chars(&mut self, text: &str) {
        for c in text.chars() {
            let cw = self.face.char_width(c, self.size);
            if self.overflows(cw) && !NO_START.contains(c) {
                self.break_line();
            }
            self.push(c.encode_utf8(&mut [0; 4]), cw);
        }
    }

    fn word(&mut self, word: &str) {
        let w = self.face.width(word, self.size);
        let no_start = word.chars().next().is_some_and(|c| NO_START.contains(c));
        if w > self.max {
            // Wider than any line: fill this one and go on by character.
            self.chars(word);
        } else if !self.overflows(w) || no_start {
            self.push(word, w);
        } else {
            self.break_line();
            self.push(word, w);
        }
    }

    fn finish(mut self) -> Vec<String> {
        // Trailing space is kept (it is part of the text) unless a break dropped it.
        let (space, w) = (std::mem::take(&mut self.space), self.space_w);
        self.space_w = 0.0;
        if !space.is_empty() || !self.cur.is_empty() {
            self.push(&space, w);
        }
        if !self.cur.is_empty() {
            self.lines.push(self.cur);
        }
        self.lines
    }
}

impl Face {
    /// Breaks `text` into lines of at most `max` points at font size `size`: between any
    /// two Japanese characters, at white space between Latin words (the space is dropped at
    /// the break), never before closing punctuation (so a line may overrun `max` by that
    /// one character). A newline in the text always breaks. Empty text gives no lines.
    pub fn wrap(&self, text: &str, size: f32, max: f32) -> Vec<String> {
        let mut out = Vec::new();
        for line in text.lines() {
            let mut f = Filler {
                face: self,
                size,
                max,
                lines: Vec::new(),
                cur: String::new(),
                cur_w: 0.0,
                space: String::new(),
                space_w: 0.0,
            };
            for t in tokens(line) {
                match t {
                    Token::Space(s) => f.space(s),
                    Token::Cjk(c) => f.chars(c.encode_utf8(&mut [0; 4])),
                    Token::Word(w) => f.word(w),
                }
            }
            let lines = f.finish();
            // A blank line of the text stays a blank line.
            if lines.is_empty() {
                out.push(String::new());
            } else {
                out.extend(lines);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face() -> Face {
        Face::ipaex_gothic().unwrap()
    }

    #[test]
    fn tokens_split_cjk_latin_and_space() {
        assert_eq!(
            tokens("病院 Medical Center（東京）ID0012"),
            vec![
                Token::Cjk('病'),
                Token::Cjk('院'),
                Token::Space(" "),
                Token::Word("Medical"),
                Token::Space(" "),
                Token::Word("Center"),
                Token::Cjk('（'),
                Token::Cjk('東'),
                Token::Cjk('京'),
                Token::Cjk('）'),
                Token::Word("ID0012"),
            ]
        );
    }

    #[test]
    fn wrapping_keeps_every_character_and_respects_the_width() {
        // Moved here from kiban-receipt with the wrapping code.
        let face = face();
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

    #[test]
    fn mixed_japanese_and_latin_breaks_at_spaces_and_between_kanji() {
        let face = face();
        let text = "医療法人社団さくら会 さくら総合病院 附属 Medical Center for Longitudinal \
                    Health Research and Care について、下記のとおり求めがありました。";
        let (size, max) = (10.0, 150.0);
        let lines = face.wrap(text, size, max);
        assert!(lines.len() >= 4, "{lines:?}");
        for l in &lines {
            assert!(face.width(l, size) <= max + size, "{l} overruns");
            assert!(!l.starts_with(' ') && !l.ends_with(' '), "{l:?}");
            assert!(!l.starts_with('、') && !l.starts_with('。'), "{l:?}");
        }
        // Every Latin word comes out whole, on one line.
        for word in [
            "Medical",
            "Center",
            "Longitudinal",
            "Health",
            "Research",
            "Care",
        ] {
            assert!(lines.iter().any(|l| l.contains(word)), "{word}: {lines:?}");
        }
        // Nothing lost but the spaces a break ate.
        let squash = |s: &str| s.chars().filter(|c| *c != ' ').collect::<String>();
        assert_eq!(squash(&lines.concat()), squash(text));
        // Japanese fills its lines: the first line is full, broken between two kanji or
        // kana rather than at the space after 会.
        assert!(
            face.width(&lines[0], size) > max - 2.0 * size,
            "{:?}",
            lines[0]
        );
    }

    #[test]
    fn a_word_wider_than_the_line_breaks_by_character() {
        let face = face();
        let word = "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let lines = face.wrap(word, 10.0, 60.0);
        assert!(lines.len() > 1);
        assert_eq!(lines.concat(), word);
        assert!(lines.iter().all(|l| face.width(l, 10.0) <= 60.0 + 10.0));
    }

    #[test]
    fn newlines_break_and_empty_text_has_no_lines() {
        let face = face();
        assert!(face.wrap("", 10.0, 100.0).is_empty());
        assert_eq!(
            face.wrap("東京都\n\n千代田区", 10.0, 100.0),
            vec!["東京都", "", "千代田区"]
        );
        // An indent (全角スペース) at the start stays.
        assert_eq!(face.wrap("　本文", 10.0, 100.0), vec!["　本文"]);
    }
}
