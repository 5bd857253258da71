//! The in-memory, dictionary-encoded table the search runs on: one row per record (or per
//! *person* for longitudinal releases), one leaf code per quasi-identifier, and optionally a
//! sensitive attribute code for l-diversity / t-closeness.

use crate::AnonError;
use crate::hierarchy::Hierarchy;

/// The sensitive attribute: a code per row plus its labels, and optionally a hierarchy (needed
/// only for hierarchical-distance t-closeness).
#[derive(Debug, Clone)]
pub struct Sensitive {
    pub(crate) name: String,
    pub(crate) codes: Vec<u32>,
    pub(crate) labels: Vec<String>,
    index: std::collections::HashMap<String, u32>,
    pub(crate) hierarchy: Option<Hierarchy>,
}

/// Quasi-identifier table: columns of leaf codes into each attribute's [`Hierarchy`].
#[derive(Debug, Clone)]
pub struct QiTable {
    pub(crate) names: Vec<String>,
    pub(crate) hierarchies: Vec<Hierarchy>,
    /// `columns[d][row]`: leaf code of row `row` in QI `d`.
    pub(crate) columns: Vec<Vec<u32>>,
    pub(crate) sensitive: Option<Sensitive>,
    rows: usize,
}

impl QiTable {
    /// An empty table over the given quasi-identifiers (one hierarchy each; the hierarchy's
    /// name is the attribute name).
    pub fn new(hierarchies: Vec<Hierarchy>) -> Result<QiTable, AnonError> {
        if hierarchies.is_empty() {
            return Err(AnonError::Config(
                "at least one quasi-identifier is needed".into(),
            ));
        }
        let names = hierarchies.iter().map(|h| h.name().to_string()).collect();
        let columns = vec![Vec::new(); hierarchies.len()];
        Ok(QiTable {
            names,
            hierarchies,
            columns,
            sensitive: None,
            rows: 0,
        })
    }

    /// Declares a sensitive attribute (before any row is pushed). With a hierarchy, values
    /// must be in it (hierarchical t-closeness); without, any value is accepted.
    pub fn with_sensitive(
        mut self,
        name: &str,
        hierarchy: Option<Hierarchy>,
    ) -> Result<QiTable, AnonError> {
        if self.rows > 0 {
            return Err(AnonError::Config(
                "declare the sensitive attribute before adding rows".into(),
            ));
        }
        let (labels, index) = match &hierarchy {
            Some(h) => {
                let labels: Vec<String> = (0..h.domain_size())
                    .map(|i| h.label(0, i as u32).to_string())
                    .collect();
                let index = labels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.clone(), i as u32))
                    .collect();
                (labels, index)
            }
            None => (Vec::new(), Default::default()),
        };
        self.sensitive = Some(Sensitive {
            name: name.to_string(),
            codes: Vec::new(),
            labels,
            index,
            hierarchy,
        });
        Ok(self)
    }

    /// Appends one row: `qi[d]` is the original value of quasi-identifier `d`; `sensitive`
    /// the sensitive value if one was declared. On error nothing is appended; the error names
    /// the row number and attribute, never the value.
    pub fn push_row(&mut self, qi: &[&str], sensitive: Option<&str>) -> Result<(), AnonError> {
        let line = self.rows + 1;
        let table_err = |reason: String| AnonError::Table {
            path: "<table>".into(),
            line,
            reason,
        };
        if qi.len() != self.hierarchies.len() {
            return Err(table_err(format!(
                "expected {} quasi-identifiers, got {}",
                self.hierarchies.len(),
                qi.len()
            )));
        }
        let mut codes = Vec::with_capacity(qi.len());
        for (d, v) in qi.iter().enumerate() {
            match self.hierarchies[d].leaf_code(v) {
                Some(c) => codes.push(c),
                None => {
                    return Err(table_err(format!(
                        "value of attribute {} is not in its hierarchy",
                        self.names[d]
                    )));
                }
            }
        }
        let s_code = match (&mut self.sensitive, sensitive) {
            (None, None) => None,
            (None, Some(_)) => return Err(table_err("no sensitive attribute declared".into())),
            (Some(_), None) => return Err(table_err("sensitive value missing".into())),
            (Some(s), Some(v)) => match s.index.get(v) {
                Some(c) => Some(*c),
                None if s.hierarchy.is_some() => {
                    return Err(table_err(format!(
                        "value of sensitive attribute {} is not in its hierarchy",
                        s.name
                    )));
                }
                None => {
                    let c = s.labels.len() as u32;
                    s.labels.push(v.to_string());
                    s.index.insert(v.to_string(), c);
                    Some(c)
                }
            },
        };
        for (col, c) in self.columns.iter_mut().zip(codes) {
            col.push(c);
        }
        if let (Some(s), Some(c)) = (&mut self.sensitive, s_code) {
            s.codes.push(c);
        }
        self.rows += 1;
        Ok(())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }
    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
    /// Quasi-identifier names, in column order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
    /// Hierarchies, in column order.
    pub fn hierarchies(&self) -> &[Hierarchy] {
        &self.hierarchies
    }
    /// Leaf code of row `row`, quasi-identifier `d`.
    pub fn code(&self, row: usize, d: usize) -> u32 {
        self.columns[d][row]
    }
    /// The generalized label of row `row`, quasi-identifier `d`, at `level`.
    pub fn generalized_label(&self, row: usize, d: usize, level: usize) -> &str {
        let h = &self.hierarchies[d];
        h.label(level, h.generalize(self.columns[d][row], level))
    }
    /// Sensitive attribute name, if declared.
    pub fn sensitive_name(&self) -> Option<&str> {
        self.sensitive.as_ref().map(|s| s.name.as_str())
    }
}
