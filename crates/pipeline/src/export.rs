//! The handler side (R-REC-1): `kiban export --to PRODUCER`. A handler runs kiban over its
//! own exports; only files of patients the gate lets through on the provision date reach
//! the output folder, and the provision record (date, producer, patients, items; one batch
//! record per run) is written.
//!
//! Per file, the format readers say whose data it holds:
//! * a file of eligible patients only is copied byte for byte (SS-MIX2 messages, FHIR
//!   Bundles, UKE/DPC/CSV files of one patient…);
//! * a Bulk Data NDJSON file (one resource per line) is rewritten with the lines of eligible
//!   patients only;
//! * anything else is **withheld** and counted by reason: ineligible patients, a file mixing
//!   eligible and ineligible patients in a format that cannot be split, a unit that could not
//!   be read (its patient is unknown), a file no reader recognizes, a line or file that names
//!   no patient. When in doubt, nothing is provided.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kiban_consent::Eligibility;
use kiban_ingest::{Format, Item, SourceFile, Ssmix2Name};
use kiban_records::ProvisionRecord;
use serde::Serialize;

use crate::{PipelineError, Refusal, Workspace};

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The handler running the export (registered in this workspace, with its filing and
    /// its patients' opt-out events).
    pub handler: String,
    pub producer_name: String,
    pub producer_address: String,
    /// Files and folders to export from.
    pub sources: Vec<PathBuf>,
    /// The output folder: must not exist or be empty.
    pub out: PathBuf,
    /// The provision date: the gate decides as of this date.
    pub on: NaiveDate,
    /// `None` = detect per file.
    pub format: Option<Format>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportReport {
    pub export_id: String,
    pub handler: String,
    pub producer: String,
    pub on: String,
    pub out: PathBuf,
    pub files_seen: u64,
    /// Copied unchanged.
    pub files_copied: u64,
    /// NDJSON files rewritten with eligible patients' lines only.
    pub files_filtered: u64,
    pub files_withheld: u64,
    pub withheld_by_reason: BTreeMap<String, u64>,
    /// NDJSON lines left out (ineligible or unattributed).
    pub lines_withheld: u64,
    pub patients_exported: u64,
    pub patients_withheld: u64,
    pub patients_withheld_by_reason: BTreeMap<String, u64>,
    /// Items of information provided (facts per table, `identity`).
    pub items: BTreeMap<String, u64>,
    /// The provision record's ID; `None` when nothing was provided.
    pub provision_record: Option<String>,
}

/// What a reader said about one unit of a file.
struct UnitInfo {
    patient_id: Option<String>,
    /// NDJSON: the 1-based line.
    line: Option<usize>,
    facts: BTreeMap<String, u64>,
    identity: bool,
}

enum FileInfo {
    Units(Vec<UnitInfo>),
    /// An SS-MIX2 file replaced by a newer version or invalidated: its patient is in its name.
    Superseded,
}

fn line_of(location: &str) -> Option<usize> {
    location.strip_prefix("line ")?.trim().parse().ok()
}

fn is_ndjson(f: &SourceFile) -> bool {
    let l = f.rel_path.to_ascii_lowercase();
    f.format == Some(Format::Fhir) && (l.ends_with(".ndjson") || l.ends_with(".jsonl"))
}

fn read_units(file: SourceFile, handler: String) -> Result<FileInfo, PipelineError> {
    let mut units = Vec::new();
    let mut superseded = false;
    let mut sink = |item: Item| match item {
        Item::Facts(u) => {
            let mut facts: BTreeMap<String, u64> = BTreeMap::new();
            for (f, _) in &u.facts {
                *facts.entry(f.table().name().to_string()).or_default() += 1;
            }
            units.push(UnitInfo {
                line: u.facts.first().and_then(|(_, p)| line_of(&p.source_record)),
                patient_id: Some(u.patient_id.clone()).filter(|p| !p.trim().is_empty()),
                identity: u.identity.is_some(),
                facts,
            });
        }
        Item::Quarantine(q) => units.push(UnitInfo {
            patient_id: None,
            line: line_of(&q.location),
            facts: BTreeMap::new(),
            identity: false,
        }),
        Item::Superseded { .. } | Item::Invalidated { .. } => superseded = true,
        // An SS-MIX2 extended-storage attachment belongs to its item's patient.
        Item::Attachment(a) => units.push(UnitInfo {
            line: None,
            patient_id: Some(a.patient_id),
            facts: BTreeMap::new(),
            identity: false,
        }),
    };
    kiban_ingest::read_file(&file, &handler, &mut sink)?;
    Ok(if superseded {
        FileInfo::Superseded
    } else {
        FileInfo::Units(units)
    })
}

impl Workspace {
    /// Exports the eligible part of `sources` to `out` and writes the provision record
    /// (R-REC-1). Audited as `export`.
    pub async fn export(&self, opts: &ExportOptions) -> Result<ExportReport, PipelineError> {
        self.audited(
            "export",
            &format!("handler:{} producer:{}", opts.handler, opts.producer_name),
            self.export_inner(opts),
            |r: &ExportReport| {
                vec![
                    ("files", r.files_seen),
                    ("files_copied", r.files_copied),
                    ("files_filtered", r.files_filtered),
                    ("files_withheld", r.files_withheld),
                    ("patients_exported", r.patients_exported),
                    ("patients_withheld", r.patients_withheld),
                ]
            },
        )
        .await
    }

    async fn export_inner(&self, opts: &ExportOptions) -> Result<ExportReport, PipelineError> {
        if opts.producer_name.trim().is_empty() || opts.producer_address.trim().is_empty() {
            return Err(Refusal::ProducerRequired.into());
        }
        let handler = self.handler_ready_on(&opts.handler, opts.on).await?;
        crate::ingest::paths_exist(&opts.sources)?;
        if opts.out.exists()
            && std::fs::read_dir(&opts.out)
                .map_err(|e| PipelineError::io(&opts.out, e))?
                .next()
                .is_some()
        {
            return Err(Refusal::OutputNotEmpty {
                path: opts.out.clone(),
            }
            .into());
        }
        std::fs::create_dir_all(&opts.out).map_err(|e| PipelineError::io(&opts.out, e))?;
        let snapshot = kiban_consent::Gate::load(&self.db, &opts.handler).await?;
        let files = kiban_ingest::discover(&opts.sources, opts.format)?;

        let export_id = format!("x{}", crate::ingest::new_id());
        let mut r = ExportReport {
            export_id: export_id.clone(),
            handler: opts.handler.clone(),
            producer: opts.producer_name.clone(),
            on: opts.on.to_string(),
            out: opts.out.clone(),
            files_seen: files.len() as u64,
            ..Default::default()
        };
        // patient ID (as spelled in the files) → decision and key, and the patients actually
        // provided. Every spelling is normalized with the handler's format first, so two
        // spellings of one patient share one key and one decision; an ID that does not fit
        // the format is withheld.
        let id_format = handler.patient_id_format;
        let mut decisions: HashMap<String, (Option<String>, Verdict)> = HashMap::new();
        let mut provided: BTreeSet<String> = BTreeSet::new();
        let mut written: BTreeSet<String> = BTreeSet::new();
        let mut decide = |pid: &str| -> Verdict {
            decisions
                .entry(pid.to_string())
                .or_insert_with(|| match self.patient_key(&opts.handler, id_format, pid) {
                    Ok(key) => {
                        let v = Verdict::Gate(snapshot.eligibility(&key, opts.on));
                        (Some(key), v)
                    }
                    Err(_) => (None, Verdict::BadId),
                })
                .1
        };

        for file in files {
            let withhold = |r: &mut ExportReport, why: &str| {
                r.files_withheld += 1;
                *r.withheld_by_reason.entry(why.to_string()).or_default() += 1;
            };
            if file.format.is_none() {
                withhold(&mut r, "unrecognized_format");
                continue;
            }
            if !written.insert(file.rel_path.clone()) {
                // The path is not named: SS-MIX2 paths carry patient IDs, and refusals end
                // up in logs. Overlapping inputs are the only way to get here.
                return Err(Refusal::DuplicateRelativePath.into());
            }
            let target = opts.out.join(&file.rel_path);
            let (f2, h2) = (file.clone(), opts.handler.clone());
            let info = tokio::task::spawn_blocking(move || read_units(f2, h2))
                .await
                .map_err(|e| PipelineError::Internal(format!("reader stopped: {e}")))??;
            let units = match info {
                FileInfo::Superseded => {
                    // The newer version is exported instead; the patient is in the name.
                    let name = file
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    match Ssmix2Name::parse(&name) {
                        Some(n) if decide(&n.patient_id).is_eligible() => {
                            copy_file(&file.path, &target)?;
                            provided.insert(n.patient_id);
                            r.files_copied += 1;
                        }
                        Some(n) => withhold(&mut r, &decide(&n.patient_id).reason()),
                        None => withhold(&mut r, "unattributed"),
                    }
                    continue;
                }
                FileInfo::Units(u) => u,
            };
            if is_ndjson(&file) {
                // Lines of eligible patients only.
                let mut keep: HashMap<usize, &UnitInfo> = HashMap::new();
                for u in &units {
                    if let (Some(line), Some(pid)) = (u.line, &u.patient_id)
                        && decide(pid).is_eligible()
                    {
                        keep.insert(line, u);
                    }
                }
                let (kept, dropped) = filter_lines(&file.path, &target, &keep)?;
                r.lines_withheld += dropped;
                if kept == 0 {
                    let _ = std::fs::remove_file(&target);
                    withhold(&mut r, "no_eligible_line");
                    continue;
                }
                r.files_filtered += 1;
                for u in keep.values() {
                    add_items(&mut r.items, u);
                    if let Some(pid) = &u.patient_id {
                        provided.insert(pid.clone());
                    }
                }
                continue;
            }
            if units.iter().any(|u| u.patient_id.is_none()) {
                withhold(&mut r, "unreadable_unit");
                continue;
            }
            if units.is_empty() {
                withhold(&mut r, "unattributed");
                continue;
            }
            let verdicts: Vec<Verdict> = units
                .iter()
                .filter_map(|u| u.patient_id.as_deref())
                .map(&mut decide)
                .collect();
            if verdicts.iter().all(Verdict::is_eligible) {
                copy_file(&file.path, &target)?;
                r.files_copied += 1;
                for u in &units {
                    add_items(&mut r.items, u);
                    if let Some(pid) = &u.patient_id {
                        provided.insert(pid.clone());
                    }
                }
            } else if verdicts.iter().any(Verdict::is_eligible) {
                withhold(&mut r, "mixed_patients");
            } else {
                let first = verdicts
                    .first()
                    .copied()
                    .unwrap_or(Verdict::Gate(Eligibility::Eligible));
                withhold(&mut r, &first.reason());
            }
        }
        // Per patient (spellings of one ID counted once): the keys provided, and why the others
        // were not.
        let provided_keys: BTreeSet<String> = provided
            .iter()
            .filter_map(|pid| decisions.get(pid).and_then(|(k, _)| k.clone()))
            .collect();
        let mut withheld: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut bad_ids = 0u64;
        for (key, v) in decisions.values() {
            let why = if !v.is_eligible() {
                v.reason_code()
            } else {
                // Eligible but every file of theirs was withheld for another reason.
                "files_withheld"
            };
            match key {
                Some(k) if !provided_keys.contains(k) => {
                    withheld.insert(k.clone(), why);
                }
                Some(_) => {}
                None => bad_ids += 1,
            }
        }
        for why in withheld.values() {
            r.patients_withheld += 1;
            *r.patients_withheld_by_reason
                .entry((*why).to_string())
                .or_default() += 1;
        }
        if bad_ids > 0 {
            r.patients_withheld += bad_ids;
            *r.patients_withheld_by_reason
                .entry(Verdict::BadId.reason_code().to_string())
                .or_default() += bad_ids;
        }
        r.patients_exported = provided_keys.len() as u64;
        if !provided_keys.is_empty() {
            let patient_keys: Vec<String> = provided_keys.into_iter().collect();
            let id = kiban_records::record_provision(
                &self.db,
                &ProvisionRecord {
                    provided_date: opts.on,
                    last_provided_date: None,
                    handler_code: opts.handler.clone(),
                    producer_name: opts.producer_name.clone(),
                    producer_address: opts.producer_address.clone(),
                    patient_keys,
                    items: r.items.clone(),
                    batch_id: Some(export_id),
                },
            )
            .await?;
            r.provision_record = Some(id);
        }
        Ok(r)
    }
}

/// The export's decision on one patient ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// The gate's, on the ID normalized with the handler's format.
    Gate(Eligibility),
    /// The ID does not fit the handler's patient-ID format: withheld, nothing to decide on.
    BadId,
}

impl Verdict {
    fn is_eligible(&self) -> bool {
        matches!(self, Verdict::Gate(e) if e.is_eligible())
    }

    /// The withheld-file reason of an ineligible patient: `ineligible:` and the
    /// withheld-patient reason code.
    fn reason(&self) -> String {
        format!("ineligible:{}", self.reason_code())
    }

    /// The withheld-patient reason code.
    fn reason_code(&self) -> &'static str {
        match self {
            Verdict::Gate(e) => e.reason_code(),
            Verdict::BadId => "patient_id_format",
        }
    }
}

fn add_items(items: &mut BTreeMap<String, u64>, u: &UnitInfo) {
    for (t, n) in &u.facts {
        *items.entry(t.clone()).or_default() += n;
    }
    if u.identity {
        *items.entry("identity".into()).or_default() += 1;
    }
}

fn copy_file(from: &Path, to: &Path) -> Result<(), PipelineError> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    }
    std::fs::copy(from, to).map_err(|e| PipelineError::io(to, e))?;
    Ok(())
}

/// Writes the lines of `from` whose 1-based number is in `keep` to `to`; returns (kept,
/// dropped non-blank lines).
fn filter_lines<T>(
    from: &Path,
    to: &Path,
    keep: &HashMap<usize, T>,
) -> Result<(u64, u64), PipelineError> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
    }
    let input = std::fs::File::open(from).map_err(|e| PipelineError::io(from, e))?;
    let mut reader = BufReader::new(input);
    let out = std::fs::File::create(to).map_err(|e| PipelineError::io(to, e))?;
    let mut w = std::io::BufWriter::new(out);
    let (mut kept, mut dropped) = (0u64, 0u64);
    let mut buf = Vec::new();
    let mut lineno = 0usize;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| PipelineError::io(from, e))?;
        if n == 0 {
            break;
        }
        lineno += 1;
        if keep.contains_key(&lineno) {
            w.write_all(&buf).map_err(|e| PipelineError::io(to, e))?;
            if !buf.ends_with(b"\n") {
                w.write_all(b"\n").map_err(|e| PipelineError::io(to, e))?;
            }
            kept += 1;
        } else if buf.iter().any(|b| !b.is_ascii_whitespace()) {
            dropped += 1;
        }
    }
    w.flush().map_err(|e| PipelineError::io(to, e))?;
    Ok((kept, dropped))
}
