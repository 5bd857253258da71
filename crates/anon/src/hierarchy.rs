//! Generalization hierarchies: ARX's CSV format and built-in builders for Japanese medical
//! codes.
//!
//! A hierarchy is stored dictionary-encoded: level 0 codes are the row indices of the
//! original values; `map[l][leaf]` is the code of that value's level-`l` label. The search
//! never touches strings; labels are only looked up when output is written.
//!
//! Every level must be a *function* of the level below (a value may not have two parents):
//! full-domain generalization is only monotone — and the lattice search only exact — when
//! generalizing one level never splits a class.

use std::collections::HashMap;
use std::path::Path;

use crate::AnonError;

/// A dictionary-encoded generalization hierarchy.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    name: String,
    /// `labels[l][code]`: the distinct labels of level `l`.
    labels: Vec<Vec<String>>,
    /// `map[l][leaf]`: the level-`l` code of the leaf (original value) `leaf`.
    map: Vec<Vec<u32>>,
    /// `group_size[l][code]`: number of hierarchy rows under that level-`l` label (ARX's
    /// domain share numerator).
    group_size: Vec<Vec<u32>>,
    leaf_index: HashMap<String, u32>,
}

impl Hierarchy {
    /// Builds a hierarchy from rows (`row[0]` original value, `row[l]` level-`l` label).
    /// `lines` gives the source line number of each row for error messages.
    fn build(name: &str, rows: Vec<(usize, Vec<String>)>) -> Result<Hierarchy, AnonError> {
        let err = |line: usize, reason: String| AnonError::Hierarchy {
            name: name.to_string(),
            line,
            reason,
        };
        let Some((_, first)) = rows.first() else {
            return Err(err(0, "hierarchy has no rows".into()));
        };
        let width = first.len();
        if width == 0 {
            return Err(err(rows[0].0, "row has no columns".into()));
        }
        let mut labels: Vec<Vec<String>> = vec![Vec::new(); width];
        let mut label_index: Vec<HashMap<String, u32>> = vec![HashMap::new(); width];
        let mut map: Vec<Vec<u32>> = vec![Vec::with_capacity(rows.len()); width];
        let mut leaf_index = HashMap::with_capacity(rows.len());
        // parent[l][code at level l] = (code at level l+1, line first seen)
        let mut parent: Vec<HashMap<u32, (u32, usize)>> = vec![HashMap::new(); width];
        for (line, row) in &rows {
            if row.len() != width {
                return Err(err(
                    *line,
                    format!(
                        "row has {} levels but the first row has {width} (ragged rows are allowed only as trailing empty cells)",
                        row.len()
                    ),
                ));
            }
            let leaf = labels[0].len() as u32;
            if leaf_index.insert(row[0].clone(), leaf).is_some() {
                return Err(err(*line, "original value (column 0) occurs twice".into()));
            }
            let mut prev: Option<u32> = None;
            for (l, cell) in row.iter().enumerate() {
                let code = if l == 0 {
                    labels[0].push(cell.clone());
                    leaf
                } else {
                    match label_index[l].get(cell) {
                        Some(c) => *c,
                        None => {
                            let c = labels[l].len() as u32;
                            labels[l].push(cell.clone());
                            label_index[l].insert(cell.clone(), c);
                            c
                        }
                    }
                };
                map[l].push(code);
                if let Some(p) = prev {
                    match parent[l - 1].get(&p) {
                        Some((q, first_line)) if *q != code => {
                            return Err(err(
                                *line,
                                format!(
                                    "level {} label has a different level-{l} parent than on line {first_line} (each level must be a function of the level below)",
                                    l - 1
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => {
                            parent[l - 1].insert(p, (code, *line));
                        }
                    }
                }
                prev = Some(code);
            }
        }
        let group_size = map
            .iter()
            .zip(&labels)
            .map(|(m, lab)| {
                let mut g = vec![0u32; lab.len()];
                for c in m {
                    g[*c as usize] += 1;
                }
                g
            })
            .collect();
        Ok(Hierarchy {
            name: name.to_string(),
            labels,
            map,
            group_size,
            leaf_index,
        })
    }

    /// Builds a hierarchy from in-memory rows (column 0 original, column `l` level `l`).
    pub fn from_rows(name: &str, rows: Vec<Vec<String>>) -> Result<Hierarchy, AnonError> {
        let numbered = rows
            .into_iter()
            .enumerate()
            .map(|(i, r)| (i + 1, r))
            .collect();
        Hierarchy::build(name, numbered)
    }

    /// Parses ARX's hierarchy CSV: no header, `sep`-separated, column 0 the original value,
    /// column `l` its level-`l` label. Blank lines are skipped; trailing empty cells are
    /// trimmed (spreadsheet exports pad rows), after which every row must have the same width.
    pub fn parse_arx_csv(name: &str, text: &str, sep: char) -> Result<Hierarchy, AnonError> {
        let mut rows = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let mut cells: Vec<String> = line.split(sep).map(|c| c.to_string()).collect();
            while cells.len() > 1 && cells.last().is_some_and(|c| c.is_empty()) {
                cells.pop();
            }
            if cells.iter().any(|c| c.is_empty()) {
                return Err(AnonError::Hierarchy {
                    name: name.to_string(),
                    line: i + 1,
                    reason: "empty cell inside a row".into(),
                });
            }
            rows.push((i + 1, cells));
        }
        Hierarchy::build(name, rows)
    }

    /// Loads an ARX hierarchy CSV file.
    pub fn load_arx_csv(path: &Path, name: &str, sep: char) -> Result<Hierarchy, AnonError> {
        let text = std::fs::read_to_string(path).map_err(|e| AnonError::io(path, e))?;
        Hierarchy::parse_arx_csv(name, &text, sep).map_err(|e| match e {
            AnonError::Hierarchy { line, reason, .. } => AnonError::Hierarchy {
                name: path.display().to_string(),
                line,
                reason,
            },
            other => other,
        })
    }

    /// The attribute name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Number of levels including level 0 (the original values).
    pub fn levels(&self) -> usize {
        self.labels.len()
    }
    /// Highest level (levels − 1).
    pub fn height(&self) -> usize {
        self.labels.len() - 1
    }
    /// Number of rows = size of the domain (ARX's domain size for the Loss metric).
    pub fn domain_size(&self) -> usize {
        self.labels[0].len()
    }
    /// Number of distinct labels at `level`.
    pub fn cardinality(&self, level: usize) -> usize {
        self.labels[level].len()
    }
    /// The leaf code of an original value.
    pub fn leaf_code(&self, value: &str) -> Option<u32> {
        self.leaf_index.get(value).copied()
    }
    /// The level-`level` code of leaf `leaf`.
    #[inline]
    pub fn generalize(&self, leaf: u32, level: usize) -> u32 {
        self.map[level][leaf as usize]
    }
    /// The label of a level-`level` code.
    pub fn label(&self, level: usize, code: u32) -> &str {
        &self.labels[level][code as usize]
    }
    /// Generalizes an original value to `level` (None if the value is not in the hierarchy
    /// or the level does not exist).
    pub fn generalize_str(&self, value: &str, level: usize) -> Option<&str> {
        let leaf = self.leaf_code(value)?;
        let m = self.map.get(level)?;
        Some(self.label(level, m[leaf as usize]))
    }
    /// Number of hierarchy rows under the label of `leaf` at `level` (ARX domain share × size).
    #[inline]
    pub fn group_size(&self, leaf: u32, level: usize) -> u32 {
        self.group_size[level][self.map[level][leaf as usize] as usize]
    }
    /// Number of hierarchy rows under the level-`level` label `code`.
    #[inline]
    pub fn code_group_size(&self, level: usize, code: u32) -> u32 {
        self.group_size[level][code as usize]
    }
    /// The rows in ARX's CSV layout (for writing a built hierarchy to disk).
    pub fn to_rows(&self) -> Vec<Vec<String>> {
        (0..self.domain_size())
            .map(|leaf| {
                (0..self.levels())
                    .map(|l| self.label(l, self.map[l][leaf]).to_string())
                    .collect()
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------

/// Age intervals: one row per age in `min..=max`; level `i` groups ages into intervals of
/// `widths[i-1]` years aligned at 0 ("40-49"); ages ≥ `top_code` (if given) are grouped as
/// `"{top}歳以上"` from level 1 on (extreme ages are peculiar values, R-ANON-4); the last level
/// is `*`. Widths must be increasing multiples of each other so the levels nest.
pub fn age_intervals(
    name: &str,
    min: u32,
    max: u32,
    widths: &[u32],
    top_code: Option<u32>,
) -> Result<Hierarchy, AnonError> {
    for w in widths.windows(2) {
        if w[0] == 0 || w[1] % w[0] != 0 {
            return Err(AnonError::Config(format!(
                "age interval widths must nest (each a multiple of the previous): {widths:?}"
            )));
        }
    }
    if widths.first() == Some(&0) || min > max {
        return Err(AnonError::Config(
            "age intervals need min ≤ max and widths > 0".into(),
        ));
    }
    let rows = (min..=max)
        .map(|age| {
            let mut r = vec![age.to_string()];
            for w in widths {
                match top_code {
                    Some(t) if age >= t => r.push(format!("{t}歳以上")),
                    _ => {
                        let lo = age / w * w;
                        let hi = lo.saturating_add(w - 1);
                        let hi = match top_code {
                            Some(t) if hi >= t => t - 1,
                            _ => hi,
                        };
                        r.push(format!("{lo}-{hi}"));
                    }
                }
            }
            r.push("*".into());
            r
        })
        .collect();
    Hierarchy::from_rows(name, rows)
}

/// Dates `YYYY-MM-DD` → `YYYY-MM` → `YYYY` → `*`. Values must be ISO dates (the error gives
/// the position in `dates`, not the value).
pub fn dates(name: &str, dates: &[&str]) -> Result<Hierarchy, AnonError> {
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, d) in dates.iter().enumerate() {
        let b = d.as_bytes();
        let ok = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(j, c)| j == 4 || j == 7 || c.is_ascii_digit());
        if !ok {
            return Err(AnonError::Hierarchy {
                name: name.into(),
                line: i + 1,
                reason: "date is not YYYY-MM-DD".into(),
            });
        }
        if seen.insert(*d) {
            rows.push(vec![
                d.to_string(),
                d[..7].to_string(),
                d[..4].to_string(),
                "*".into(),
            ]);
        }
    }
    Hierarchy::from_rows(name, rows)
}

/// ICD-10 chapters (WHO ICD-10 2019): (first code, last code, chapter label).
const ICD10_CHAPTERS: &[(&str, &str, &str)] = &[
    ("A00", "B99", "I"),
    ("C00", "D48", "II"),
    ("D50", "D89", "III"),
    ("E00", "E90", "IV"),
    ("F00", "F99", "V"),
    ("G00", "G99", "VI"),
    ("H00", "H59", "VII"),
    ("H60", "H95", "VIII"),
    ("I00", "I99", "IX"),
    ("J00", "J99", "X"),
    ("K00", "K93", "XI"),
    ("L00", "L99", "XII"),
    ("M00", "M99", "XIII"),
    ("N00", "N99", "XIV"),
    ("O00", "O99", "XV"),
    ("P00", "P96", "XVI"),
    ("Q00", "Q99", "XVII"),
    ("R00", "R99", "XVIII"),
    ("S00", "T98", "XIX"),
    ("V01", "Y98", "XX"),
    ("Z00", "Z99", "XXI"),
    ("U00", "U85", "XXII"),
];

/// The ICD-10 chapter (Roman numeral) of a code's 3-character category, if any.
pub fn icd10_chapter(code3: &str) -> Option<&'static str> {
    ICD10_CHAPTERS
        .iter()
        .find(|(lo, hi, _)| code3 >= *lo && code3 <= *hi)
        .map(|(_, _, c)| *c)
}

/// ICD-10: full code (e.g. `E11.9` / `E119`) → 3-character category (`E11`) → block
/// (from `blocks`, ranges of categories such as `("E10","E14")`, labelled `E10-E14`; omitted
/// when `blocks` is empty) → chapter (`IV`) → `*`. Codes outside every chapter or block are
/// reported with their position (R-ANON-4: rare diagnoses become category, then chapter).
pub fn icd10(name: &str, codes: &[&str], blocks: &[(&str, &str)]) -> Result<Hierarchy, AnonError> {
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, c) in codes.iter().enumerate() {
        let bad = |reason: &str| AnonError::Hierarchy {
            name: name.into(),
            line: i + 1,
            reason: reason.into(),
        };
        let norm: String = c
            .chars()
            .filter(|ch| *ch != '.')
            .collect::<String>()
            .to_ascii_uppercase();
        if norm.len() < 3 || !norm.is_ascii() {
            return Err(bad("ICD-10 code shorter than 3 characters"));
        }
        let cat = &norm[..3];
        let chapter =
            icd10_chapter(cat).ok_or_else(|| bad("ICD-10 category outside every chapter"))?;
        if !seen.insert(c.to_string()) {
            continue;
        }
        let mut r = vec![c.to_string(), cat.to_string()];
        if !blocks.is_empty() {
            let b = blocks
                .iter()
                .find(|(lo, hi)| cat >= *lo && cat <= *hi)
                .ok_or_else(|| bad("ICD-10 category outside every block"))?;
            r.push(format!("{}-{}", b.0, b.1));
        }
        r.push(format!("Chapter {chapter}"));
        r.push("*".into());
        rows.push(r);
    }
    Hierarchy::from_rows(name, rows)
}

/// Prefix masking: level `i` keeps the first `keep[i-1]` characters and masks the rest with
/// `*` (`keep` must be decreasing); the last level is `*`. Use for postal codes
/// (`[5, 3, 1]`: 1000001 → 10000** → 100**** → 1******), YJ codes (`[7, 4]`: ingredient,
/// therapeutic class), HOT codes (`[9, 7]`), JLAC10 (`[5]`: the analyte code).
pub fn prefix_mask(name: &str, values: &[&str], keep: &[usize]) -> Result<Hierarchy, AnonError> {
    if keep.windows(2).any(|w| w[1] >= w[0]) {
        return Err(AnonError::Config(
            "prefix lengths must be strictly decreasing".into(),
        ));
    }
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for v in values {
        if !seen.insert(*v) {
            continue;
        }
        let mut r = vec![v.to_string()];
        for k in keep {
            r.push(crate::transform::mask_suffix(v, *k, '*'));
        }
        r.push("*".into());
        rows.push(r);
    }
    Hierarchy::from_rows(name, rows)
}

/// JLAC10 analyte level: the 17-character JLAC10 code → its first 5 characters (analyte) → `*`.
pub fn jlac10(name: &str, codes: &[&str]) -> Result<Hierarchy, AnonError> {
    prefix_mask(name, codes, &[5])
}

/// Postal code (7 digits) → 5, 3, 1 digits kept → `*`.
pub fn postal_code(name: &str, codes: &[&str]) -> Result<Hierarchy, AnonError> {
    prefix_mask(name, codes, &[5, 3, 1])
}

/// YJ code (12 characters) → 7 (ingredient) → 4 (therapeutic class) → `*`.
pub fn yj_code(name: &str, codes: &[&str]) -> Result<Hierarchy, AnonError> {
    prefix_mask(name, codes, &[7, 4])
}

/// The 47 prefectures in JIS X 0401 order (code = index + 1) with their region.
const PREFECTURES: [(&str, &str); 47] = [
    ("北海道", "北海道"),
    ("青森県", "東北"),
    ("岩手県", "東北"),
    ("宮城県", "東北"),
    ("秋田県", "東北"),
    ("山形県", "東北"),
    ("福島県", "東北"),
    ("茨城県", "関東"),
    ("栃木県", "関東"),
    ("群馬県", "関東"),
    ("埼玉県", "関東"),
    ("千葉県", "関東"),
    ("東京都", "関東"),
    ("神奈川県", "関東"),
    ("新潟県", "中部"),
    ("富山県", "中部"),
    ("石川県", "中部"),
    ("福井県", "中部"),
    ("山梨県", "中部"),
    ("長野県", "中部"),
    ("岐阜県", "中部"),
    ("静岡県", "中部"),
    ("愛知県", "中部"),
    ("三重県", "近畿"),
    ("滋賀県", "近畿"),
    ("京都府", "近畿"),
    ("大阪府", "近畿"),
    ("兵庫県", "近畿"),
    ("奈良県", "近畿"),
    ("和歌山県", "近畿"),
    ("鳥取県", "中国"),
    ("島根県", "中国"),
    ("岡山県", "中国"),
    ("広島県", "中国"),
    ("山口県", "中国"),
    ("徳島県", "四国"),
    ("香川県", "四国"),
    ("愛媛県", "四国"),
    ("高知県", "四国"),
    ("福岡県", "九州・沖縄"),
    ("佐賀県", "九州・沖縄"),
    ("長崎県", "九州・沖縄"),
    ("熊本県", "九州・沖縄"),
    ("大分県", "九州・沖縄"),
    ("宮崎県", "九州・沖縄"),
    ("鹿児島県", "九州・沖縄"),
    ("沖縄県", "九州・沖縄"),
];

/// Prefecture → region (8 regions) → `*`. Values are the prefecture names (東京都) or, with
/// `jis_codes`, their 2-digit JIS X 0401 codes ("13").
pub fn prefecture_region(name: &str, jis_codes: bool) -> Result<Hierarchy, AnonError> {
    let rows = PREFECTURES
        .iter()
        .enumerate()
        .map(|(i, (p, r))| {
            let v = if jis_codes {
                format!("{:02}", i + 1)
            } else {
                p.to_string()
            };
            vec![v, r.to_string(), "*".to_string()]
        })
        .collect();
    Hierarchy::from_rows(name, rows)
}

/// Municipality → prefecture → region → `*`, from (municipality, prefecture name) pairs (e.g.
/// from the 全国地方公共団体コード list; use the codes as values when names repeat across
/// prefectures). Unknown prefectures are reported by position.
pub fn municipality(name: &str, pairs: &[(&str, &str)]) -> Result<Hierarchy, AnonError> {
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, (m, p)) in pairs.iter().enumerate() {
        let region = PREFECTURES
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, r)| *r)
            .ok_or_else(|| AnonError::Hierarchy {
                name: name.into(),
                line: i + 1,
                reason: "unknown prefecture".into(),
            })?;
        // The same name in two prefectures (府中市) is rejected by `from_rows`: use codes.
        if seen.insert((*m, *p)) {
            rows.push(vec![
                m.to_string(),
                p.to_string(),
                region.to_string(),
                "*".to_string(),
            ]);
        }
    }
    Hierarchy::from_rows(name, rows)
}

#[cfg(test)]
mod tests {
    #[test]
    fn address_builders() {
        let h = prefecture_region("pref", false).unwrap();
        assert_eq!(h.domain_size(), 47);
        assert_eq!(h.cardinality(1), 8);
        assert_eq!(h.generalize_str("東京都", 1), Some("関東"));
        assert_eq!(h.generalize_str("沖縄県", 1), Some("九州・沖縄"));
        let j = prefecture_region("pref", true).unwrap();
        assert_eq!(j.generalize_str("13", 1), Some("関東"));
        assert_eq!(j.generalize_str("01", 1), Some("北海道"));
        let m = municipality("city", &[("港区", "東京都"), ("札幌市", "北海道")]).unwrap();
        assert_eq!(m.generalize_str("港区", 2), Some("関東"));
        assert!(municipality("city", &[("x", "東京県")]).is_err());
    }

    use super::*;

    #[test]
    fn parses_arx_csv_with_padding_and_blank_lines() {
        let h = Hierarchy::parse_arx_csv("t", "a;x;*;\nb;x;*\n\nc;y;*;;\n", ';').unwrap();
        assert_eq!(h.levels(), 3);
        assert_eq!(h.domain_size(), 3);
        assert_eq!(h.cardinality(1), 2);
        assert_eq!(h.generalize_str("c", 1), Some("y"));
        assert_eq!(h.generalize_str("a", 2), Some("*"));
        assert_eq!(h.group_size(h.leaf_code("a").unwrap(), 1), 2);
        assert_eq!(h.group_size(h.leaf_code("c").unwrap(), 1), 1);
        assert_eq!(h.group_size(0, 0), 1);
    }

    #[test]
    fn ragged_rows_are_rejected_with_line() {
        let e = Hierarchy::parse_arx_csv("t", "a;x;*\nb;*\n", ';').unwrap_err();
        match e {
            AnonError::Hierarchy { line, reason, .. } => {
                assert_eq!(line, 2);
                assert!(reason.contains("2 levels"), "{reason}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn non_functional_levels_and_duplicates_are_rejected() {
        let e = Hierarchy::parse_arx_csv("t", "a;x;1\nb;x;2\n", ';').unwrap_err();
        assert!(matches!(e, AnonError::Hierarchy { line: 2, .. }), "{e}");
        let e = Hierarchy::parse_arx_csv("t", "a;x\na;x\n", ';').unwrap_err();
        assert!(matches!(e, AnonError::Hierarchy { line: 2, .. }), "{e}");
        let e = Hierarchy::parse_arx_csv("t", "a;;x\n", ';').unwrap_err();
        assert!(matches!(e, AnonError::Hierarchy { line: 1, .. }), "{e}");
        assert!(Hierarchy::parse_arx_csv("t", "\n\n", ';').is_err());
    }

    #[test]
    fn r_anon_4_age_builder_top_codes() {
        let h = age_intervals("age", 0, 100, &[5, 10, 20], Some(90)).unwrap();
        assert_eq!(h.levels(), 5);
        assert_eq!(h.generalize_str("43", 1), Some("40-44"));
        assert_eq!(h.generalize_str("43", 2), Some("40-49"));
        assert_eq!(h.generalize_str("43", 3), Some("40-59"));
        assert_eq!(h.generalize_str("95", 1), Some("90歳以上"));
        assert_eq!(h.generalize_str("85", 3), Some("80-89"));
        assert_eq!(h.generalize_str("85", 4), Some("*"));
        assert!(age_intervals("age", 0, 10, &[5, 7], None).is_err());
    }

    #[test]
    fn date_builder() {
        let h = dates("d", &["2024-03-05", "2024-03-09", "2023-12-31"]).unwrap();
        assert_eq!(h.generalize_str("2024-03-09", 1), Some("2024-03"));
        assert_eq!(h.generalize_str("2023-12-31", 2), Some("2023"));
        assert_eq!(h.cardinality(1), 2);
        assert!(dates("d", &["2024/03/05"]).is_err());
    }

    #[test]
    fn r_anon_4_icd10_builder() {
        let h = icd10(
            "dx",
            &["E11.9", "E10.1", "I21.0", "C34.1"],
            &[("E10", "E14"), ("I20", "I25"), ("C30", "C39")],
        )
        .unwrap();
        assert_eq!(h.levels(), 5);
        assert_eq!(h.generalize_str("E11.9", 1), Some("E11"));
        assert_eq!(h.generalize_str("E11.9", 2), Some("E10-E14"));
        assert_eq!(h.generalize_str("E11.9", 3), Some("Chapter IV"));
        assert_eq!(h.generalize_str("C34.1", 3), Some("Chapter II"));
        assert_eq!(h.generalize_str("I21.0", 4), Some("*"));
        let h2 = icd10("dx", &["S72.0", "T14"], &[]).unwrap();
        assert_eq!(h2.generalize_str("T14", 2), Some("Chapter XIX"));
        assert!(icd10("dx", &["E1"], &[]).is_err());
        assert_eq!(icd10_chapter("H65"), Some("VIII"));
    }

    #[test]
    fn prefix_builders() {
        let h = postal_code("zip", &["1000001", "1000002", "1500001"]).unwrap();
        assert_eq!(h.generalize_str("1000001", 2), Some("100****"));
        assert_eq!(h.cardinality(2), 2);
        assert_eq!(h.cardinality(3), 1);
        let j = jlac10("lab", &["3D010000001927101"]).unwrap();
        assert_eq!(
            j.generalize_str("3D010000001927101", 1),
            Some("3D010************")
        );
        let y = yj_code("yj", &["2189016F1020"]).unwrap();
        assert_eq!(y.generalize_str("2189016F1020", 2), Some("2189********"));
        assert!(prefix_mask("x", &["a"], &[1, 3]).is_err());
    }
}
