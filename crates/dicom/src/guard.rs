//! A structural pre-check run before dicom-rs sees the bytes.
//!
//! dicom-rs allocates a value's buffer from its declared length before it reads the value (it
//! zero-fills a `SmallVec` to that length), so a corrupt or hostile length (0xFFFFFFF0 in a
//! 2 KiB file) would allocate gigabytes, and deep nesting recurses without a bound.
//!
//! The one rule: **every length dicom-rs allocates from must fit in the bytes left in the
//! input, and in every enclosing item or sequence of defined length.** That rule only holds
//! if the guard finds the same length fields dicom-rs reads. Earlier versions walked the data
//! set their own way and fuzzing kept finding places where the two parted (an unknown VR, a
//! stray delimiter, nested items, the transfer syntax); so the walk below is a replay of
//! dicom-rs 0.10's own readers, step by step:
//!
//! * the file meta group as `FileMetaTable::read_from` reads it: bounded by the File Meta
//!   Information Group Length (0002,0000), not by where group 0002 ends;
//! * the transfer syntax looked up in the same registry, with the same trimming;
//! * the data set as the token reader `DataSetReader` reads it: its sequence/item stack,
//!   closing defined-length items by its own position count (which runs ahead of the bytes it
//!   really consumed for AT/US/UL/FD… values of odd sizes), element-level item tags read as
//!   values, undefined lengths read as sequences, encapsulated pixel data fragments and the
//!   basic offset table; VRs of implicit-VR data from the same dictionary.
//!
//! Where dicom-rs would stop with an error the replay stops too and passes the input on
//! (dicom-rs then returns its typed error); where the object builder on top of the token
//! reader would stop, the replay goes on, which can only refuse more. Two refusals are policy,
//! not memory: nesting deeper than [`MAX_DEPTH`], and undefined length on an element that is
//! neither a sequence nor pixel data in explicit VR (a UN sequence, which dicom-rs reads with
//! the outer explicit VR although PS3.5 §6.2.2 encodes its content in implicit VR).
//!
//! The replay follows dicom-rs 0.10.1 (Cargo.lock); a dicom-rs upgrade must re-check it
//! against `dicom-parser/src/dataset/read.rs` and `dicom-object/src/meta.rs`.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_encoding::Codec;
use dicom_encoding::Endianness;
use dicom_encoding::transfer_syntax::{TransferSyntax, TransferSyntaxIndex};
use dicom_transfer_syntax_registry::{TransferSyntaxRegistry, entries};

/// Deeper nesting of sequences than this is refused (real objects nest a handful of levels;
/// dicom-rs builds nested items recursively).
pub const MAX_DEPTH: usize = 32;

/// A structural problem: the tag (when known) and a reason without values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardError {
    pub tag: Option<(u16, u16)>,
    pub reason: &'static str,
}

type R<T> = Result<T, GuardError>;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const PIXEL_DATA: (u16, u16) = (0x7FE0, 0x0010);
const ITEM: (u16, u16) = (0xFFFE, 0xE000);
const ITEM_END: (u16, u16) = (0xFFFE, 0xE00D);
const SEQUENCE_END: (u16, u16) = (0xFFFE, 0xE0DD);

fn err<T>(tag: (u16, u16), reason: &'static str) -> R<T> {
    Err(GuardError {
        tag: Some(tag),
        reason,
    })
}

/// How the data set's element headers are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    explicit: bool,
    big: bool,
}

const META: Layout = Layout {
    explicit: true,
    big: false,
};

impl Layout {
    /// The layout dicom-rs decodes a data set of this transfer syntax with; `None` when
    /// dicom-rs does not decode the data set itself (deflated: kiban links dicom-rs without
    /// inflate, so dicom-rs refuses it; were inflate linked, the inflated bytes could not be
    /// checked here, so the guard refuses them instead).
    fn of(ts: &TransferSyntax) -> R<Option<Layout>> {
        match ts.codec() {
            Codec::Dataset(None) => Ok(None),
            Codec::Dataset(Some(_)) => Err(GuardError {
                tag: None,
                reason: "compressed data sets cannot be checked before reading",
            }),
            _ => Ok(Some(Layout {
                // dicom-rs has one implicit-VR decoder, for Implicit VR Little Endian.
                explicit: ts.uid() != entries::IMPLICIT_VR_LITTLE_ENDIAN.uid(),
                big: ts.endianness() == Endianness::Big,
            })),
        }
    }
}

fn u16_at(b: &[u8], p: usize, big: bool) -> Option<u16> {
    let s: [u8; 2] = b.get(p..p.checked_add(2)?)?.try_into().ok()?;
    Some(if big {
        u16::from_be_bytes(s)
    } else {
        u16::from_le_bytes(s)
    })
}

fn u32_at(b: &[u8], p: usize, big: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(p..p.checked_add(4)?)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    })
}

/// An element header as dicom-rs decodes it.
#[derive(Clone, Copy, Debug)]
struct Header {
    tag: (u16, u16),
    vr: VR,
    len: u32,
    size: usize,
}

/// The element header at `p`, decoded like dicom-rs's explicit/implicit VR decoders; `None`
/// where they fail (too few bytes left).
fn element_header(b: &[u8], p: usize, l: Layout) -> Option<Header> {
    let g = u16_at(b, p, l.big)?;
    let e = u16_at(b, p + 2, l.big)?;
    let tag = (g, e);
    if !l.explicit {
        // Implicit VR: the VR comes from the dictionary, OW for pixel and overlay data.
        let len = u32_at(b, p + 4, l.big)?;
        let vr = if tag == PIXEL_DATA || (g >> 8 == 0x60 && e == 0x3000) {
            VR::OW
        } else {
            StandardDataDictionary
                .by_tag(Tag(g, e))
                .map(|entry| entry.vr().relaxed())
                .unwrap_or(VR::UN)
        };
        return Some(Header {
            tag,
            vr,
            len,
            size: 8,
        });
    }
    if g == 0xFFFE {
        // Item and delimiter tags carry no VR, in either VR encoding.
        let len = u32_at(b, p + 4, l.big)?;
        return Some(Header {
            tag,
            vr: VR::UN,
            len,
            size: 8,
        });
    }
    let raw: [u8; 2] = b.get(p + 4..p + 6)?.try_into().ok()?;
    // A VR dicom-rs does not know is read as UN, with UN's 4-byte length (fuzzing: a bogus
    // VR once made the guard and dicom-rs read different length fields).
    let vr = VR::from_binary(raw).unwrap_or(VR::UN);
    if short_length(vr) {
        let len = u32::from(u16_at(b, p + 6, l.big)?);
        Some(Header {
            tag,
            vr,
            len,
            size: 8,
        })
    } else {
        let len = u32_at(b, p + 8, l.big)?;
        Some(Header {
            tag,
            vr,
            len,
            size: 12,
        })
    }
}

/// The VRs with a 2-byte length in explicit VR (PS3.5 Table 7.1-2, as dicom-rs lists them).
fn short_length(vr: VR) -> bool {
    use VR::*;
    matches!(
        vr,
        AE | AS
            | AT
            | CS
            | DA
            | DS
            | DT
            | FL
            | FD
            | IS
            | LO
            | LT
            | PN
            | SH
            | SL
            | SS
            | ST
            | TM
            | UI
            | UL
            | US
    )
}

/// How many bytes dicom-rs really reads for a value of `len` bytes: fixed-size binary VRs
/// read whole numbers only (`len >> 2` u32s…), while its position count still advances by
/// `len`. The difference matters for where the next header is read.
fn consumed(vr: VR, len: u32) -> u32 {
    use VR::*;
    match vr {
        AT | FL | OF | SL | OL | UL => len & !3,
        US | SS | OW => len & !1,
        FD | OD | SV | OV | UV => len & !7,
        _ => len,
    }
}

/// An item/sequence header read where dicom-rs expects one; `None` where it fails.
fn item_header(b: &[u8], p: usize, l: Layout) -> Option<((u16, u16), u32)> {
    Some((
        (u16_at(b, p, l.big)?, u16_at(b, p + 2, l.big)?),
        u32_at(b, p + 4, l.big)?,
    ))
}

/// Checks a whole file image as kiban hands it to dicom-rs (see `read::open_dicom_bytes`):
/// `DICM` at 0 (no preamble), or at 128 after a preamble, then the file meta group and the
/// data set in the transfer syntax it declares; or else a bare data set.
pub fn check(bytes: &[u8]) -> R<()> {
    // Same order as the reader: a file starting with DICM is read without preamble even if
    // bytes 128..132 also say DICM.
    let magic = if bytes.starts_with(b"DICM") {
        0
    } else if bytes.get(128..132) == Some(b"DICM") {
        128
    } else {
        let Some(ts) = crate::read::bare_transfer_syntax(bytes) else {
            return Ok(());
        };
        return match Layout::of(&ts)? {
            Some(l) => DataSet::new(bytes, 0, l).read(),
            None => Ok(()),
        };
    };
    match meta(bytes, magic + 4)? {
        Some((start, l)) => DataSet::new(bytes, start, l).read(),
        None => Ok(()),
    }
}

/// The file meta group from `p` (after `DICM`), read like `FileMetaTable::read_from`: the
/// group length element first, then elements until that many bytes are read, whatever their
/// group. Returns where the data set starts and its layout, or `None` where dicom-rs refuses
/// the meta group (the data set is then never read).
fn meta(b: &[u8], mut p: usize) -> R<Option<(usize, Layout)>> {
    let Some(h) = element_header(b, p, META) else {
        return Ok(None);
    };
    if h.tag != (0x0002, 0x0000) || h.len != 4 {
        return Ok(None);
    }
    let Some(group_length) = u32_at(b, p + h.size, false) else {
        return Ok(None);
    };
    p += h.size + 4;
    let mut read: u32 = 0;
    let mut ts: Option<&[u8]> = None;
    while read < group_length {
        let Some(h) = element_header(b, p, META) else {
            return Ok(None);
        };
        if h.len == UNDEFINED {
            return Ok(None);
        }
        let body = p + h.size;
        // UIDs and the private information are allocated at the declared length.
        if h.len as usize > b.len().saturating_sub(body) {
            return err(
                h.tag,
                "declared length exceeds the bytes left in the file meta group",
            );
        }
        if h.tag == (0x0002, 0x0010) {
            ts = b.get(body..body + h.len as usize);
        }
        p = body + h.len as usize;
        read = read.saturating_add(h.size as u32).saturating_add(h.len);
    }
    // dicom-rs checks a UID's characters, then trims trailing whitespace and NULs.
    let Some(ts) = ts else {
        return Ok(None);
    };
    if !ts
        .iter()
        .all(|&c| c.is_ascii_digit() || c == b'.' || c == 0 || c.is_ascii_whitespace())
    {
        return Ok(None);
    }
    let uid = String::from_utf8_lossy(ts);
    let Some(ts) = TransferSyntaxRegistry.get(&uid) else {
        return Ok(None);
    };
    Ok(Layout::of(ts)?.map(|l| (p, l)))
}

/// An item or sequence open on dicom-rs's stack.
#[derive(Clone, Copy, Debug)]
struct Open {
    item: bool,
    /// Declared length; `UNDEFINED` when it ends at a delimiter.
    len: u32,
    /// dicom-rs's position count where the value starts.
    base: u64,
    /// Part of encapsulated pixel data.
    pixel: bool,
    /// The sequence's tag (an item's is its sequence's), for errors.
    tag: (u16, u16),
}

/// A replay of dicom-rs's `DataSetReader` over a data set: the same state, the same steps.
struct DataSet<'a> {
    b: &'a [u8],
    l: Layout,
    /// Where the next byte is read.
    cur: usize,
    /// dicom-rs's position count, which defined-length items and sequences are closed by. It
    /// runs ahead of `cur` where dicom-rs counts bytes it did not read (see [`consumed`]).
    pos: u64,
    in_sequence: bool,
    offset_table_next: bool,
    delimiter_check: bool,
    open: Vec<Open>,
    /// A header whose value (or pixel data fragments) is read next.
    pending: Option<Header>,
}

impl<'a> DataSet<'a> {
    fn new(b: &'a [u8], start: usize, l: Layout) -> Self {
        DataSet {
            b,
            l,
            cur: start,
            pos: start as u64,
            in_sequence: false,
            offset_table_next: false,
            delimiter_check: false,
            open: Vec::new(),
            pending: None,
        }
    }

    /// The rule: `len` bytes allocated at the current position fit in the input and in every
    /// open item or sequence of defined length.
    fn fits(&self, len: u32, tag: (u16, u16)) -> R<()> {
        if len as usize > self.b.len().saturating_sub(self.cur) {
            return err(tag, "declared length exceeds the bytes left");
        }
        let end = self.pos + u64::from(len);
        for o in &self.open {
            if o.len != UNDEFINED && end > o.base + u64::from(o.len) {
                return err(
                    tag,
                    "declared length exceeds the bytes left in its item or sequence",
                );
            }
        }
        Ok(())
    }

    fn push(&mut self, item: bool, len: u32, pixel: bool, tag: (u16, u16)) -> R<()> {
        if self.open.len() >= 2 * MAX_DEPTH {
            return err(tag, "sequences nested too deeply");
        }
        if len != UNDEFINED {
            self.fits(len, tag)?;
        }
        self.open.push(Open {
            item,
            len,
            base: self.pos,
            pixel,
            tag,
        });
        Ok(())
    }

    /// Reads to where dicom-rs stops: the end of the input or its first error.
    fn read(mut self) -> R<()> {
        loop {
            // An item or sequence of defined length ends where dicom-rs's count reaches its
            // end (several may end at once).
            if self.delimiter_check {
                if let Some(o) = self.open.last().copied()
                    && o.len != UNDEFINED
                {
                    let end = o.base + u64::from(o.len);
                    if end == self.pos {
                        self.in_sequence = o.item;
                        self.open.pop();
                        continue;
                    }
                    if end < self.pos {
                        // dicom-rs: inconsistent sequence end.
                        return Ok(());
                    }
                }
                self.delimiter_check = false;
            }

            if self.in_sequence {
                // Inside a sequence: an item, an item delimiter or a sequence delimiter.
                let Some((tag, len)) = item_header(self.b, self.cur, self.l) else {
                    return Ok(());
                };
                self.cur += 8;
                self.pos += 8;
                match tag {
                    ITEM => {
                        self.in_sequence = false;
                        let Some(top) = self.open.last().copied() else {
                            return Ok(());
                        };
                        self.push(true, len, top.pixel, top.tag)?;
                        if len == 0 {
                            self.delimiter_check = true;
                        }
                    }
                    ITEM_END if len == 0 => {
                        self.open.pop();
                        self.in_sequence = true;
                        self.delimiter_check = true;
                    }
                    SEQUENCE_END => {
                        self.open.pop();
                        self.in_sequence = false;
                        self.delimiter_check = true;
                    }
                    // dicom-rs: bad sequence header.
                    _ => return Ok(()),
                }
                continue;
            }

            if let Some(top) = self.open.last().copied()
                && top.item
                && top.pixel
            {
                // A pixel data fragment (the first is the basic offset table).
                if top.len == UNDEFINED {
                    // dicom-rs: undefined item length.
                    return Ok(());
                }
                self.fits(top.len, PIXEL_DATA)?;
                let n = if self.offset_table_next {
                    self.offset_table_next = false;
                    top.len & !3
                } else {
                    top.len
                };
                self.cur += n as usize;
                self.pos += u64::from(n);
                self.delimiter_check = true;
                continue;
            }

            if let Some(h) = self.pending.take() {
                if h.tag == PIXEL_DATA && h.len == UNDEFINED {
                    // Encapsulated pixel data: an item (the offset table) or the end.
                    self.push(false, UNDEFINED, true, PIXEL_DATA)?;
                    let Some((tag, len)) = item_header(self.b, self.cur, self.l) else {
                        return Ok(());
                    };
                    self.cur += 8;
                    self.pos += 8;
                    match tag {
                        ITEM => {
                            self.in_sequence = false;
                            self.push(true, len, true, PIXEL_DATA)?;
                            if len == 0 {
                                self.delimiter_check = true;
                            } else {
                                self.offset_table_next = true;
                            }
                        }
                        SEQUENCE_END => {
                            self.open.pop();
                            self.in_sequence = false;
                        }
                        // dicom-rs: unexpected item tag or bad header.
                        _ => return Ok(()),
                    }
                } else {
                    // A primitive value: allocated at its declared length, then read.
                    if h.len != 0 {
                        self.fits(h.len, h.tag)?;
                        self.cur += consumed(h.vr, h.len) as usize;
                        self.pos += u64::from(h.len);
                    }
                    self.delimiter_check = true;
                }
                continue;
            }

            // An element header (or an item delimiter ending the current item).
            let Some(h) = element_header(self.b, self.cur, self.l) else {
                return Ok(());
            };
            self.cur += h.size;
            self.pos += h.size as u64;
            if h.vr == VR::SQ {
                self.in_sequence = true;
                self.push(false, h.len, false, h.tag)?;
                if h.len == 0 {
                    self.delimiter_check = true;
                }
            } else if h.tag == ITEM_END {
                // dicom-rs ignores an item delimiter outside any sequence and reads on.
                if !self.open.is_empty() {
                    self.in_sequence = true;
                    self.open.pop();
                    self.delimiter_check = true;
                }
            } else if h.tag == PIXEL_DATA && h.len == UNDEFINED {
                self.pending = Some(h);
            } else if h.len == UNDEFINED {
                if self.l.explicit {
                    // Policy: a UN (or other non-SQ) sequence. dicom-rs would read its
                    // content with the outer explicit VR, which PS3.5 §6.2.2 does not use.
                    return err(
                        h.tag,
                        "undefined length on an attribute that is not a sequence or pixel data (UN sequences are not supported)",
                    );
                }
                // Implicit VR: dicom-rs reads any undefined length as a sequence.
                self.in_sequence = true;
                self.push(false, UNDEFINED, false, h.tag)?;
            } else {
                // Item and sequence delimiter tags with a defined length land here too:
                // dicom-rs reads them as UN values of that length.
                self.pending = Some(h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_declared_length_is_refused() {
        // A bare data set (no file meta) starting at (0008,0020) DA, explicit VR LE, 16-bit
        // length 0xFFFF in a 9-byte file. (A bare data set must start in group 0008 or
        // below: anything else is not read as DICOM at all, see `read::bare_transfer_syntax`.)
        let b = [0x08, 0x00, 0x20, 0x00, b'D', b'A', 0xFF, 0xFF, b'2'];
        let e = check(&b).unwrap_err();
        assert_eq!(e.tag, Some((0x0008, 0x0020)));
        // Implicit VR, 32-bit length.
        let b = [0x08, 0x00, 0x20, 0x00, 0xF0, 0xFF, 0xFF, 0xFF, b'2'];
        assert_eq!(check(&b).unwrap_err().tag, Some((0x0008, 0x0020)));
        // Not a data set at all: left to the reader, which refuses it.
        let b = [0x10, 0x00, 0x10, 0x00, b'P', b'N', 0xFF, 0xFF, b'A'];
        assert!(check(&b).is_ok());
        assert!(crate::read::bare_transfer_syntax(&b).is_none());
    }

    #[test]
    fn a_stray_delimiter_does_not_hide_what_follows() {
        // (0008,0005) CS "ISO_IR 100", then an item delimiter outside any sequence, then an
        // OB whose 4-byte length far exceeds the file (fuzzing: dicom-rs reads on past the
        // delimiter and zero-filled gigabytes while the guard had stopped at it).
        let mut b = vec![0x08, 0x00, 0x05, 0x00, b'C', b'S', 10, 0];
        b.extend_from_slice(b"ISO_IR 100");
        b.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        b.extend_from_slice(&[
            0x09, 0x00, 0x10, 0x10, b'O', b'B', 0, 0, 0xF0, 0xFF, 0xFF, 0x7F,
        ]);
        let e = check(&b).unwrap_err();
        assert_eq!(e.tag, Some((0x0009, 0x1010)));
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
