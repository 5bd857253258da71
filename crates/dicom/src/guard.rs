//! A structural pre-check run before dicom-rs sees the bytes. dicom-rs allocates a value's
//! buffer from its declared length before reading it, so a corrupt or hostile length
//! (0xFFFFFFF0 in a 2 KiB file) would allocate gigabytes, and deep nesting recurses without a
//! bound. This walker only checks that every declared length fits in the bytes left and that
//! nesting stays shallow; anything else it does not understand is left to dicom-rs, which
//! returns a typed error.

use dicom_core::Tag;
use dicom_core::VR;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_dictionary_std::StandardDataDictionary;

/// Deeper nesting than this is refused (real objects nest a handful of levels).
const MAX_DEPTH: usize = 32;

#[derive(Clone, Copy)]
struct Layout {
    explicit: bool,
    big: bool,
}

/// A structural problem: the tag (when known) and a reason without values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardError {
    pub tag: Option<(u16, u16)>,
    pub reason: &'static str,
}

type R<T> = Result<T, GuardError>;

const UNDEFINED: u32 = 0xFFFF_FFFF;

fn u16_at(b: &[u8], p: usize, big: bool) -> Option<u16> {
    let s: [u8; 2] = b.get(p..p + 2)?.try_into().ok()?;
    Some(if big {
        u16::from_be_bytes(s)
    } else {
        u16::from_le_bytes(s)
    })
}

fn u32_at(b: &[u8], p: usize, big: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(p..p + 4)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    })
}

/// The 2-byte-length VRs of PS3.5 Table 7.1-2.
fn short_length_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// Whether the header of an explicit-VR element carries a 4-byte length. A VR that is not
/// in the standard is read as UN by dicom-rs, with UN's 4-byte length: the guard must read
/// the same length the parser will (found by fuzzing: a bogus VR made the two disagree, and
/// dicom-rs then zero-filled a multi-gigabyte value).
fn long_length_vr(vr: &[u8]) -> bool {
    // OB, OD, OF, OL, OV, OW, SQ, SV, UC, UN, UR, UT, UV, and anything unknown.
    !short_length_vr(vr)
}

fn dictionary_says_sequence(tag: (u16, u16)) -> bool {
    StandardDataDictionary
        .by_tag(Tag(tag.0, tag.1))
        .is_some_and(|e| matches!(e.vr(), VirtualVr::Exact(VR::SQ)))
}

/// Checks a whole file image: optional preamble, `DICM`, file meta group (explicit VR little
/// endian) and the data set in the declared transfer syntax; or a bare data set.
pub fn check(bytes: &[u8]) -> R<()> {
    let start = if bytes.get(128..132) == Some(b"DICM") {
        132
    } else if bytes.starts_with(b"DICM") {
        4
    } else {
        // No meta: guess the encoding like the reader does.
        let layout = guess_layout(bytes);
        return walk(bytes, 0, bytes.len(), layout, 0).map(|_| ());
    };
    // File meta group.
    let meta = Layout {
        explicit: true,
        big: false,
    };
    let mut p = start;
    let mut ts: Option<String> = None;
    while u16_at(bytes, p, false) == Some(0x0002) {
        let Some((tag, vr, len, hdr)) = header(bytes, p, meta) else {
            return Ok(());
        };
        if len == UNDEFINED || len as usize > bytes.len().saturating_sub(p + hdr) {
            return Err(GuardError {
                tag: Some(tag),
                reason: "declared length exceeds the bytes left in the file meta group",
            });
        }
        if tag == (0x0002, 0x0010) && vr != Some(*b"SQ") {
            let v = &bytes[p + hdr..p + hdr + len as usize];
            ts = Some(
                String::from_utf8_lossy(v)
                    .trim_end_matches(['\0', ' '])
                    .to_string(),
            );
        }
        p += hdr + len as usize;
    }
    let layout = match ts.as_deref() {
        Some("1.2.840.10008.1.2") => Layout {
            explicit: false,
            big: false,
        },
        Some("1.2.840.10008.1.2.2") => Layout {
            explicit: true,
            big: true,
        },
        // Deflated data sets cannot be walked before inflating; dicom-rs (built without
        // deflate) refuses them with a typed error.
        Some("1.2.840.10008.1.2.1.99") => return Ok(()),
        _ => Layout {
            explicit: true,
            big: false,
        },
    };
    walk(bytes, p, bytes.len(), layout, 0).map(|_| ())
}

/// Explicit or implicit, little or big endian, from the first element of a bare data set.
fn guess_layout(bytes: &[u8]) -> Layout {
    let le = u16_at(bytes, 0, false).unwrap_or(0);
    let be = u16_at(bytes, 0, true).unwrap_or(0);
    let big = be < le;
    let explicit = bytes
        .get(4..6)
        .is_some_and(|v| v.iter().all(u8::is_ascii_uppercase));
    Layout { explicit, big }
}

/// An element header: tag, explicit VR (if any), length, header size.
type Header = ((u16, u16), Option<[u8; 2]>, u32, usize);

/// Decodes an element header at `p`.
fn header(b: &[u8], p: usize, l: Layout) -> Option<Header> {
    let g = u16_at(b, p, l.big)?;
    let e = u16_at(b, p + 2, l.big)?;
    if g == 0xFFFE || !l.explicit {
        return Some(((g, e), None, u32_at(b, p + 4, l.big)?, 8));
    }
    let vr: [u8; 2] = b.get(p + 4..p + 6)?.try_into().ok()?;
    if long_length_vr(&vr) {
        Some(((g, e), Some(vr), u32_at(b, p + 8, l.big)?, 12))
    } else {
        Some(((g, e), Some(vr), u32::from(u16_at(b, p + 6, l.big)?), 8))
    }
}

/// Walks a data set in `[p, end)`; returns where it stopped (after an item delimiter when the
/// data set is an undefined-length item).
fn walk(b: &[u8], mut p: usize, end: usize, l: Layout, depth: usize) -> R<usize> {
    if depth > MAX_DEPTH {
        return Err(GuardError {
            tag: None,
            reason: "sequences nested too deeply",
        });
    }
    while p + 8 <= end {
        let Some((tag, vr, len, hdr)) = header(b, p, l) else {
            return Ok(end);
        };
        if tag.0 == 0xFFFE {
            if depth == 0 {
                // Outside any sequence an item or delimiter tag is corrupt. Stopping here
                // would leave the rest unchecked while dicom-rs reads on (found by fuzzing:
                // a stray delimiter hid a multi-gigabyte OB length behind it).
                return Err(GuardError {
                    tag: Some(tag),
                    reason: "item or delimiter tag outside a sequence",
                });
            }
            // An item or sequence delimiter ends this (undefined-length) data set.
            return Ok(p + 8);
        }
        let body = p + hdr;
        let is_seq = match vr {
            Some(v) => &v == b"SQ" || (&v == b"UN" && len == UNDEFINED),
            None => tag != (0x7FE0, 0x0010) && (len == UNDEFINED || dictionary_says_sequence(tag)),
        };
        if len == UNDEFINED
            && let Some(v) = vr
        {
            {
                let ok = &v == b"SQ" || ((&v == b"OB" || &v == b"OW") && tag == (0x7FE0, 0x0010));
                if !ok {
                    // Undefined length is legal only for sequences and encapsulated pixel
                    // data. dicom-rs reads anything else (including UN sequences, PS3.5
                    // §6.2.2) as a 4 GiB value: measured, tens of seconds of zero-filling.
                    return Err(GuardError {
                        tag: Some(tag),
                        reason: "undefined length on an attribute that is not a sequence or pixel data (UN sequences are not supported)",
                    });
                }
            }
        }
        if len == UNDEFINED
            && vr.is_none()
            && tag.0 % 2 == 0
            && tag != (0x7FE0, 0x0010)
            && !dictionary_says_sequence(tag)
        {
            // Implicit VR: dicom-rs reads an undefined length on a standard (even-group) tag
            // its dictionary does not know as a sequence as a 4 GiB UN value (found by
            // fuzzing), so the guard must not take it for a sequence and walk on. Private
            // tags with undefined length are read as sequences (a real sample has one).
            return Err(GuardError {
                tag: Some(tag),
                reason: "undefined length on an attribute that is not a known sequence or pixel data (implicit VR)",
            });
        }
        let is_fragments = len == UNDEFINED && !is_seq;
        // The content of a UN sequence is encoded implicit VR little endian (PS3.5 §6.2.2).
        let inner = if vr == Some(*b"UN") {
            Layout {
                explicit: false,
                big: false,
            }
        } else {
            l
        };
        if len == UNDEFINED {
            p = items(b, body, end, inner, depth, tag, is_fragments)?;
        } else {
            let len = len as usize;
            if len > end.saturating_sub(body) {
                return Err(GuardError {
                    tag: Some(tag),
                    reason: "declared length exceeds the bytes left",
                });
            }
            if is_seq {
                items(b, body, body + len, l, depth, tag, false)?;
            }
            p = body + len;
        }
    }
    Ok(end)
}

/// Walks the items of a sequence (or the fragments of encapsulated pixel data) from `p`;
/// returns the position after the sequence delimiter (or `end`).
fn items(
    b: &[u8],
    mut p: usize,
    end: usize,
    l: Layout,
    depth: usize,
    owner: (u16, u16),
    fragments: bool,
) -> R<usize> {
    while p + 8 <= end {
        let (Some(g), Some(e), Some(len)) = (
            u16_at(b, p, l.big),
            u16_at(b, p + 2, l.big),
            u32_at(b, p + 4, l.big),
        ) else {
            return Ok(end);
        };
        if g != 0xFFFE {
            // Not an item: dicom-rs will report the malformed sequence.
            return Ok(end);
        }
        match e {
            0xE0DD => return Ok(p + 8),
            0xE000 if len == UNDEFINED && !fragments => {
                p = walk(b, p + 8, end, l, depth + 1)?;
            }
            0xE000 if len != UNDEFINED => {
                let len = len as usize;
                if len > end.saturating_sub(p + 8) {
                    return Err(GuardError {
                        tag: Some(owner),
                        reason: "declared item length exceeds the bytes left",
                    });
                }
                if !fragments {
                    walk(b, p + 8, p + 8 + len, l, depth + 1)?;
                }
                p += 8 + len;
            }
            _ => return Ok(end),
        }
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_declared_length_is_refused() {
        // (0010,0010) PN, explicit VR LE, 16-bit length 0xFFFF in an 8-byte file.
        let b = [0x10, 0x00, 0x10, 0x00, b'P', b'N', 0xFF, 0xFF, b'A'];
        let e = check(&b).unwrap_err();
        assert_eq!(e.tag, Some((0x0010, 0x0010)));
        // Implicit VR, 32-bit length.
        let b = [0x10, 0x00, 0x10, 0x00, 0xF0, 0xFF, 0xFF, 0xFF, b'A'];
        assert!(check(&b).is_err());
    }

    #[test]
    fn a_stray_delimiter_does_not_hide_what_follows() {
        // (0008,0005) CS "ISO_IR 100", then an item delimiter outside any sequence, then an
        // OB whose 4-byte length far exceeds the file (fuzzing: dicom-rs read on past the
        // delimiter and zero-filled gigabytes while the guard had stopped at it).
        let mut b = vec![0x08, 0x00, 0x05, 0x00, b'C', b'S', 10, 0];
        b.extend_from_slice(b"ISO_IR 100");
        b.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        b.extend_from_slice(&[
            0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0, 0xF0, 0xFF, 0xFF, 0x7F,
        ]);
        let e = check(&b).unwrap_err();
        assert_eq!(e.tag, Some((0xFFFE, 0xE00D)));
    }

    #[test]
    fn implicit_undefined_length_on_an_unknown_standard_tag_is_refused() {
        // (0012,5500) implicit VR little endian, undefined length, then garbage, no item.
        let mut b = vec![0x12, 0x00, 0x00, 0x55, 0xFF, 0xFF, 0xFF, 0xFF];
        b.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x44, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(check(&b).unwrap_err().tag, Some((0x0012, 0x5500)));
        // A known sequence, (0008,1140), with one empty item and a delimiter, is fine.
        let mut b = vec![0x08, 0x00, 0x40, 0x11, 0xFF, 0xFF, 0xFF, 0xFF];
        b.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        assert_eq!(check(&b), Ok(()));
    }

    #[test]
    fn deep_nesting_is_refused() {
        // (0008,1140) SQ undefined length, item undefined length, repeated.
        let mut b = Vec::new();
        for _ in 0..100 {
            b.extend_from_slice(&[
                0x08, 0x00, 0x40, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
            ]);
            b.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        assert_eq!(check(&b).unwrap_err().reason, "sequences nested too deeply");
    }
}
