//! The one normalization of a handler's patient ID (issue 13): every caller that turns a
//! patient ID into the control plane's keyed `patient_key` — ingest, opt-out commands and
//! imports, the handler-side export, the desk's status check, linkage evaluation — spells it
//! through [`PatientIdFormat::normalize`] first, so that `0016241`, `16241` and `００１６２４１`
//! are one patient and a stop filed with any of them applies.
//!
//! Every ID is first put in Unicode NFKC (full-width digits and letters become ASCII, a
//! full-width space a space) and trimmed. The handler then declares its format:
//! * `as-is` (the default, and what handlers registered before formats existed have): NFKC
//!   and trimming only;
//! * `digits:N`: only the digits 0-9, at most N of them after leading zeros, zero-padded to
//!   exactly N (`digits:7`: `16241`, `0016241` and `00000016241` all become `0016241`).
//!
//! An ID that does not fit is an error, never a guess: opt-out commands and imports refuse
//! it, ingest quarantines the unit. Errors name the format, never the ID.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unicode_normalization::UnicodeNormalization;

use crate::error::{ConsentError, invalid};

/// The widest `digits:N` format accepted.
pub const MAX_DIGITS_WIDTH: u8 = 32;

/// How a handler spells its patient IDs (recorded on the handler).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PatientIdFormat {
    /// NFKC and trimming only.
    #[default]
    AsIs,
    /// ASCII digits (after NFKC), zero-padded to `width`; more significant digits than
    /// `width` do not fit.
    Digits { width: u8 },
}

/// Why a patient ID does not fit its handler's format. Never carries the ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatientIdError {
    #[error("{} / {}", self.message_ja(), self.message_en())]
    Empty,
    #[error("{} / {}", self.message_ja(), self.message_en())]
    NotDigits { format: PatientIdFormat },
    #[error("{} / {}", self.message_ja(), self.message_en())]
    TooLong { format: PatientIdFormat, width: u8 },
}

impl PatientIdError {
    /// A stable machine code (`empty`, `not_digits`, `too_long`).
    pub fn code(&self) -> &'static str {
        match self {
            PatientIdError::Empty => "empty",
            PatientIdError::NotDigits { .. } => "not_digits",
            PatientIdError::TooLong { .. } => "too_long",
        }
    }

    pub fn message_ja(&self) -> String {
        match self {
            PatientIdError::Empty => "患者IDが空です".into(),
            PatientIdError::NotDigits { format } => {
                format!("患者IDに数字以外の文字があります（患者IDの形式 {format}: 数字のみ）")
            }
            PatientIdError::TooLong { format, width } => format!(
                "患者IDの桁数が多すぎます（患者IDの形式 {format}: 先頭の0を除いて{width}桁以内）"
            ),
        }
    }

    pub fn message_en(&self) -> String {
        match self {
            PatientIdError::Empty => "the patient ID is empty".into(),
            PatientIdError::NotDigits { format } => format!(
                "the patient ID has characters other than the digits 0-9 (patient ID format {format}: digits only)"
            ),
            PatientIdError::TooLong { format, width } => format!(
                "the patient ID has more digits than its format allows (patient ID format {format}: at most {width} digits after leading zeros)"
            ),
        }
    }
}

impl PatientIdFormat {
    /// The one spelling of `raw` under this format.
    pub fn normalize(&self, raw: &str) -> Result<String, PatientIdError> {
        let nfkc: String = raw.nfkc().collect();
        let id = nfkc.trim();
        if id.is_empty() {
            return Err(PatientIdError::Empty);
        }
        match *self {
            PatientIdFormat::AsIs => Ok(id.to_string()),
            PatientIdFormat::Digits { width } => {
                if !id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(PatientIdError::NotDigits { format: *self });
                }
                let significant = id.trim_start_matches('0');
                let width = usize::from(width);
                if significant.len() > width {
                    return Err(PatientIdError::TooLong {
                        format: *self,
                        width: width as u8,
                    });
                }
                Ok(format!("{significant:0>width$}"))
            }
        }
    }

    /// What the format asks for, in Japanese and English (for messages).
    pub fn describe(&self) -> String {
        match self {
            PatientIdFormat::AsIs => {
                "as-is（NFKC正規化と前後の空白除去のみ） / as-is (NFKC and trimming only)".into()
            }
            PatientIdFormat::Digits { width } => format!(
                "digits:{width}（数字{width}桁、先頭を0で埋める） / digits:{width} ({width} digits, zero-padded)"
            ),
        }
    }
}

impl fmt::Display for PatientIdFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatientIdFormat::AsIs => f.write_str("as-is"),
            PatientIdFormat::Digits { width } => write!(f, "digits:{width}"),
        }
    }
}

impl FromStr for PatientIdFormat {
    type Err = ConsentError;

    /// `as-is` or `digits:N` (N from 1 to [`MAX_DIGITS_WIDTH`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("as-is") || s.eq_ignore_ascii_case("asis") {
            return Ok(PatientIdFormat::AsIs);
        }
        let bad = || {
            invalid(
                "patient ID format",
                format!(
                    "expected as-is or digits:N with N from 1 to {MAX_DIGITS_WIDTH} (as-is か digits:N、N は 1〜{MAX_DIGITS_WIDTH})"
                ),
            )
        };
        let (kind, width) = s.split_once(':').ok_or_else(bad)?;
        if !kind.trim().eq_ignore_ascii_case("digits") {
            return Err(bad());
        }
        let width: u8 = width.trim().parse().map_err(|_| bad())?;
        if width == 0 || width > MAX_DIGITS_WIDTH {
            return Err(bad());
        }
        Ok(PatientIdFormat::Digits { width })
    }
}

impl Serialize for PatientIdFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PatientIdFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D7: PatientIdFormat = PatientIdFormat::Digits { width: 7 };

    #[test]
    fn digits_pad_and_strip_zeros() {
        for raw in [
            "0016241",
            "16241",
            "００１６２４１",
            "１６２４１",
            " 16241 ",
            "\u{3000}0016241\u{3000}",
            "00000016241",
        ] {
            assert_eq!(D7.normalize(raw), Ok("0016241".to_string()), "{raw:?}");
        }
        assert_eq!(
            PatientIdFormat::Digits { width: 9 }.normalize("００００３４２９７"),
            Ok("000034297".to_string())
        );
        assert_eq!(D7.normalize("0"), Ok("0000000".to_string()));
    }

    #[test]
    fn digits_refuse_what_does_not_fit() {
        assert_eq!(D7.normalize(""), Err(PatientIdError::Empty));
        assert_eq!(D7.normalize(" \u{3000} "), Err(PatientIdError::Empty));
        assert_eq!(
            D7.normalize("A016241"),
            Err(PatientIdError::NotDigits { format: D7 })
        );
        assert_eq!(
            D7.normalize("001-6241"),
            Err(PatientIdError::NotDigits { format: D7 })
        );
        // Arabic-Indic digits are digits, but not the handler's.
        assert_eq!(
            D7.normalize("١٢٣"),
            Err(PatientIdError::NotDigits { format: D7 })
        );
        assert_eq!(
            D7.normalize("12345678"),
            Err(PatientIdError::TooLong {
                format: D7,
                width: 7
            })
        );
    }

    #[test]
    fn as_is_is_nfkc_and_trim() {
        let f = PatientIdFormat::AsIs;
        assert_eq!(f.normalize(" ＡＢ－１２ "), Ok("AB-12".to_string()));
        assert_eq!(f.normalize("0016241"), Ok("0016241".to_string()));
        assert_eq!(f.normalize("16241"), Ok("16241".to_string()));
        assert_eq!(f.normalize("  "), Err(PatientIdError::Empty));
    }

    #[test]
    fn errors_never_name_the_id() {
        for (f, raw) in [(D7, "ZZ99999"), (D7, "987654321"), (D7, "")] {
            let e = f.normalize(raw).unwrap_err().to_string();
            if !raw.is_empty() {
                assert!(!e.contains(raw), "{e}");
            }
            assert!(e.contains("digits:7") || raw.is_empty(), "{e}");
        }
    }

    #[test]
    fn formats_parse_and_print() {
        for (s, f) in [
            ("as-is", PatientIdFormat::AsIs),
            ("digits:7", D7),
            (" Digits : 12 ", PatientIdFormat::Digits { width: 12 }),
        ] {
            assert_eq!(s.parse::<PatientIdFormat>().ok(), Some(f));
        }
        assert_eq!(D7.to_string(), "digits:7");
        assert_eq!(PatientIdFormat::AsIs.to_string(), "as-is");
        for bad in ["digits", "digits:0", "digits:33", "digits:x", "hex:4", ""] {
            assert!(bad.parse::<PatientIdFormat>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&D7).unwrap();
        assert_eq!(json, "\"digits:7\"");
        assert_eq!(serde_json::from_str::<PatientIdFormat>(&json).unwrap(), D7);
    }
}
