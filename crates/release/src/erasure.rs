//! Erasing from a stored package (R-OPT-6, R-REC-5, R-SEC-4): the producer's own copy of an
//! internal-evaluation package must not keep a person whose data was deleted.
//!
//! [`remove_persons`] re-writes a package's tables without the rows of a set of release
//! pseudonyms (the caller derives them from the release key and the person keys, which this
//! crate never sees), brings the manifest's row counts, person count and file hashes up to
//! date, and notes the erasure in the manifest (`erasures`: date, persons, rows — never an
//! identity or a pseudonym). [`shred_file`] overwrites a file before unlinking it.
//!
//! Crash safety: a table is written whole into `.erasure-tmp/` first; then, per file, the old
//! file is renamed to `NAME.erasing`, the new one renamed into place and the old one shredded.
//! A run that finds `NAME.erasing` beside a missing `NAME` puts it back (the swap did not
//! happen); beside a present `NAME` it shreds it (the swap did). The manifest is written last
//! and recomputed from the files themselves, so a run after a crash repairs it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use arrow::array::{Array, BooleanArray, RecordBatch, RecordBatchReader, StringArray};
use chrono::NaiveDate;
use kiban_model::Table;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ReleaseError;
use crate::package::{TableSink, file_entry};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The risk report's files, beside the manifest.
pub const RISK_FILES: [&str; 3] = ["risk.json", "risk_report.html", "risk_report.pdf"];
const TMP_DIR: &str = ".erasure-tmp";
const SWAP_SUFFIX: &str = ".erasing";

/// Whether `name` is a file name kiban writes into a package: a table's `.parquet` or `.csv`,
/// the risk report's files or the manifest. Nothing else is ever deleted from a package
/// folder (a plain name: no folder, no `..`).
pub fn is_package_file_name(name: &str) -> bool {
    if name == MANIFEST
        || RISK_FILES.contains(&name)
        || name == crate::dictionary::DICTIONARY_CSV
        || name == crate::dictionary::DICTIONARY_JSON
        || image_person(name).is_some()
    {
        return true;
    }
    Table::ALL.iter().any(|t| {
        name.strip_prefix(t.name())
            .is_some_and(|ext| ext == ".parquet" || ext == ".csv")
    })
}

/// The person (pseudonym) of a de-identified DICOM object kiban wrote into a package:
/// `images/<person_id>/<study_uid>/<sop_instance_uid>.dcm`, nothing else.
pub fn image_person(name: &str) -> Option<&str> {
    let mut parts = name.split('/');
    let (Some(dir), Some(person), Some(study), Some(file), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let uid = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    };
    (dir == crate::images::IMAGES_DIR
        && !person.is_empty()
        && person.len() <= 64
        && person.bytes().all(|b| b.is_ascii_alphanumeric())
        && uid(study)
        && file.strip_suffix(".dcm").is_some_and(uid))
    .then_some(person)
}

/// What [`remove_persons`] changed in one package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PackageRewrite {
    /// Persons removed (their rows in the person table).
    pub persons: u64,
    /// Rows removed per table.
    pub rows: BTreeMap<String, u64>,
    /// Files re-written (Parquet and CSV).
    pub files: u64,
    /// The SHA-256 of `manifest.json` as it now is.
    pub manifest_sha256: String,
    /// Rows removed per pseudonym, all tables together, so that the caller can say whose
    /// rows went where. Kept out of any serialized output.
    #[serde(skip)]
    pub rows_by_pseudonym: HashMap<String, u64>,
}

impl PackageRewrite {
    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// Re-writes the package in `dir` without the rows whose `person_id` is one of `pseudonyms`,
/// and updates its manifest (see the module documentation). A package that holds none of
/// them is left as it is (its manifest too, unless an earlier run was interrupted).
pub fn remove_persons(
    dir: &Path,
    pseudonyms: &HashSet<String>,
    erased_on: NaiveDate,
) -> Result<PackageRewrite, ReleaseError> {
    let manifest_path = dir.join(MANIFEST);
    let text =
        std::fs::read_to_string(&manifest_path).map_err(|e| ReleaseError::io(&manifest_path, e))?;
    let mut manifest: serde_json::Value = serde_json::from_str(&text)
        .map_err(|_| ReleaseError::Spec(format!("{}: not a manifest", manifest_path.display())))?;
    let tables = manifest_tables(&manifest, &manifest_path)?;
    for (_, parquet, csv) in &tables {
        recover_swap(&dir.join(parquet))?;
        recover_swap(&dir.join(csv))?;
    }
    let tmp = dir.join(TMP_DIR);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| ReleaseError::io(&tmp, e))?;
    }

    let mut out = PackageRewrite::default();
    for (name, parquet, csv) in &tables {
        let parquet_path = dir.join(parquet);
        let removed = filter_table(
            &parquet_path,
            name,
            pseudonyms,
            &tmp,
            &mut out.rows_by_pseudonym,
        )?;
        let Some((removed_rows, new_parquet, new_csv)) = removed else {
            continue;
        };
        swap_in(&new_parquet, &parquet_path)?;
        swap_in(&new_csv, &dir.join(csv))?;
        out.files += 2;
        out.rows.insert(name.clone(), removed_rows);
        if name == Table::Person.name() {
            out.persons = removed_rows;
        }
    }
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| ReleaseError::io(&tmp, e))?;
    }

    // The manifest, recomputed from the files: row counts, persons, hashes.
    for (name, parquet, _) in &tables {
        let rows = parquet_rows(&dir.join(parquet))?;
        manifest["tables"][name]["rows"] = rows.into();
        if name == Table::Person.name() {
            manifest["persons"] = rows.into();
        }
    }
    // The persons' de-identified images go with their rows: shredded, and out of the list.
    let mut images_removed = 0u64;
    if let Some(files) = manifest["files"].as_array_mut() {
        let mut kept = Vec::with_capacity(files.len());
        for f in files.drain(..) {
            let gone = f["path"]
                .as_str()
                .and_then(image_person)
                .is_some_and(|p| pseudonyms.contains(p));
            if gone {
                if let Some(path) = f["path"].as_str() {
                    let p = dir.join(path);
                    shred_file(&p).map_err(|e| ReleaseError::io(&p, e))?;
                    images_removed += 1;
                }
            } else {
                kept.push(f);
            }
        }
        *files = kept;
    }
    if images_removed > 0 {
        if let Some(n) = manifest["images"]["objects"].as_u64() {
            manifest["images"]["objects"] = n.saturating_sub(images_removed).into();
        }
        out.files += images_removed;
    }
    for p in pseudonyms {
        // Empty folders left by the shredded objects (a plain name: checked first).
        if p.bytes().all(|b| b.is_ascii_alphanumeric()) && !p.is_empty() {
            let person_dir = dir.join(crate::images::IMAGES_DIR).join(p);
            if person_dir.is_dir() {
                for e in
                    std::fs::read_dir(&person_dir).map_err(|e| ReleaseError::io(&person_dir, e))?
                {
                    let e = e.map_err(|e| ReleaseError::io(&person_dir, e))?;
                    let _ = std::fs::remove_dir(e.path());
                }
                let _ = std::fs::remove_dir(&person_dir);
            }
        }
    }
    if let Some(files) = manifest["files"].as_array_mut() {
        for f in files.iter_mut() {
            let Some(path) = f["path"].as_str().map(str::to_string) else {
                continue;
            };
            if !is_package_file_name(&path) {
                return Err(ReleaseError::Spec(format!(
                    "{}: lists a file kiban does not write ({path})",
                    manifest_path.display()
                )));
            }
            let e = file_entry(dir, &dir.join(&path))?;
            f["bytes"] = e.bytes.into();
            f["sha256"] = e.sha256.into();
        }
    }
    if out.total_rows() > 0 {
        let note = serde_json::json!({
            "date": erased_on.to_string(),
            "reason": "deletion_request",
            "persons": out.persons,
            "rows": out.total_rows(),
            "note": "rows of persons whose data was deleted were removed from this copy (R-OPT-6); the risk figures are those of the package as written",
        });
        match manifest["erasures"].as_array_mut() {
            Some(list) => list.push(note),
            None => manifest["erasures"] = serde_json::Value::Array(vec![note]),
        }
    }
    let new_text =
        serde_json::to_string_pretty(&manifest).map_err(|e| ReleaseError::Spec(e.to_string()))?;
    if new_text != text {
        let tmp_manifest = dir.join(format!("{MANIFEST}.tmp"));
        std::fs::write(&tmp_manifest, &new_text).map_err(|e| ReleaseError::io(&tmp_manifest, e))?;
        swap_in(&tmp_manifest, &manifest_path)?;
        out.manifest_sha256 = hex::encode(Sha256::digest(new_text.as_bytes()));
    } else {
        out.manifest_sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    }
    Ok(out)
}

/// (table name, parquet file, csv file) of every table the manifest lists; refuses a
/// manifest that names a file kiban does not write.
fn manifest_tables(
    manifest: &serde_json::Value,
    path: &Path,
) -> Result<Vec<(String, String, String)>, ReleaseError> {
    let bad = |what: &str| ReleaseError::Spec(format!("{}: {what}", path.display()));
    let tables = manifest["tables"]
        .as_object()
        .ok_or_else(|| bad("no tables"))?;
    let mut out = Vec::new();
    for (name, entry) in tables {
        let file = |k: &str| -> Result<String, ReleaseError> {
            let f = entry[k]
                .as_str()
                .ok_or_else(|| bad("a table without its files"))?;
            let expected = format!("{name}.{k}");
            if f != expected || !is_package_file_name(f) {
                return Err(bad("lists a table file kiban does not write"));
            }
            Ok(f.to_string())
        };
        out.push((name.clone(), file("parquet")?, file("csv")?));
    }
    Ok(out)
}

/// Filters one table: `None` when it holds none of `pseudonyms`; otherwise the rows removed
/// and the new Parquet and CSV files (written under `tmp`).
fn filter_table(
    parquet: &Path,
    name: &str,
    pseudonyms: &HashSet<String>,
    tmp: &Path,
    by_pseudonym: &mut HashMap<String, u64>,
) -> Result<Option<(u64, PathBuf, PathBuf)>, ReleaseError> {
    // First pass: does the table hold any of them at all?
    let mut any = false;
    for batch in read_parquet(parquet)? {
        let batch = batch?;
        let ids = person_ids(&batch, parquet)?;
        if (0..ids.len()).any(|i| !ids.is_null(i) && pseudonyms.contains(ids.value(i))) {
            any = true;
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    std::fs::create_dir_all(tmp).map_err(|e| ReleaseError::io(tmp, e))?;
    let reader = read_parquet(parquet)?;
    let schema = reader.schema();
    let mut sink = TableSink::create(tmp, name, schema)?;
    let mut removed = 0u64;
    for batch in reader {
        let batch = batch?;
        let ids = person_ids(&batch, parquet)?;
        let keep: BooleanArray = (0..ids.len())
            .map(|i| {
                let gone = !ids.is_null(i) && pseudonyms.contains(ids.value(i));
                if gone {
                    *by_pseudonym.entry(ids.value(i).to_string()).or_default() += 1;
                }
                Some(!gone)
            })
            .collect();
        let kept = arrow::compute::filter_record_batch(&batch, &keep)?;
        removed += (batch.num_rows() - kept.num_rows()) as u64;
        if kept.num_rows() > 0 {
            sink.write(&kept)?;
        }
    }
    let (_, p, c) = sink.finish()?;
    Ok(Some((removed, p, c)))
}

fn read_parquet(
    path: &Path,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, ReleaseError> {
    let f = File::open(path).map_err(|e| ReleaseError::io(path, e))?;
    Ok(ParquetRecordBatchReaderBuilder::try_new(f)?.build()?)
}

fn parquet_rows(path: &Path) -> Result<u64, ReleaseError> {
    let f = File::open(path).map_err(|e| ReleaseError::io(path, e))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f)?;
    Ok(u64::try_from(b.metadata().file_metadata().num_rows()).unwrap_or(0))
}

fn person_ids<'a>(batch: &'a RecordBatch, path: &Path) -> Result<&'a StringArray, ReleaseError> {
    batch
        .column_by_name("person_id")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| ReleaseError::Spec(format!("{}: no person_id column", path.display())))
}

fn swap_name(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(SWAP_SUFFIX);
    PathBuf::from(s)
}

/// Replaces `target` with `new`; the old file is shredded.
fn swap_in(new: &Path, target: &Path) -> Result<(), ReleaseError> {
    File::open(new)
        .and_then(|f| f.sync_all())
        .map_err(|e| ReleaseError::io(new, e))?;
    let old = swap_name(target);
    std::fs::rename(target, &old).map_err(|e| ReleaseError::io(target, e))?;
    std::fs::rename(new, target).map_err(|e| ReleaseError::io(target, e))?;
    shred_file(&old).map_err(|e| ReleaseError::io(&old, e))?;
    Ok(())
}

/// Finishes or undoes a swap a crash interrupted (see the module documentation).
fn recover_swap(target: &Path) -> Result<(), ReleaseError> {
    let old = swap_name(target);
    if !old.exists() {
        return Ok(());
    }
    if target.exists() {
        shred_file(&old).map_err(|e| ReleaseError::io(&old, e))?;
    } else {
        std::fs::rename(&old, target).map_err(|e| ReleaseError::io(target, e))?;
    }
    Ok(())
}

/// Overwrites a regular file with zeros, flushes it to disk and removes it (R-SEC-4, as far
/// as the file system allows: a copy-on-write file system or an SSD may keep the old blocks,
/// which only encryption of the disk protects). Returns `false` when there was no such file.
/// A symbolic link is refused (`InvalidInput`): removing it would erase nothing.
pub fn shred_file(path: &Path) -> std::io::Result<bool> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    let zeros = vec![0u8; 1 << 16];
    let mut left = meta.len();
    f.seek(SeekFrom::Start(0))?;
    while left > 0 {
        let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_all()?;
    drop(f);
    std::fs::remove_file(path)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kiban_file_names_are_package_files() {
        for ok in [
            "manifest.json",
            "risk.json",
            "risk_report.pdf",
            "person.parquet",
            "condition_occurrence.csv",
            "image_study.parquet",
        ] {
            assert!(is_package_file_name(ok), "{ok}");
        }
        for bad in [
            "../kiban.db",
            "person.parquet/../x",
            "sub/person.csv",
            "person.txt",
            "kiban.toml",
            "",
            "persons.csv",
        ] {
            assert!(!is_package_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn shred_file_overwrites_and_removes_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        std::fs::write(&p, b"secret").unwrap();
        assert!(shred_file(&p).unwrap());
        assert!(!p.exists());
        assert!(!shred_file(&p).unwrap());
        #[cfg(unix)]
        {
            let target = dir.path().join("t");
            std::fs::write(&target, b"keep").unwrap();
            let link = dir.path().join("l");
            std::os::unix::fs::symlink(&target, &link).unwrap();
            assert_eq!(
                shred_file(&link).unwrap_err().kind(),
                std::io::ErrorKind::InvalidInput
            );
            assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        }
    }

    #[test]
    fn an_interrupted_swap_is_undone_or_finished() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("person.csv");
        // Crash after the old file moved aside, before the new one came in: put back.
        std::fs::write(swap_name(&t), b"old").unwrap();
        recover_swap(&t).unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"old");
        // Crash after the new one came in: the old one goes.
        std::fs::write(swap_name(&t), b"old").unwrap();
        std::fs::write(&t, b"new").unwrap();
        recover_swap(&t).unwrap();
        assert_eq!(std::fs::read(&t).unwrap(), b"new");
        assert!(!swap_name(&t).exists());
    }
}
