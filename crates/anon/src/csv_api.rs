//! Table-level anonymization for the CLI (`kiban anonymize`), ARX-style: quasi-identifiers
//! are the attributes with a hierarchy file `<dataset>_hierarchy_<ATTR>.csv` in the hierarchy
//! directory unless listed explicitly. A thin layer over [`crate::anonymize_table`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::AnonError;
use crate::hierarchy::Hierarchy;
use crate::privacy::{LDiversity, TCloseness};
use crate::search::{AnonymizeConfig, Metric, anonymize_table};
use crate::table::QiTable;

/// Options of one table-level run.
#[derive(Debug, Clone)]
pub struct AnonymizeOptions {
    pub input: PathBuf,
    pub hierarchy_dir: PathBuf,
    pub k: usize,
    /// Fraction of records that may be suppressed (ARX's suppression limit).
    pub suppression_limit: f64,
    pub metric: Metric,
    pub l_diversity: Option<LDiversity>,
    pub t_closeness: Option<TCloseness>,
    /// Sensitive column (required with l-diversity / t-closeness); never a QI.
    pub sensitive: Option<String>,
    /// Explicit quasi-identifiers; default: every column with a hierarchy file.
    pub qis: Option<Vec<String>>,
    /// Field separator of the input, the hierarchies and the output.
    pub separator: u8,
    /// Where to write the anonymized table (None: do not write).
    pub output: Option<PathBuf>,
    /// Remove suppressed records instead of writing them with `*` in every QI (ARX's default).
    pub remove_suppressed: bool,
}

impl AnonymizeOptions {
    /// k-anonymity with the Loss metric, ';' separator, suppressed records kept as '*'.
    pub fn new(
        input: impl Into<PathBuf>,
        hierarchy_dir: impl Into<PathBuf>,
        k: usize,
        suppression_limit: f64,
    ) -> Self {
        AnonymizeOptions {
            input: input.into(),
            hierarchy_dir: hierarchy_dir.into(),
            k,
            suppression_limit,
            metric: Metric::Loss,
            l_diversity: None,
            t_closeness: None,
            sensitive: None,
            qis: None,
            separator: b';',
            output: None,
            remove_suppressed: false,
        }
    }
}

/// The result of a table-level run; serializes to
/// `{"levels":{ATTR:LEVEL,…},"information_loss":X,"suppressed":N,"classes":N,"transformations_checked":N,"elapsed_ms":T}`.
#[derive(Debug, Clone, PartialEq)]
pub struct AnonymizeReport {
    /// (attribute, level) in input column order.
    pub levels: Vec<(String, usize)>,
    pub information_loss: f64,
    pub suppressed: usize,
    pub classes: usize,
    pub transformations_checked: usize,
    pub lattice_size: usize,
    pub elapsed_ms: u128,
}

struct Levels<'a>(&'a [(String, usize)]);
impl Serialize for Levels<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for AnonymizeReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("levels", &Levels(&self.levels))?;
        m.serialize_entry("information_loss", &self.information_loss)?;
        m.serialize_entry("suppressed", &self.suppressed)?;
        m.serialize_entry("classes", &self.classes)?;
        m.serialize_entry("transformations_checked", &self.transformations_checked)?;
        m.serialize_entry("elapsed_ms", &self.elapsed_ms)?;
        m.end()
    }
}

fn hierarchy_path(dir: &Path, dataset: &str, attr: &str) -> PathBuf {
    dir.join(format!("{dataset}_hierarchy_{attr}.csv"))
}

/// Runs the optimal search on a CSV table and optionally writes the anonymized table.
pub fn anonymize_csv(opts: &AnonymizeOptions) -> Result<AnonymizeReport, AnonError> {
    let start = Instant::now();
    let path_s = opts.input.display().to_string();
    let dataset = opts
        .input
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| AnonError::Config("input path has no file name".into()))?
        .to_string();
    let sep = char::from(opts.separator);
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(opts.separator)
        .has_headers(true)
        .flexible(false)
        .from_path(&opts.input)
        .map_err(|e| csv_err(&path_s, e))?;
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| csv_err(&path_s, e))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let col = |name: &str| header.iter().position(|h| h == name);

    let sensitive_col =
        match &opts.sensitive {
            Some(s) => Some(col(s).ok_or_else(|| {
                AnonError::Config(format!("sensitive column {s} not in the header"))
            })?),
            None => None,
        };
    let qi_names: Vec<String> = match &opts.qis {
        Some(q) => q.clone(),
        None => header
            .iter()
            .filter(|h| Some(h.as_str()) != opts.sensitive.as_deref())
            .filter(|h| hierarchy_path(&opts.hierarchy_dir, &dataset, h).is_file())
            .cloned()
            .collect(),
    };
    if qi_names.is_empty() {
        return Err(AnonError::Config(format!(
            "no quasi-identifiers: no file {dataset}_hierarchy_<ATTR>.csv in the hierarchy directory matches a column"
        )));
    }
    let mut qi_cols = Vec::with_capacity(qi_names.len());
    let mut hierarchies = Vec::with_capacity(qi_names.len());
    for q in &qi_names {
        if Some(q.as_str()) == opts.sensitive.as_deref() {
            return Err(AnonError::Config(format!(
                "column {q} cannot be both sensitive and a quasi-identifier"
            )));
        }
        qi_cols.push(
            col(q).ok_or_else(|| {
                AnonError::Config(format!("quasi-identifier {q} not in the header"))
            })?,
        );
        let hp = hierarchy_path(&opts.hierarchy_dir, &dataset, q);
        hierarchies.push(Hierarchy::load_arx_csv(&hp, q, sep)?);
    }
    let mut table = QiTable::new(hierarchies)?;
    if let Some(s) = &opts.sensitive {
        let sh = match opts.t_closeness {
            Some(TCloseness::Hierarchical { .. }) => {
                let hp = hierarchy_path(&opts.hierarchy_dir, &dataset, s);
                Some(Hierarchy::load_arx_csv(&hp, s, sep)?)
            }
            _ => None,
        };
        table = table.with_sensitive(s, sh)?;
    }

    let mut records: Vec<csv::StringRecord> = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| csv_err(&path_s, e))?;
        let qi: Vec<&str> = qi_cols
            .iter()
            .map(|c| rec.get(*c).unwrap_or("").trim())
            .collect();
        let sv = sensitive_col.map(|c| rec.get(c).unwrap_or("").trim());
        table.push_row(&qi, sv).map_err(|e| match e {
            AnonError::Table { reason, .. } => AnonError::Table {
                path: path_s.clone(),
                line,
                reason,
            },
            other => other,
        })?;
        records.push(rec);
    }

    let cfg = AnonymizeConfig {
        k: opts.k,
        suppression_limit: opts.suppression_limit,
        metric: opts.metric,
        l_diversity: opts.l_diversity,
        t_closeness: opts.t_closeness,
    };
    let sol = anonymize_table(&table, &cfg)?;

    if let Some(out) = &opts.output {
        write_output(
            out,
            opts,
            &header,
            &records,
            &table,
            &qi_cols,
            &sol.levels,
            &sol.suppressed_rows,
        )?;
    }
    Ok(AnonymizeReport {
        levels: qi_names
            .into_iter()
            .zip(sol.levels.iter().copied())
            .collect(),
        information_loss: sol.information_loss,
        suppressed: sol.suppressed_rows.len(),
        classes: sol.classes,
        transformations_checked: sol.transformations_checked,
        lattice_size: sol.lattice_size,
        elapsed_ms: start.elapsed().as_millis(),
    })
}

fn csv_err(path: &str, e: csv::Error) -> AnonError {
    let line = e.position().map_or(0, |p| p.line() as usize);
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("record has {len} fields, expected {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".to_string(),
        csv::ErrorKind::Io(_) => "cannot read file".to_string(),
        _ => "malformed CSV".to_string(),
    };
    AnonError::Table {
        path: path.to_string(),
        line,
        reason,
    }
}

#[allow(clippy::too_many_arguments)]
fn write_output(
    out: &Path,
    opts: &AnonymizeOptions,
    header: &[String],
    records: &[csv::StringRecord],
    table: &QiTable,
    qi_cols: &[usize],
    levels: &[usize],
    suppressed: &[usize],
) -> Result<(), AnonError> {
    let out_s = out.display().to_string();
    let werr = |_e: csv::Error| AnonError::Table {
        path: out_s.clone(),
        line: 0,
        reason: "cannot write output".into(),
    };
    let mut w = csv::WriterBuilder::new()
        .delimiter(opts.separator)
        .from_path(out)
        .map_err(werr)?;
    w.write_record(header).map_err(werr)?;
    let mut supp = vec![false; records.len()];
    for r in suppressed {
        supp[*r] = true;
    }
    let mut qi_of_col = vec![None; header.len()];
    for (d, c) in qi_cols.iter().enumerate() {
        qi_of_col[*c] = Some(d);
    }
    for (r, rec) in records.iter().enumerate() {
        if supp[r] && opts.remove_suppressed {
            continue;
        }
        let fields: Vec<&str> = (0..header.len())
            .map(|c| match qi_of_col[c] {
                Some(_) if supp[r] => "*",
                Some(d) => table.generalized_label(r, d, levels[d]),
                None => rec.get(c).unwrap_or(""),
            })
            .collect();
        w.write_record(&fields).map_err(werr)?;
    }
    w.flush().map_err(|e| AnonError::io(out, e))?;
    Ok(())
}
