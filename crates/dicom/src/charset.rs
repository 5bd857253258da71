//! Text decoding for DICOM's ISO 2022 code extensions (PS3.5 §6.1.2.5), which dicom-rs does
//! not implement: it decodes every text value with the *first* value of Specific Character
//! Set only. Japanese sources write `\ISO 2022 IR 87` (JIS X 0208 kanji and kana behind
//! `ESC $ B`) or `ISO 2022 IR 13\ISO 2022 IR 87` (half-width katakana in G1 plus kanji), so
//! kiban recovers the raw bytes from what dicom-rs decoded (its decoders are byte-exact for
//! the repertoires in question) and decodes them again here, following the escapes.

use encoding_rs::{EUC_JP, EUC_KR, SHIFT_JIS};

/// What a Specific Character Set (0008,0005) declares, as far as kiban needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Charset {
    /// The defined terms, trimmed, in order (value 1 may be empty: the default repertoire).
    pub terms: Vec<String>,
}

impl Charset {
    pub fn from_terms<S: AsRef<str>>(terms: &[S]) -> Self {
        Charset {
            terms: terms
                .iter()
                .map(|t| t.as_ref().trim().to_string())
                .collect(),
        }
    }

    fn first(&self) -> &str {
        self.terms.first().map(String::as_str).unwrap_or("")
    }

    /// Code extensions are in use: some term is an `ISO 2022 …` term.
    pub fn uses_code_extensions(&self) -> bool {
        self.terms.iter().any(|t| t.starts_with("ISO 2022"))
    }

    /// Turns a string that dicom-rs decoded with value 1 back into the bytes of the file, when
    /// that decoding is reversible (the default repertoire and ISO-8859-1 map bytes 1:1 to
    /// U+0000–U+00FF; ISO_IR 13 is decoded as Shift_JIS, which keeps ESC sequences as ASCII
    /// and half-width katakana as U+FF61–U+FF9F). `None` when it is not.
    fn raw_bytes(&self, decoded: &str) -> Option<Vec<u8>> {
        match self.first().replace('_', " ").as_str() {
            "" | "ISO IR 6" | "ISO 2022 IR 6" | "ISO IR 100" | "ISO 2022 IR 100" => decoded
                .chars()
                .map(|c| u8::try_from(u32::from(c)).ok())
                .collect(),
            "ISO IR 13" | "ISO 2022 IR 13" => {
                let (bytes, _, had_errors) = SHIFT_JIS.encode(decoded);
                (!had_errors).then(|| bytes.into_owned())
            }
            _ => None,
        }
    }

    /// The text of a value as the file means it. Returns the text and the number of
    /// characters that could not be decoded (replaced by U+FFFD).
    pub fn redecode(&self, decoded: &str) -> (String, usize) {
        if !self.uses_code_extensions() {
            return (decoded.to_string(), 0);
        }
        match self.raw_bytes(decoded) {
            Some(bytes) => decode_iso2022(&bytes, self),
            None => (decoded.to_string(), 0),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum G0 {
    Ascii,
    Jis0208,
    Jis0212,
}

#[derive(Clone, Copy, PartialEq)]
enum G1 {
    None,
    Katakana,
    Latin1,
    Ksx1001,
}

/// Decodes bytes written with ISO 2022 code extensions (PS3.3 C.12.1.1.2, PS3.5 §6.1.2.5.3).
/// Supported: G0 ASCII / JIS X 0201 Romaji / JIS X 0208 / JIS X 0212; G1 JIS X 0201 katakana,
/// ISO-8859-1 and KS X 1001. Anything else becomes U+FFFD and is counted.
pub fn decode_iso2022(bytes: &[u8], cs: &Charset) -> (String, usize) {
    let initial_g1 = match cs.first().replace('_', " ").as_str() {
        "ISO 2022 IR 13" | "ISO IR 13" => G1::Katakana,
        "ISO 2022 IR 100" | "ISO IR 100" => G1::Latin1,
        "ISO 2022 IR 149" => G1::Ksx1001,
        _ => G1::None,
    };
    let mut g0 = G0::Ascii;
    let mut g1 = initial_g1;
    let mut out = String::with_capacity(bytes.len());
    let mut errors = 0usize;
    let mut i = 0usize;
    while i < bytes.len() {
        let b = bytes[i];
        if b == 0x1B {
            let rest = &bytes[i + 1..];
            let (len, ok) = if rest.starts_with(b"$B") || rest.starts_with(b"$@") {
                g0 = G0::Jis0208;
                (3, true)
            } else if rest.starts_with(b"$(D") {
                g0 = G0::Jis0212;
                (4, true)
            } else if rest.starts_with(b"(B") || rest.starts_with(b"(J") {
                g0 = G0::Ascii;
                (3, true)
            } else if rest.starts_with(b")I") {
                g1 = G1::Katakana;
                (3, true)
            } else if rest.starts_with(b"-A") {
                g1 = G1::Latin1;
                (3, true)
            } else if rest.starts_with(b"$)C") {
                g1 = G1::Ksx1001;
                (4, true)
            } else {
                (1, false)
            };
            if !ok {
                errors += 1;
                out.push('\u{FFFD}');
            }
            i += len;
            continue;
        }
        if b < 0x80 {
            match g0 {
                G0::Jis0208 | G0::Jis0212 if (0x21..=0x7E).contains(&b) => {
                    let Some(&b2) = bytes.get(i + 1) else {
                        errors += 1;
                        out.push('\u{FFFD}');
                        break;
                    };
                    let euc: Vec<u8> = if g0 == G0::Jis0208 {
                        vec![b | 0x80, b2 | 0x80]
                    } else {
                        vec![0x8F, b | 0x80, b2 | 0x80]
                    };
                    let (s, had_errors) = EUC_JP.decode_without_bom_handling(&euc);
                    if had_errors {
                        errors += 1;
                    }
                    out.push_str(&s);
                    i += 2;
                }
                _ => {
                    out.push(char::from(b));
                    i += 1;
                }
            }
            continue;
        }
        match g1 {
            G1::Katakana if (0xA1..=0xDF).contains(&b) => {
                out.push(char::from_u32(0xFF61 + u32::from(b - 0xA1)).unwrap_or('\u{FFFD}'));
                i += 1;
            }
            G1::Latin1 => {
                out.push(char::from(b));
                i += 1;
            }
            G1::Ksx1001 if bytes.get(i + 1).is_some_and(|&b2| b2 >= 0xA1) => {
                let (s, had_errors) = EUC_KR.decode_without_bom_handling(&bytes[i..i + 2]);
                if had_errors {
                    errors += 1;
                }
                out.push_str(&s);
                i += 2;
            }
            _ => {
                errors += 1;
                out.push('\u{FFFD}');
                i += 1;
            }
        }
    }
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jis_x_0208_behind_escapes() {
        let cs = Charset::from_terms(&["", "ISO 2022 IR 87"]);
        let raw =
            b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B";
        let (s, e) = decode_iso2022(raw, &cs);
        assert_eq!(s, "Yamada^Tarou=山田^太郎=やまだ^たろう");
        assert_eq!(e, 0);
    }

    #[test]
    fn half_width_katakana_in_g1() {
        let cs = Charset::from_terms(&["ISO 2022 IR 13", "ISO 2022 IR 87"]);
        let raw = b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J";
        let (s, e) = decode_iso2022(raw, &cs);
        assert_eq!(s, "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎");
        assert_eq!(e, 0);
    }

    #[test]
    fn unknown_escape_and_truncated_pair_are_counted_not_panics() {
        let cs = Charset::from_terms(&["", "ISO 2022 IR 87"]);
        let (s, e) = decode_iso2022(b"\x1bZZ\x1b$B;", &cs);
        assert_eq!(e, 2);
        assert!(s.contains('\u{FFFD}'));
    }

    #[test]
    fn latin1_round_trip_recovers_bytes() {
        let cs = Charset::from_terms(&["", "ISO 2022 IR 87"]);
        // What dicom-rs hands back for value 1 = default: bytes as U+0000–U+00FF.
        let as_latin1: String = b"\x1b$B;3ED\x1b(B".iter().map(|&b| char::from(b)).collect();
        assert_eq!(cs.redecode(&as_latin1).0, "山田");
    }
}
