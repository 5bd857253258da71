//! The Annex E checker. Written apart from the de-identifier (it shares only the standard's
//! table, not the resolution logic): it walks an object as read back from bytes and lists
//! every attribute that the Basic Profile says must not be present as it is.
//!
//! Rules, per attribute found (at any nesting level):
//! * private (odd group): a violation unless its Private Creator is on the safe list;
//! * a code with X (X, X/Z, X/D, X/Z/D, X/Z/U*): a violation if present at all;
//! * Z, Z/D: a non-empty value is a violation — unless the original is given and the value is
//!   none of the values that attribute had anywhere in it (the standard allows a dummy); a
//!   Z sequence must have no items;
//! * D: a value equal to one the attribute had in the original is a violation;
//! * U: a value that is not a valid UID, or that appears among the original's UIDs, is a
//!   violation;
//! * with the modified-dates option, the attributes the option covers may stay if they are
//!   well-formed dates (shifting cannot be verified without the offset, by design);
//! * Patient Identity Removed (0012,0062) must be `YES` on the top-level data set.

use std::collections::{HashMap, HashSet};

use dicom_core::{DicomValue, Tag, VR};
use dicom_object::InMemDicomObject;

use crate::deid::DeidOptions;
use crate::fmt_tag;
use crate::profile::ProfileTable;

/// What the object claims to have been de-identified with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Retain Longitudinal Temporal Information with Modified Dates Option in effect.
    pub dates_modified: bool,
    /// Private creators whose blocks may remain (Retain Safe Private Option).
    pub safe_private_creators: Vec<String>,
}

impl From<&DeidOptions> for CheckOptions {
    fn from(o: &DeidOptions) -> Self {
        CheckOptions {
            dates_modified: o.date_shift_days.is_some(),
            safe_private_creators: o.safe_private_creators.clone(),
        }
    }
}

/// One attribute in violation of the profile. No values, only where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `(0008,1140)[0].(0008,1155)` for nested attributes.
    pub path: String,
    pub tag: String,
    /// The attribute's name in Table E.1-1 (`private attribute` for odd groups).
    pub name: String,
    /// The Basic Profile code (`X`, `Z`, `D`, `U`, …).
    pub code: String,
    pub reason: &'static str,
}

/// Lists the violations of the Basic Profile in `obj`. `original` (the object before
/// de-identification) enables the D/U/Z-dummy checks "the value differs from the original".
pub fn annex_e_violations(
    obj: &InMemDicomObject,
    original: Option<&InMemDicomObject>,
    opts: &CheckOptions,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let Ok(table) = ProfileTable::get() else {
        out.push(Violation {
            path: String::new(),
            tag: String::new(),
            name: "Annex E table".into(),
            code: String::new(),
            reason: "the embedded Annex E table cannot be read: nothing can be checked",
        });
        return out;
    };
    let mut orig = Originals::default();
    if let Some(o) = original {
        orig.collect(o, 0);
    }
    let checker = Checker {
        table,
        opts,
        orig: original.map(|_| &orig),
    };
    checker.walk(obj, "", 0, &mut out);
    let removed = obj
        .get(Tag(0x0012, 0x0062))
        .and_then(|e| e.to_str().ok())
        .is_some_and(|v| v.trim() == "YES");
    if !removed {
        out.push(Violation {
            path: fmt_tag(0x0012, 0x0062),
            tag: fmt_tag(0x0012, 0x0062),
            name: "Patient Identity Removed".into(),
            code: "YES".into(),
            reason: "Patient Identity Removed is not YES",
        });
    }
    out
}

/// Every value each attribute had anywhere in the original, and every UID.
#[derive(Default)]
struct Originals {
    by_tag: HashMap<Tag, HashSet<String>>,
    uids: HashSet<String>,
}

fn norm(s: &str) -> String {
    s.trim_matches(|c: char| c == ' ' || c == '\0').to_string()
}

fn values_of(e: &dicom_object::mem::InMemElement) -> Vec<String> {
    match e.value() {
        DicomValue::Primitive(p) if e.vr() == VR::UN => {
            let text: String = p.to_bytes().iter().map(|&c| char::from(c)).collect();
            text.split('\\')
                .map(norm)
                .filter(|s| !s.is_empty())
                .collect()
        }
        DicomValue::Primitive(p) => {
            if matches!(
                e.vr(),
                VR::OB | VR::OW | VR::UN | VR::OF | VR::OD | VR::OL | VR::OV
            ) {
                vec![format!("{:?}", p.to_bytes())]
            } else {
                p.to_multi_str()
                    .iter()
                    .map(|s| norm(s))
                    .filter(|s| !s.is_empty())
                    .collect()
            }
        }
        _ => Vec::new(),
    }
}

impl Originals {
    fn collect(&mut self, ds: &InMemDicomObject, depth: usize) {
        if depth > 64 {
            return;
        }
        for e in ds.iter() {
            let tag = e.header().tag;
            if let DicomValue::Sequence(seq) = e.value() {
                for item in seq.items() {
                    self.collect(item, depth + 1);
                }
                continue;
            }
            let vals = values_of(e);
            if e.vr() == VR::UI {
                self.uids.extend(vals.iter().cloned());
            }
            self.by_tag.entry(tag).or_default().extend(vals);
        }
    }

    fn had(&self, tag: Tag, v: &str) -> bool {
        self.by_tag.get(&tag).is_some_and(|s| s.contains(v))
    }
}

/// UID syntax (PS3.5 §9.1): ≤ 64 characters, digits and dots, no empty component, no leading
/// zero in a multi-digit component.
fn valid_uid(s: &str) -> bool {
    s.len() <= 64
        && s.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && !(c.len() > 1 && c.starts_with('0'))
        })
}

fn valid_date(s: &str, vr: VR) -> bool {
    let d = match vr {
        VR::DA => s,
        VR::DT => s.get(..8).unwrap_or(""),
        _ => return true,
    };
    d.len() == 8 && chrono::NaiveDate::parse_from_str(d, "%Y%m%d").is_ok()
}

/// The VR an element read as UN has in the standard dictionary.
fn dictionary_vr(tag: Tag, vr: VR) -> VR {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    if vr != VR::UN {
        return vr;
    }
    match dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)
        .map(|e| e.vr())
    {
        Some(VirtualVr::Exact(v)) => v,
        _ => VR::UN,
    }
}

struct Checker<'a> {
    table: &'a ProfileTable,
    opts: &'a CheckOptions,
    orig: Option<&'a Originals>,
}

impl Checker<'_> {
    fn walk(&self, ds: &InMemDicomObject, prefix: &str, depth: usize, out: &mut Vec<Violation>) {
        if depth > 64 {
            return;
        }
        let creators: HashMap<(u16, u16), String> = ds
            .iter()
            .filter(|e| {
                let t = e.header().tag;
                t.group() % 2 == 1 && (0x10..=0xFF).contains(&t.element())
            })
            .filter_map(|e| {
                let t = e.header().tag;
                e.to_str()
                    .ok()
                    .map(|v| ((t.group(), t.element()), norm(&v)))
            })
            .collect();
        for e in ds.iter() {
            let tag = e.header().tag;
            let t = fmt_tag(tag.group(), tag.element());
            let path = format!("{prefix}{t}");
            let v = |name: &str, code: &str, reason: &'static str| Violation {
                path: path.clone(),
                tag: t.clone(),
                name: name.to_string(),
                code: code.to_string(),
                reason,
            };
            let items: &[InMemDicomObject] = match e.value() {
                DicomValue::Sequence(s) => s.items(),
                _ => &[],
            };
            let is_seq = matches!(e.value(), DicomValue::Sequence(_));
            let descend = |out: &mut Vec<Violation>| {
                for (i, item) in items.iter().enumerate() {
                    self.walk(item, &format!("{path}[{i}]."), depth + 1, out);
                }
            };
            if tag.group() % 2 == 1 {
                let el = tag.element();
                let block = if (0x10..=0xFF).contains(&el) {
                    el
                } else {
                    el >> 8
                };
                let safe = el >= 0x10
                    && creators
                        .get(&(tag.group(), block))
                        .is_some_and(|c| self.opts.safe_private_creators.contains(c));
                if safe {
                    descend(out);
                } else {
                    out.push(v("private attribute", "X", "private attribute present"));
                }
                continue;
            }
            let Some(row) = self.table.lookup(tag.group(), tag.element()) else {
                descend(out);
                continue;
            };
            let code = row.basic.as_str();
            let vals = values_of(e);
            let vr = dictionary_vr(tag, e.vr());
            if self.opts.dates_modified
                && row.modified_dates.as_deref() == Some("C")
                && matches!(vr, VR::DA | VR::DT | VR::TM)
            {
                if !vals.iter().all(|s| valid_date(s, vr)) {
                    out.push(v(
                        &row.name,
                        code,
                        "date kept under the modified-dates option is not a full date",
                    ));
                }
                continue;
            }
            if code.contains('X') {
                out.push(v(&row.name, code, "must be removed (X)"));
            } else if code.starts_with('Z') {
                if is_seq {
                    if !items.is_empty() {
                        out.push(v(&row.name, code, "sequence must be empty (Z)"));
                    }
                } else if !vals.is_empty() {
                    match self.orig {
                        None => out.push(v(&row.name, code, "must be empty (Z)")),
                        Some(o) if vals.iter().any(|x| o.had(tag, x)) => {
                            out.push(v(&row.name, code, "keeps an original value (Z)"))
                        }
                        Some(_) => {}
                    }
                }
            } else if code == "U" {
                if is_seq {
                    descend(out);
                } else {
                    if !vals.iter().all(|s| valid_uid(s)) {
                        out.push(v(&row.name, code, "not a valid UID (U)"));
                    }
                    if let Some(o) = self.orig
                        && vals.iter().any(|x| o.uids.contains(x) || o.had(tag, x))
                    {
                        out.push(v(&row.name, code, "keeps an original UID (U)"));
                    }
                }
            } else if code == "D" || code == "C" {
                if is_seq {
                    descend(out);
                } else if let Some(o) = self.orig
                    && vals.iter().any(|x| o.had(tag, x))
                {
                    out.push(v(&row.name, code, "keeps an original value (D)"));
                }
            } else {
                descend(out);
            }
        }
    }
}

/// The de-identification property the `dicom_deid` fuzz target checks on arbitrary bytes and
/// the regression tests on the inputs it found, in one place so both check the same thing:
/// the first byte picks the options (date shift, pseudonym, a safe private creator), and when
/// de-identification of the rest succeeds, the output must re-read and this module's
/// independent Annex E check must find no violation. `Err` says what failed.
pub fn deid_roundtrip(data: &[u8]) -> Result<(), String> {
    use crate::{DeidOptions, deidentify_bytes, open_dicom_bytes};
    let Some((&sel, body)) = data.split_first() else {
        return Ok(());
    };
    let mut opts = DeidOptions::new(*b"fuzz-release-key-0123456789abcdef");
    if sel & 1 != 0 {
        opts.date_shift_days = Some(-(i32::from(sel >> 2)) - 1);
    }
    if sel & 2 != 0 {
        opts.pseudonym = Some("P000123".into());
    }
    if sel & 0x80 != 0 {
        opts.safe_private_creators = vec!["SIEMENS CSA HEADER".into()];
    }
    let Ok((out, _)) = deidentify_bytes(body, "f.dcm", &opts) else {
        return Ok(());
    };
    let orig = open_dicom_bytes(body, "f.dcm")
        .map_err(|e| format!("input de-identified but not re-openable: {e}"))?;
    let back = open_dicom_bytes(&out, "out.dcm")
        .map_err(|e| format!("de-identified output does not re-read: {e}"))?;
    let v = annex_e_violations(&back, Some(&*orig), &CheckOptions::from(&opts));
    if v.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Annex E violations after de-identification: {v:#?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_syntax() {
        assert!(valid_uid("1.2.840.10008.1.2"));
        assert!(valid_uid("2.25.123"));
        assert!(!valid_uid("1.02.3"));
        assert!(!valid_uid("1..3"));
        assert!(!valid_uid("1.2.a"));
        assert!(!valid_uid(&format!("2.25.{}", "1".repeat(70))));
    }
}
