//! Japanese text utilities: half-width kana, kana typos, variant kanji, and the two legacy
//! encodings the outputs need (ISO-2022-JP for SS-MIX2, Shift_JIS/CP932 for UKE).
//!
//! Legacy encodings cannot hold every character a person's name may carry (髙, 﨑, 𠮷 are
//! outside JIS X 0208). Real hospital systems then write the common form or the geta mark
//! 〓; the encoders here do the same, so output is always valid in its declared charset.

use crate::tables::VARIANT_KANJI;

const FULL_KANA: &str = "。「」、・ヲァィゥェォャュョッーアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン゛゜";
const VOICED: &str = "ガギグゲゴザジズゼゾダヂヅデドバビブベボ";
const VOICED_BASE: &str = "カキクケコサシスセソタチツテトハヒフヘホ";
const SEMI: &str = "パピプペポ";
const SEMI_BASE: &str = "ハヒフヘホ";

/// Converts full-width katakana (and the full-width space) to half-width, splitting voiced
/// marks into separate characters the way legacy terminals store them (ガ → ｶﾞ).
pub fn to_halfwidth_kana(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_halfwidth(c, &mut out);
    }
    out
}

fn push_halfwidth(c: char, out: &mut String) {
    if c == '　' {
        out.push(' ');
        return;
    }
    if c == 'ヴ' {
        out.push('ｳ');
        out.push('ﾞ');
        return;
    }
    if let Some(i) = VOICED.chars().position(|v| v == c)
        && let Some(b) = VOICED_BASE.chars().nth(i)
    {
        push_halfwidth(b, out);
        out.push('ﾞ');
        return;
    }
    if let Some(i) = SEMI.chars().position(|v| v == c)
        && let Some(b) = SEMI_BASE.chars().nth(i)
    {
        push_halfwidth(b, out);
        out.push('ﾟ');
        return;
    }
    if let Some(i) = FULL_KANA.chars().position(|v| v == c)
        && let Some(h) = char::from_u32(0xFF61 + i as u32)
    {
        out.push(h);
        return;
    }
    out.push(c);
}

/// Converts half-width katakana back to full-width, recombining voiced marks. Used where a
/// format requires full-width kana (UKE カタカナ氏名).
pub fn to_fullwidth_kana(s: &str) -> String {
    let mut out: Vec<char> = Vec::with_capacity(s.len());
    for c in s.chars() {
        let code = c as u32;
        if (0xFF61..=0xFF9F).contains(&code) {
            let full = FULL_KANA.chars().nth((code - 0xFF61) as usize).unwrap_or(c);
            if (full == '゛' || full == '゜') && !out.is_empty() {
                let prev = out[out.len() - 1];
                let (from, to) = if full == '゛' {
                    (VOICED_BASE, VOICED)
                } else {
                    (SEMI_BASE, SEMI)
                };
                if let Some(i) = from.chars().position(|b| b == prev)
                    && let Some(v) = to.chars().nth(i)
                {
                    let last = out.len() - 1;
                    out[last] = v;
                    continue;
                }
                if full == '゛' && prev == 'ウ' {
                    let last = out.len() - 1;
                    out[last] = 'ヴ';
                    continue;
                }
            }
            out.push(full);
        } else if c == ' ' {
            out.push('　');
        } else {
            out.push(c);
        }
    }
    out.into_iter().collect()
}

/// Kana confusions seen in real registration desks: voiced marks dropped or added, small vs
/// large kana, long-vowel spellings, similar shapes.
const TYPO_PAIRS: &[(char, char)] = &[
    ('ガ', 'カ'),
    ('ギ', 'キ'),
    ('グ', 'ク'),
    ('ゴ', 'コ'),
    ('ザ', 'サ'),
    ('ジ', 'シ'),
    ('ズ', 'ス'),
    ('ダ', 'タ'),
    ('ド', 'ト'),
    ('バ', 'ハ'),
    ('ブ', 'フ'),
    ('ョ', 'ヨ'),
    ('ュ', 'ユ'),
    ('ャ', 'ヤ'),
    ('ッ', 'ツ'),
    ('シ', 'ツ'),
    ('ソ', 'ン'),
    ('ウ', 'ー'),
    ('ワ', 'ハ'),
    ('ヲ', 'オ'),
    ('ヂ', 'ジ'),
    ('ヅ', 'ズ'),
];

/// The positions in `s` where a typo can be made.
fn typo_sites(chars: &[char]) -> Vec<usize> {
    chars
        .iter()
        .enumerate()
        .filter(|(_, c)| TYPO_PAIRS.iter().any(|(a, b)| a == *c || b == *c))
        .map(|(i, _)| i)
        .collect()
}

/// Makes one kana substitution, choosing the site with `pick(number_of_sites)`. Returns
/// `None` when the string has no substitutable kana.
pub fn kana_typo(s: &str, pick: impl FnOnce(usize) -> usize) -> Option<String> {
    let mut chars: Vec<char> = s.chars().collect();
    let sites = typo_sites(&chars);
    if sites.is_empty() {
        return None;
    }
    let at = sites[pick(sites.len()) % sites.len()];
    let c = chars[at];
    let replacement = TYPO_PAIRS
        .iter()
        .find_map(|&(a, b)| {
            if a == c {
                Some(b)
            } else if b == c {
                Some(a)
            } else {
                None
            }
        })
        .unwrap_or(c);
    chars[at] = replacement;
    Some(chars.into_iter().collect())
}

/// The variant group of `c`, if it has one.
pub fn variant_group(c: char) -> Option<&'static [char]> {
    VARIANT_KANJI.iter().copied().find(|g| g.contains(&c))
}

/// Replaces the first character of `s` that has variants by another member of its group
/// (chosen by `pick(group_len - 1)`). `None` when `s` has no such character.
pub fn variant_kanji(s: &str, pick: impl FnOnce(usize) -> usize) -> Option<String> {
    let mut chars: Vec<char> = s.chars().collect();
    let at = chars.iter().position(|&c| variant_group(c).is_some())?;
    let group = variant_group(chars[at])?;
    let others: Vec<char> = group.iter().copied().filter(|&g| g != chars[at]).collect();
    if others.is_empty() {
        return None;
    }
    chars[at] = others[pick(others.len()) % others.len()];
    Some(chars.into_iter().collect())
}

/// Substitutes `c` when `encodable` says the target charset lacks it: the common member of
/// its variant group if that one is encodable, else the geta mark 〓 (as legacy systems do).
fn fallback_char(c: char, encodable: &dyn Fn(char) -> bool) -> char {
    if let Some(g) = variant_group(c)
        && let Some(&common) = g.iter().find(|&&v| encodable(v))
    {
        return common;
    }
    '〓'
}

fn is_halfwidth_kana(c: char) -> bool {
    ('\u{FF61}'..='\u{FF9F}').contains(&c)
}

fn iso2022_encodable(c: char) -> bool {
    if c.is_ascii() {
        return true;
    }
    if is_halfwidth_kana(c) {
        return true;
    }
    // encoding_rs follows the WHATWG index, which also maps the NEC row 13 and the IBM
    // extension rows 89–92 (髙, 﨑 …) into ISO-2022-JP. Strict decoders reject those, so only
    // JIS X 0208 rows 1–84 (minus row 13) count as encodable here.
    let mut buf = [0u8; 4];
    let (bytes, _, had_errors) = encoding_rs::ISO_2022_JP.encode(c.encode_utf8(&mut buf));
    !had_errors && strict_jis_x_0208(&bytes)
}

fn sjis_encodable(c: char) -> bool {
    if c.is_ascii() {
        return true;
    }
    let mut buf = [0u8; 4];
    let (_, _, had_errors) = encoding_rs::SHIFT_JIS.encode(c.encode_utf8(&mut buf));
    !had_errors
}

/// Encodes text as ISO-2022-JP the way SS-MIX2 gateways write it: JIS X 0208 via
/// `ESC $ B`, half-width katakana via `ESC ( I` (kept, not widened, because real data
/// carries it and readers must cope), back to ASCII at the end. Characters outside the
/// charset fall back per [`fallback_char`].
pub fn encode_iso2022jp(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() * 2);
    let mut run = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if is_halfwidth_kana(c) {
            flush_iso(&mut run, &mut out);
            out.extend_from_slice(b"\x1b(I");
            out.push((c as u32 - 0xFF61 + 0x21) as u8);
            while let Some(&n) = chars.peek() {
                if !is_halfwidth_kana(n) {
                    break;
                }
                out.push((n as u32 - 0xFF61 + 0x21) as u8);
                chars.next();
            }
            out.extend_from_slice(b"\x1b(B");
        } else {
            run.push(c);
        }
    }
    flush_iso(&mut run, &mut out);
    out
}

/// True when every two-byte character in `ESC $ B` mode lies in JIS X 0208 rows 1–84
/// outside the NEC row 13 (see [`iso2022_encodable`]).
fn strict_jis_x_0208(bytes: &[u8]) -> bool {
    let mut i = 0;
    let mut jis = false;
    while i < bytes.len() {
        if bytes[i] == 0x1b && i + 2 < bytes.len() {
            jis = bytes[i + 1] == b'$';
            i += 3;
        } else if jis && i + 1 < bytes.len() {
            let row = bytes[i].wrapping_sub(0x20);
            if !(1..=84).contains(&row) || row == 13 {
                return false;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    true
}

fn flush_iso(run: &mut String, out: &mut Vec<u8>) {
    if run.is_empty() {
        return;
    }
    let (bytes, _, had_errors) = encoding_rs::ISO_2022_JP.encode(run);
    if had_errors || !strict_jis_x_0208(&bytes) {
        let fixed: String = run
            .chars()
            .map(|c| {
                if iso2022_encodable(c) {
                    c
                } else {
                    fallback_char(c, &iso2022_encodable)
                }
            })
            .collect();
        let (bytes, _, _) = encoding_rs::ISO_2022_JP.encode(&fixed);
        out.extend_from_slice(&bytes);
    } else {
        out.extend_from_slice(&bytes);
    }
    run.clear();
}

/// Encodes text as Shift_JIS (WHATWG Shift_JIS = Windows-31J/CP932, which includes the NEC
/// and IBM extensions such as 髙 and 﨑). Characters outside CP932 fall back.
pub fn encode_sjis(s: &str) -> Vec<u8> {
    let (bytes, _, had_errors) = encoding_rs::SHIFT_JIS.encode(s);
    if !had_errors {
        return bytes.into_owned();
    }
    let fixed: String = s
        .chars()
        .map(|c| {
            if sjis_encodable(c) {
                c
            } else {
                fallback_char(c, &sjis_encodable)
            }
        })
        .collect();
    encoding_rs::SHIFT_JIS.encode(&fixed).0.into_owned()
}

/// Full-width digits and hyphen, as many registration systems store addresses.
pub fn to_fullwidth_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap_or(c),
            '-' => '－',
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halfwidth_splits_voiced_marks_and_round_trips() {
        assert_eq!(to_halfwidth_kana("ワタナベ　ダイスケ"), "ﾜﾀﾅﾍﾞ ﾀﾞｲｽｹ");
        assert_eq!(to_halfwidth_kana("パン"), "ﾊﾟﾝ");
        for s in ["ワタナベ　ダイスケ", "キョウコ", "ヴィラ", "サトウ"] {
            assert_eq!(to_fullwidth_kana(&to_halfwidth_kana(s)), s);
        }
    }

    #[test]
    fn typo_changes_exactly_one_kana() {
        let t = kana_typo("サトウ", |_| 0).unwrap();
        assert_ne!(t, "サトウ");
        assert_eq!(t.chars().count(), 3);
        let diff = t
            .chars()
            .zip("サトウ".chars())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(diff, 1);
        assert!(kana_typo("ミミ", |_| 0).is_none());
    }

    #[test]
    fn variant_kanji_swaps_within_group() {
        assert_eq!(variant_kanji("高橋", |_| 0).unwrap(), "髙橋");
        let w = variant_kanji("渡辺", |n| n - 1).unwrap();
        assert_eq!(w, "渡邉");
        assert!(variant_kanji("田中", |_| 0).is_none());
    }

    #[test]
    fn iso2022jp_round_trip_of_a_name() {
        let name = "渡邊^太郎~ﾜﾀﾅﾍﾞ^ﾀﾛｳ~ワタナベ";
        let bytes = encode_iso2022jp(name);
        assert!(bytes.is_ascii(), "ISO-2022-JP is a 7-bit encoding");
        assert!(bytes.windows(3).any(|w| w == b"\x1b$B"));
        assert!(bytes.windows(3).any(|w| w == b"\x1b(I"));
        let (decoded, had_errors) = encoding_rs::ISO_2022_JP.decode_without_bom_handling(&bytes);
        assert!(!had_errors);
        assert_eq!(decoded, name);
    }

    #[test]
    fn iso2022jp_falls_back_for_chars_outside_jis_x_0208() {
        let bytes = encode_iso2022jp("髙橋 山﨑 𠮷田");
        let (decoded, had_errors) = encoding_rs::ISO_2022_JP.decode_without_bom_handling(&bytes);
        assert!(!had_errors);
        assert_eq!(decoded, "高橋 山崎 吉田");
    }

    #[test]
    fn sjis_keeps_cp932_extensions_and_falls_back_otherwise() {
        let bytes = encode_sjis("髙橋 𠮷田 ヤマダ");
        let (decoded, _, had_errors) = encoding_rs::SHIFT_JIS.decode(&bytes);
        assert!(!had_errors);
        assert_eq!(decoded, "髙橋 吉田 ヤマダ");
    }
}
