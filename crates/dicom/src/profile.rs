//! The PS3.15 Annex E attribute table (Table E.1-1), embedded from `data/` so that the binary
//! never needs the fixture at run time. Parsed once; both the de-identifier and the checker
//! read it, each applying the action codes by its own logic.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// Innolitics' machine-readable Table E.1-1 (MIT, see `data/LICENSE.innolitics-dicom-standard`).
const TABLE_JSON: &str = include_str!("../data/confidentiality_profile_attributes.json");

/// Which attributes a row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagPattern {
    Exact(u16, u16),
    /// `(50XX,XXXX)`: curve data, every element of the even groups 5000–50FF.
    CurveGroup,
    /// `(60XX,eeee)`: one element of every overlay group (even groups 6000–60FF).
    OverlayGroup(u16),
    /// `(GGGG,EEEE) where GGGG is odd`: private attributes.
    Private,
}

impl TagPattern {
    fn parse(s: &str) -> Option<TagPattern> {
        let s = s.trim();
        if s.to_ascii_uppercase().contains("ODD") {
            return Some(TagPattern::Private);
        }
        let inner = s.strip_prefix('(')?.strip_suffix(')')?;
        let (g, e) = inner.split_once(',')?;
        let (g, e) = (g.trim().to_ascii_uppercase(), e.trim().to_ascii_uppercase());
        match (g.as_str(), e.as_str()) {
            ("50XX", "XXXX") => Some(TagPattern::CurveGroup),
            ("60XX", e) => u16::from_str_radix(e, 16)
                .ok()
                .map(TagPattern::OverlayGroup),
            (g, e) => Some(TagPattern::Exact(
                u16::from_str_radix(g, 16).ok()?,
                u16::from_str_radix(e, 16).ok()?,
            )),
        }
    }
}

/// One row of Table E.1-1.
#[derive(Debug, Clone)]
pub struct ProfileRow {
    pub name: String,
    pub pattern: TagPattern,
    /// The Basic Profile code as the standard writes it: `X`, `Z`, `D`, `U`, `X/Z`, `X/D`,
    /// `X/Z/D`, `X/Z/U*`, `Z/D`, `K`, `C`.
    pub basic: String,
    /// Retain Longitudinal Temporal Information with Modified Dates Option: `C` when the
    /// attribute may be kept with its dates modified.
    pub modified_dates: Option<String>,
    /// Retain Safe Private Option code.
    pub safe_private: Option<String>,
}

#[derive(Deserialize)]
struct RawRow {
    name: String,
    tag: String,
    #[serde(rename = "basicProfile")]
    basic_profile: String,
    #[serde(rename = "rtnLongModifDatesOpt")]
    rtn_long_modif_dates_opt: Option<String>,
    #[serde(rename = "rtnSafePrivOpt")]
    rtn_safe_priv_opt: Option<String>,
}

/// The parsed table with an index on exact tags.
#[derive(Debug)]
pub struct ProfileTable {
    pub rows: Vec<ProfileRow>,
    exact: HashMap<(u16, u16), usize>,
}

impl ProfileTable {
    /// The embedded table, parsed on first use. The JSON is compiled in, so a failure is a
    /// build defect (the unit test `table_is_complete` catches it); it is still an error, not
    /// a panic and never an empty table that would de-identify nothing.
    pub fn get() -> Result<&'static ProfileTable, crate::DicomError> {
        static TABLE: OnceLock<Result<ProfileTable, String>> = OnceLock::new();
        TABLE
            .get_or_init(|| ProfileTable::parse(TABLE_JSON))
            .as_ref()
            .map_err(|e| crate::DicomError::Option(format!("embedded Annex E table: {e}")))
    }

    fn parse(json: &str) -> Result<ProfileTable, String> {
        let raw: Vec<RawRow> = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let mut rows = Vec::with_capacity(raw.len());
        let mut exact = HashMap::new();
        for r in raw {
            let pattern =
                TagPattern::parse(&r.tag).ok_or_else(|| format!("bad tag pattern {}", r.tag))?;
            if let TagPattern::Exact(g, e) = pattern {
                exact.insert((g, e), rows.len());
            }
            rows.push(ProfileRow {
                name: r.name,
                pattern,
                basic: r.basic_profile.trim().to_string(),
                modified_dates: r.rtn_long_modif_dates_opt,
                safe_private: r.rtn_safe_priv_opt,
            });
        }
        Ok(ProfileTable { rows, exact })
    }

    /// The row that governs a (non-private) tag, if any.
    pub fn lookup(&self, group: u16, element: u16) -> Option<&ProfileRow> {
        if let Some(&i) = self.exact.get(&(group, element)) {
            return self.rows.get(i);
        }
        if group & 0xFF00 == 0x5000 && group.is_multiple_of(2) {
            return self
                .rows
                .iter()
                .find(|r| r.pattern == TagPattern::CurveGroup);
        }
        if group & 0xFF00 == 0x6000 && group.is_multiple_of(2) {
            return self
                .rows
                .iter()
                .find(|r| r.pattern == TagPattern::OverlayGroup(element));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete() {
        let t = ProfileTable::get().unwrap();
        // PS3.15 Table E.1-1 as of the 2025 standard: 621 rows, 3 wildcard + 1 private row.
        assert_eq!(t.rows.len(), 621);
        assert_eq!(t.exact.len(), 617);
        assert_eq!(
            t.lookup(0x0010, 0x0010).map(|r| r.basic.as_str()),
            Some("Z")
        );
        assert_eq!(
            t.lookup(0x0008, 0x0018).map(|r| r.basic.as_str()),
            Some("U")
        );
        assert_eq!(
            t.lookup(0x5002, 0x3000).map(|r| r.basic.as_str()),
            Some("X")
        );
        assert_eq!(
            t.lookup(0x6002, 0x3000).map(|r| r.basic.as_str()),
            Some("X")
        );
        assert!(
            t.lookup(0x6002, 0x0010).is_none(),
            "overlay rows are element-specific"
        );
        assert!(
            t.lookup(0x5001, 0x3000).is_none(),
            "odd groups are private, not curves"
        );
        assert!(t.rows.iter().any(|r| r.pattern == TagPattern::Private));
    }
}
