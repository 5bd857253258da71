//! HL7 v2.x tokenizer, tolerant of the way Japanese hospital systems actually write it.
//!
//! Why decode per segment line: ISO-2022-JP two-byte characters use bytes 0x21–0x7E, which
//! include `|`, `^`, `~`, `&` and `\`. Splitting before decoding would cut kanji in half, and
//! decoding the whole message at once lets one sender's missing `ESC ( B` swallow the rest of
//! the message (the WHATWG decoder drops a CR met in two-byte mode). CR and LF never occur
//! inside a JIS character, so we split raw bytes into lines first and decode each line with a
//! fresh decoder (which is also what the standard asks senders to do: return to ASCII before
//! every delimiter).

use encoding_rs::{ISO_2022_JP, SHIFT_JIS, UTF_8};

/// Why a byte sequence is not an HL7 v2 message. Messages never contain field values, so that
/// personal data cannot leak into logs through them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hl7Error {
    #[error("empty input: no HL7 segment")]
    Empty,
    #[error("not an HL7 v2 message: content does not start with an MSH segment ({0} bytes)")]
    NoMsh(usize),
    #[error("MSH segment has no field separator or encoding characters")]
    BadMsh,
    #[error(
        "segment {index} (line {line}) is not an HL7 segment: it does not start with a 3-character segment ID"
    )]
    BadSegment { index: usize, line: usize },
}

/// The character set a message was decoded from (MSH-18, or sniffed when MSH-18 lies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Ascii,
    Iso2022Jp,
    Utf8,
    ShiftJis,
}

/// Separators declared in MSH-1/MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delimiters {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: char,
    pub subcomponent: char,
}

impl Default for Delimiters {
    fn default() -> Self {
        Delimiters {
            field: '|',
            component: '^',
            repetition: '~',
            escape: '\\',
            subcomponent: '&',
        }
    }
}

/// One segment: its ID and raw (still escaped) fields. `fields[0]` is the segment ID; for MSH,
/// `fields[1]` is the field separator and `fields[2]` the encoding characters, so that field
/// numbers match the standard's (MSH-9 is `fields[9]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub id: String,
    pub fields: Vec<String>,
    /// 1-based line number inside the file.
    pub line: usize,
    delims: Delimiters,
}

/// A parsed HL7 v2 message.
#[derive(Debug, Clone, PartialEq)]
pub struct Hl7Message {
    pub segments: Vec<Segment>,
    pub delimiters: Delimiters,
    pub charset: Charset,
    /// Bytes that could not be decoded and were replaced by U+FFFD (stray bytes).
    pub decode_errors: usize,
}

impl Segment {
    /// Raw field `n` (standard numbering), empty when absent.
    pub fn raw(&self, n: usize) -> &str {
        self.fields.get(n).map(String::as_str).unwrap_or("")
    }

    /// The repetitions of field `n`, raw.
    pub fn reps(&self, n: usize) -> Vec<&str> {
        let raw = self.raw(n);
        if self.id == "MSH" && n <= 2 {
            return vec![raw];
        }
        raw.split(self.delims.repetition).collect()
    }

    /// Component `c` (1-based) of repetition `r` (0-based) of field `n`, unescaped and trimmed.
    pub fn rc(&self, n: usize, r: usize, c: usize) -> String {
        let reps = self.reps(n);
        let Some(rep) = reps.get(r) else {
            return String::new();
        };
        comp_of(rep, self.delims, c)
    }

    /// Component `c` of the first repetition of field `n`.
    pub fn c(&self, n: usize, c: usize) -> String {
        self.rc(n, 0, c)
    }

    /// The whole first repetition of field `n` as text (components joined by `^` is not
    /// useful for values, so this returns component 1 when there are several).
    pub fn f(&self, n: usize) -> String {
        self.c(n, 1)
    }

    /// Subcomponent `s` of component `c` of repetition `r` of field `n`.
    pub fn sub(&self, n: usize, r: usize, c: usize, s: usize) -> String {
        let reps = self.reps(n);
        let Some(rep) = reps.get(r) else {
            return String::new();
        };
        let comp = rep
            .split(self.delims.component)
            .nth(c.saturating_sub(1))
            .unwrap_or("");
        let sc = comp
            .split(self.delims.subcomponent)
            .nth(s.saturating_sub(1))
            .unwrap_or("");
        unescape(sc, self.delims).trim().to_string()
    }

    /// The delimiters in force for this segment.
    pub fn delimiters(&self) -> Delimiters {
        self.delims
    }
}

/// Component `c` (1-based) of one raw repetition, with subcomponents kept as written but
/// unescaped.
pub fn comp_of(rep: &str, d: Delimiters, c: usize) -> String {
    let comp = rep
        .split(d.component)
        .nth(c.saturating_sub(1))
        .unwrap_or("");
    // A component's first subcomponent is the value in every data type we read; keep the
    // rest only when the first is empty (`&text&system` style used by some senders).
    let mut subs = comp.split(d.subcomponent);
    let first = subs.next().unwrap_or("");
    unescape(first, d).trim().to_string()
}

/// Resolves HL7 escape sequences: `\F\ \S\ \T\ \R\ \E\`, `\Xhh..\`, `\.br\`; drops the
/// formatting and character-set escapes (`\H\ \N\ \Cxxyy\ \Mxxyyzz\ \Z..\`) that carry no text.
/// An unterminated escape is kept literally (lenient).
pub fn unescape(s: &str, d: Delimiters) -> String {
    if !s.contains(d.escape) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(d.escape) {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + d.escape.len_utf8()..];
        let Some(end) = after.find(d.escape) else {
            out.push_str(&rest[pos..]);
            return out;
        };
        let code = &after[..end];
        match code {
            "F" => out.push(d.field),
            "S" => out.push(d.component),
            "T" => out.push(d.subcomponent),
            "R" => out.push(d.repetition),
            "E" => out.push(d.escape),
            ".br" => out.push('\n'),
            _ if code.starts_with('X') || code.starts_with('x') => {
                let hex = &code[1..];
                let bytes: Vec<u8> = (0..hex.len() / 2)
                    .filter_map(|i| hex.get(2 * i..2 * i + 2))
                    .filter_map(|h| u8::from_str_radix(h, 16).ok())
                    .collect();
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
            _ => {}
        }
        rest = &after[end + d.escape.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// Splits raw file bytes into messages (a new message starts at every `MSH` line). SS-MIX2
/// stores one message per file, but batch files and broken exports carry several.
pub fn split_messages(bytes: &[u8]) -> Vec<(usize, Vec<&[u8]>)> {
    let lines = split_lines(bytes);
    let mut out: Vec<(usize, Vec<&[u8]>)> = Vec::new();
    for (lineno, line) in lines {
        let is_msh = line.starts_with(b"MSH") || strip_bom(line).starts_with(b"MSH");
        if is_msh || out.is_empty() {
            out.push((lineno, vec![line]));
        } else if let Some(last) = out.last_mut() {
            last.1.push(line);
        }
    }
    out
}

fn strip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(b)
}

/// Raw lines with their 1-based line numbers; empty lines dropped. CR is the HL7 segment
/// terminator; LF and CRLF are accepted when the file has no bare CR.
fn split_lines(bytes: &[u8]) -> Vec<(usize, &[u8])> {
    let has_cr = bytes.contains(&b'\r');
    let sep = if has_cr { b'\r' } else { b'\n' };
    let mut out = Vec::new();
    for (i, mut line) in bytes.split(|b| *b == sep).enumerate() {
        // LF of a CRLF pair, and MLLP framing bytes (VT 0x0B, FS 0x1C), SUB (0x1A) and NUL
        // that exports leave around messages, are not content.
        let junk = |b: &u8| matches!(*b, b'\n' | 0x0B | 0x1C | 0x1A | 0x00);
        while let Some((first, rest)) = line.split_first().filter(|(f, _)| junk(f)) {
            let _ = first;
            line = rest;
        }
        while let Some((_, rest)) = line.split_last().filter(|(l, _)| junk(l)) {
            line = rest;
        }
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        out.push((i + 1, line));
    }
    out
}

/// Reads MSH-18 from the raw MSH line (ASCII) and maps its many spellings.
fn charset_from_msh(msh: &[u8]) -> Option<Charset> {
    let fs = *msh.get(3)?;
    let field = msh.split(|b| *b == fs).nth(17)?;
    let norm: String = String::from_utf8_lossy(field)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_uppercase();
    if norm.contains("IR87") || norm.contains("IR159") || norm.contains("2022") {
        Some(Charset::Iso2022Jp)
    } else if norm.contains("UTF8") || norm.contains("UNICODE") {
        Some(Charset::Utf8)
    } else if norm.contains("SJIS") || norm.contains("SHIFTJIS") || norm.contains("CP932") {
        Some(Charset::ShiftJis)
    } else if norm.contains("IR6") || norm.contains("ASCII") {
        Some(Charset::Ascii)
    } else {
        None
    }
}

fn decode_line(line: &[u8], cs: Charset) -> (String, usize) {
    let enc = if line.contains(&0x1B) {
        // An escape sequence is only meaningful as ISO-2022-JP, whatever MSH-18 claims.
        ISO_2022_JP
    } else {
        match cs {
            Charset::Iso2022Jp | Charset::Ascii | Charset::Utf8 => UTF_8,
            Charset::ShiftJis => SHIFT_JIS,
        }
    };
    let (text, had_errors) = enc.decode_without_bom_handling(line);
    if had_errors && enc == UTF_8 && cs != Charset::Utf8 {
        // Not UTF-8 and no escapes: a Shift_JIS export mislabelled as ISO-2022-JP is common.
        let (sj, sj_err) = SHIFT_JIS.decode_without_bom_handling(line);
        if !sj_err {
            return (sj.into_owned(), 0);
        }
    }
    let errs = if had_errors {
        text.chars().filter(|c| *c == '\u{FFFD}').count().max(1)
    } else {
        0
    };
    (text.into_owned(), errs)
}

/// Parses one HL7 v2 message. Never panics, whatever the bytes (fuzzed by proptest).
/// The first segment must be MSH (after an optional BOM and leading whitespace); any further
/// `MSH` line is treated as a segment of this message — use [`split_messages`] first when a
/// file may hold several messages.
pub fn parse_hl7_message(bytes: &[u8]) -> Result<Hl7Message, Hl7Error> {
    let lines = split_lines(bytes);
    let lines: Vec<(usize, &[u8])> = lines
        .into_iter()
        .map(|(n, l)| (n, strip_bom(trim_ascii_start(l))))
        .collect();
    let Some(&(_, first)) = lines.first() else {
        return Err(Hl7Error::Empty);
    };
    if !first.starts_with(b"MSH") {
        return Err(Hl7Error::NoMsh(bytes.len()));
    }
    if first.len() < 8 {
        return Err(Hl7Error::BadMsh);
    }
    let charset = charset_from_msh(first).unwrap_or(Charset::Iso2022Jp);
    let (msh_text, _) = decode_line(first, charset);
    let chars: Vec<char> = msh_text.chars().take(8).collect();
    let field = chars.get(3).copied().ok_or(Hl7Error::BadMsh)?;
    let enc: Vec<char> = chars[4..]
        .iter()
        .copied()
        .take_while(|c| *c != field)
        .collect();
    if field.is_alphanumeric() || field.is_whitespace() || enc.len() < 2 {
        return Err(Hl7Error::BadMsh);
    }
    let delims = Delimiters {
        field,
        component: enc[0],
        repetition: enc[1],
        escape: enc.get(2).copied().unwrap_or('\\'),
        subcomponent: enc.get(3).copied().unwrap_or('&'),
    };
    let mut segments = Vec::with_capacity(lines.len());
    let mut decode_errors = 0;
    for (index, (lineno, raw)) in lines.iter().enumerate() {
        let (text, errs) = decode_line(raw, charset);
        decode_errors += errs;
        let text = text.trim_end_matches(['\r', '\n']);
        let id: String = text.chars().take(3).collect();
        let valid_id = id.chars().count() == 3
            && id
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && id.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && text.chars().nth(3).is_none_or(|c| c == delims.field);
        if !valid_id {
            return Err(Hl7Error::BadSegment {
                index: index + 1,
                line: *lineno,
            });
        }
        let mut fields: Vec<String> = text.split(delims.field).map(str::to_string).collect();
        if id == "MSH" {
            // MSH-1 is the separator itself: shift so that numbering matches the standard.
            fields.insert(1, delims.field.to_string());
        }
        segments.push(Segment {
            id,
            fields,
            line: *lineno,
            delims,
        });
    }
    Ok(Hl7Message {
        segments,
        delimiters: delims,
        charset,
        decode_errors,
    })
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

impl Hl7Message {
    /// The first segment with this ID.
    pub fn first(&self, id: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.id == id)
    }

    /// The MSH segment (always the first).
    pub fn msh(&self) -> Option<&Segment> {
        self.segments.first().filter(|s| s.id == "MSH")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jis(s: &str) -> Vec<u8> {
        let (b, _, _) = ISO_2022_JP.encode(s);
        b.into_owned()
    }

    #[test]
    fn decodes_iso2022jp_kanji_name_with_msh18_variants() {
        for msh18 in [
            "~ISO IR87",
            "ISO IR87",
            "ISOIR87",
            "ISO IR6",
            "",
            "UNICODE UTF-8",
        ] {
            let mut bytes =
                format!("MSH|^~\\&|A|B|C|D|20200101||ADT^A08|1|P|2.5||||||{msh18}\r").into_bytes();
            bytes.extend(b"PID|1||123^^^^PI||");
            bytes.extend(jis("山田^太郎"));
            bytes.extend(b"^^^^^L^I~");
            bytes.extend(jis("ヤマダ^タロウ"));
            bytes.extend(b"^^^^^L^P||19650415|M\r");
            let m = parse_hl7_message(&bytes).unwrap();
            let pid = m.first("PID").unwrap();
            assert_eq!(pid.rc(5, 0, 1), "山田", "MSH-18 {msh18:?}");
            assert_eq!(pid.rc(5, 1, 2), "タロウ");
            assert_eq!(pid.c(3, 1), "123");
            assert_eq!(m.decode_errors, 0);
        }
    }

    #[test]
    fn jis_bytes_that_look_like_delimiters_do_not_split_fields() {
        // 「｜」 and many kanji contain 0x7C / 0x5E / 0x7E bytes in JIS X 0208.
        let name = "藤澤^瀧";
        let raw = jis(name);
        let mut bytes = b"MSH|^~\\&|||||||ADT^A08|1|P|2.5||||||ISO IR87\rPID|1||9||".to_vec();
        bytes.extend(&raw);
        bytes.extend(b"|X\r");
        let m = parse_hl7_message(&bytes).unwrap();
        let pid = m.first("PID").unwrap();
        assert_eq!(pid.c(5, 1), "藤澤");
        assert_eq!(pid.c(5, 2), "瀧");
        assert_eq!(pid.f(6), "X");
    }

    #[test]
    fn hl7_escape_sequences_are_resolved() {
        let d = Delimiters::default();
        assert_eq!(unescape(r"A\F\B\S\C\T\D\R\E\E\", d), "A|B^C&D~E\\");
        assert_eq!(unescape(r"line1\.br\line2", d), "line1\nline2");
        assert_eq!(unescape(r"\X41\\H\bold\N\", d), "Abold");
        assert_eq!(unescape(r"open \F", d), "open \\F");
        let m = parse_hl7_message(b"MSH|^~\\&|||||||ORU^R01|1|P|2.5\rOBX|1|TX|X||a\\S\\b\\F\\c|\r")
            .unwrap();
        assert_eq!(m.first("OBX").unwrap().c(5, 1), "a^b|c");
    }

    #[test]
    fn lf_and_crlf_segment_separators() {
        for sep in ["\n", "\r\n", "\r"] {
            let s = format!("MSH|^~\\&|||||||ADT^A08|1|P|2.5{sep}PID|1||42{sep}{sep}");
            let m = parse_hl7_message(s.as_bytes()).unwrap();
            assert_eq!(m.segments.len(), 2);
            assert_eq!(m.first("PID").unwrap().f(3), "42");
        }
    }

    #[test]
    fn msh_numbering_matches_the_standard() {
        let m =
            parse_hl7_message(b"MSH|^~\\&|APP|FAC|||20111220||ADT^A08^ADT_A01|7|P|2.5\r").unwrap();
        let msh = m.msh().unwrap();
        assert_eq!(msh.raw(1), "|");
        assert_eq!(msh.raw(2), "^~\\&");
        assert_eq!(msh.c(9, 1), "ADT");
        assert_eq!(msh.f(7), "20111220");
        assert_eq!(msh.f(12), "2.5");
    }

    #[test]
    fn non_hl7_bytes_are_rejected_precisely() {
        assert_eq!(parse_hl7_message(&[0xFB, 0xFC]), Err(Hl7Error::NoMsh(2)));
        assert_eq!(parse_hl7_message(b""), Err(Hl7Error::Empty));
        assert_eq!(parse_hl7_message(b"MSH"), Err(Hl7Error::BadMsh));
        assert!(matches!(
            parse_hl7_message(b"MSH|^~\\&|a\rthis is not a segment\r"),
            Err(Hl7Error::BadSegment { index: 2, line: 2 })
        ));
    }

    #[test]
    fn stray_bytes_are_replaced_and_counted() {
        let mut bytes = b"MSH|^~\\&|||||||ADT^A08|1|P|2.5||||||ISO IR87\rPID|1||9||".to_vec();
        bytes.extend(jis("山田"));
        bytes.extend([0xFF, b'|', b'\r']);
        let m = parse_hl7_message(&bytes).unwrap();
        assert_eq!(m.first("PID").unwrap().c(5, 1), "山田\u{FFFD}");
        assert_eq!(m.decode_errors, 1);
    }
}
