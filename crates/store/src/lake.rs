//! The clinical store: Parquet files under one root, one folder per table.
//!
//! Layout: `<root>/<table>/part-<batch_id>-<seq>.parquet`, where `batch_id` is the ingest
//! batch that wrote the part and `seq` a zero-padded counter, so that sorting file names gives
//! a deterministic scan order.
//!
//! Why files and not SQL: clinical facts are large, append-mostly and read column-wise by the
//! anonymization and release stages (design principle 5, "columnar all the way").
//!
//! Invariants this module keeps:
//! * **No half-written part is ever visible.** A writer writes `.<name>.tmp` in the table
//!   folder and renames it on [`LakeWriter::finish`]; dropping a writer unfinished deletes the
//!   temporary file; a crash leaves only a hidden `.tmp` that scans ignore and
//!   [`Lake::remove_batch`] cleans up.
//! * **Bounded memory.** Row groups are capped in rows and bytes, so a writer holds at most one
//!   row group whatever the input size; scans stream record batches.
//! * **Deletion is physical** ([`Lake::compact`], R-OPT-6): the rows of a deleted registration
//!   are rewritten out of every part, each part replaced atomically.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use arrow::array::{Array, BooleanArray, StringArray};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use kiban_model::Table;
use parquet::arrow::ArrowWriter;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};

/// Rows per row group: small enough that one buffered row group stays far below a gigabyte
/// even for wide tables, large enough for good compression.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;
/// Encoded bytes per row group (notes can be long: this caps memory when rows are large).
pub const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;
/// Rows per record batch returned by scans.
pub const SCAN_BATCH_ROWS: usize = 8 * 1024;

const REGISTRATION_ID: &str = "registration_id";

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parquet file {path}: {source}")]
    Parquet { path: PathBuf, source: ParquetError },
    #[error("record batch for table {table} does not match its schema: {reason}")]
    Schema { table: Table, reason: String },
    #[error(
        "invalid ingest batch id (use 1 to 128 ASCII letters, digits, '-' or '_'; got {len} characters)"
    )]
    BatchId { len: usize },
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
}

/// A finished part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub path: PathBuf,
    pub rows: u64,
}

/// The Parquet lake rooted at one directory.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LakeError + '_ {
    move |source| LakeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn pq(path: &Path) -> impl FnOnce(ParquetError) -> LakeError + '_ {
    move |source| LakeError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

fn check_batch_id(batch_id: &str) -> Result<(), LakeError> {
    let ok = !batch_id.is_empty()
        && batch_id.len() <= 128
        && batch_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(LakeError::BatchId {
            len: batch_id.chars().count(),
        })
    }
}

/// `(batch_id, seq)` of a finished part's file name, `None` for any other file.
fn parse_part_name(name: &str) -> Option<(&str, u64)> {
    let stem = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (batch, seq) = stem.rsplit_once('-')?;
    if batch.is_empty() || seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((batch, seq.parse().ok()?))
}

/// The part name a temporary file will become, `None` for any other file.
fn parse_temp_name(name: &str) -> Option<&str> {
    name.strip_prefix('.')?.strip_suffix(".tmp")
}

/// Writes the directory entry of a rename to disk (on Unix a rename is durable only once the
/// directory is synced).
fn sync_dir(dir: &Path) -> Result<(), LakeError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn writer_props() -> Result<WriterProperties, ParquetError> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .build())
}

/// Re-labels `batch` with the table's schema, checking column count, types and nullability.
fn conform(table: Table, batch: &RecordBatch) -> Result<RecordBatch, LakeError> {
    let schema = table.schema();
    if batch.num_columns() != schema.fields().len() {
        return Err(LakeError::Schema {
            table,
            reason: format!(
                "{} columns, expected {}",
                batch.num_columns(),
                schema.fields().len()
            ),
        });
    }
    for (got, want) in batch.schema().fields().iter().zip(schema.fields()) {
        if got.name() != want.name() {
            return Err(LakeError::Schema {
                table,
                reason: format!(
                    "column {:?} where {:?} was expected",
                    got.name(),
                    want.name()
                ),
            });
        }
    }
    RecordBatch::try_new(schema, batch.columns().to_vec()).map_err(|e| LakeError::Schema {
        table,
        reason: e.to_string(),
    })
}

impl Lake {
    /// Opens the lake at `root`, creating the root and one folder per table.
    pub fn open(root: &Path) -> Result<Lake, LakeError> {
        for t in Table::ALL {
            let dir = root.join(t.name());
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(Lake {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder holding the parts of `table`.
    pub fn table_dir(&self, table: Table) -> PathBuf {
        self.root.join(table.name())
    }

    /// Starts a new part of `table` for the ingest batch `batch_id`. Several writers for the
    /// same table and batch may run at once: each reserves its own sequence number.
    pub fn writer(&self, table: Table, batch_id: &str) -> Result<LakeWriter, LakeError> {
        check_batch_id(batch_id)?;
        let dir = self.table_dir(table);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut seq = self
            .part_names(table)?
            .iter()
            .filter_map(|n| parse_part_name(n))
            .filter(|(b, _)| *b == batch_id)
            .map(|(_, s)| s + 1)
            .max()
            .unwrap_or(0);
        // Reserve a sequence number by creating its temporary file exclusively: another writer
        // (thread or process) that picked the same number gets AlreadyExists and moves on.
        let (final_path, tmp_path, file) = loop {
            let name = format!("part-{batch_id}-{seq:06}.parquet");
            let final_path = dir.join(&name);
            let tmp_path = dir.join(format!(".{name}.tmp"));
            if final_path.exists() {
                seq += 1;
                continue;
            }
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp_path)
            {
                // Re-check after reserving: a writer holding this number may have renamed its
                // temporary into place between our first check and our create.
                Ok(_) if final_path.exists() => {
                    let _ = std::fs::remove_file(&tmp_path);
                    seq += 1;
                }
                Ok(f) => break (final_path, tmp_path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => seq += 1,
                Err(e) => return Err(io(&tmp_path)(e)),
            }
        };
        let props = writer_props().map_err(pq(&tmp_path))?;
        let writer = match ArrowWriter::try_new(file, table.schema(), Some(props)) {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp_path);
                return Err(pq(&tmp_path)(e));
            }
        };
        Ok(LakeWriter {
            table,
            writer: Some(writer),
            tmp_path,
            final_path,
            rows: 0,
        })
    }

    /// File names in the table folder (finished parts and temporaries alike), sorted.
    fn part_names(&self, table: Table) -> Result<Vec<String>, LakeError> {
        let dir = self.table_dir(table);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir)(e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(io(&dir))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The finished parts of `table`, sorted by name (batch, then sequence).
    pub fn parts(&self, table: Table) -> Result<Vec<PathBuf>, LakeError> {
        let dir = self.table_dir(table);
        Ok(self
            .part_names(table)?
            .into_iter()
            .filter(|n| parse_part_name(n).is_some())
            .map(|n| dir.join(n))
            .collect())
    }

    /// The ingest batches that have at least one finished part in any table, sorted.
    pub fn batches(&self) -> Result<Vec<String>, LakeError> {
        let mut out = std::collections::BTreeSet::new();
        for t in Table::ALL {
            for n in self.part_names(t)? {
                if let Some((b, _)) = parse_part_name(&n) {
                    out.insert(b.to_string());
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Streams every row of `table`, part after part in name order, in record batches of at
    /// most [`SCAN_BATCH_ROWS`] rows.
    pub fn scan(&self, table: Table) -> Result<Scan, LakeError> {
        Ok(Scan {
            parts: self.parts(table)?.into(),
            current: None,
        })
    }

    /// Row count of `table`, from the Parquet footers only (no data page is read).
    pub fn count_rows(&self, table: Table) -> Result<u64, LakeError> {
        let mut n = 0u64;
        for p in self.parts(table)? {
            n += part_rows(&p)?;
        }
        Ok(n)
    }

    /// Deletes every part (finished or temporary) that the ingest batch `batch_id` wrote, in
    /// every table; returns how many finished parts were removed. Used to roll back an
    /// interrupted or rejected ingest.
    pub fn remove_batch(&self, batch_id: &str) -> Result<usize, LakeError> {
        check_batch_id(batch_id)?;
        let mut removed = 0;
        let mut touched = Vec::new();
        for t in Table::ALL {
            let dir = self.table_dir(t);
            let mut any = false;
            for n in self.part_names(t)? {
                let (of_batch, finished) = if let Some((b, _)) = parse_part_name(&n) {
                    (b == batch_id, true)
                } else if let Some((b, _)) = parse_temp_name(&n).and_then(parse_part_name) {
                    (b == batch_id, false)
                } else {
                    (false, false)
                };
                if !of_batch {
                    continue;
                }
                let p = dir.join(&n);
                match std::fs::remove_file(&p) {
                    Ok(()) => {
                        any = true;
                        if finished {
                            removed += 1;
                        }
                    }
                    // A concurrent writer's drop or another rollback got there first.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&p)(e)),
                }
            }
            if any {
                touched.push(dir);
            }
        }
        for d in touched {
            sync_dir(&d)?;
        }
        Ok(removed)
    }

    /// Rewrites the parts of `table` without the rows whose `registration_id` fails `keep`
    /// (deletion requests, R-OPT-6); returns the number of rows removed. Each part is
    /// replaced atomically (temporary file, then rename), so a crash leaves every part either
    /// as it was or compacted; a part that loses all its rows is deleted. Parts that keep
    /// every row are not rewritten (a first pass reads only the `registration_id` column).
    /// Parts finished by a writer after the call started are not visited.
    ///
    /// Run one compaction per table at a time (the pipeline holds the workspace lock): a
    /// compaction first deletes the temporaries an interrupted compaction left behind.
    pub fn compact(&self, table: Table, keep: &dyn Fn(&str) -> bool) -> Result<u64, LakeError> {
        let dir = self.table_dir(table);
        for n in self.part_names(table)? {
            if n.starts_with(".compact-") && n.ends_with(".tmp") {
                let p = dir.join(&n);
                std::fs::remove_file(&p).map_err(io(&p))?;
            }
        }
        let mut removed = 0u64;
        for part in self.parts(table)? {
            removed += self.compact_part(table, &part, keep)?;
        }
        Ok(removed)
    }

    /// [`Lake::compact`] over every table; returns rows removed per table (tables with no
    /// removal are left out).
    pub fn compact_all(&self, keep: &dyn Fn(&str) -> bool) -> Result<Vec<(Table, u64)>, LakeError> {
        let mut out = Vec::new();
        for t in Table::ALL {
            let n = self.compact(t, keep)?;
            if n > 0 {
                out.push((t, n));
            }
        }
        Ok(out)
    }

    fn compact_part(
        &self,
        table: Table,
        part: &Path,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<u64, LakeError> {
        // Pass 1: registration ids only.
        let drops = {
            let file = File::open(part).map_err(io(part))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq(part))?;
            let idx = registration_column(table, builder.schema())?;
            let mask = ProjectionMask::roots(builder.parquet_schema(), [idx]);
            let reader = builder
                .with_projection(mask)
                .with_batch_size(SCAN_BATCH_ROWS)
                .build()
                .map_err(pq(part))?;
            let mut drops = 0u64;
            for b in reader {
                let b = b?;
                let mask = keep_mask(table, b.column(0).as_ref(), keep)?;
                drops += (mask.len() - mask.true_count()) as u64;
            }
            drops
        };
        if drops == 0 {
            return Ok(0);
        }
        let dir = part.parent().unwrap_or(&self.root).to_path_buf();
        let name = part
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("part")
            .to_string();
        let tmp = dir.join(format!(".compact-{name}.tmp"));
        // Pass 2: rewrite the kept rows.
        let result = (|| -> Result<u64, LakeError> {
            let file = File::open(part).map_err(io(part))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq(part))?;
            let idx = registration_column(table, builder.schema())?;
            let reader = builder
                .with_batch_size(SCAN_BATCH_ROWS)
                .build()
                .map_err(pq(part))?;
            let out = File::create(&tmp).map_err(io(&tmp))?;
            let props = writer_props().map_err(pq(&tmp))?;
            let mut w = ArrowWriter::try_new(out, table.schema(), Some(props)).map_err(pq(&tmp))?;
            let mut kept = 0u64;
            for b in reader {
                let b = b?;
                let mask = keep_mask(table, b.column(idx).as_ref(), keep)?;
                let filtered = arrow::compute::filter_record_batch(&b, &mask)?;
                if filtered.num_rows() > 0 {
                    kept += filtered.num_rows() as u64;
                    w.write(&conform(table, &filtered)?).map_err(pq(&tmp))?;
                }
            }
            let f = w.into_inner().map_err(pq(&tmp))?;
            f.sync_all().map_err(io(&tmp))?;
            Ok(kept)
        })();
        let kept = match result {
            Ok(k) => k,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if kept == 0 {
            let _ = std::fs::remove_file(&tmp);
            std::fs::remove_file(part).map_err(io(part))?;
        } else {
            std::fs::rename(&tmp, part).map_err(io(part))?;
        }
        sync_dir(&dir)?;
        Ok(drops)
    }
}

fn registration_column(
    table: Table,
    schema: &arrow::datatypes::Schema,
) -> Result<usize, LakeError> {
    schema
        .index_of(REGISTRATION_ID)
        .map_err(|_| LakeError::Schema {
            table,
            reason: "part has no registration_id column".into(),
        })
}

fn keep_mask(
    table: Table,
    col: &dyn Array,
    keep: &dyn Fn(&str) -> bool,
) -> Result<BooleanArray, LakeError> {
    let ids = col
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| LakeError::Schema {
            table,
            reason: "registration_id is not a UTF-8 column".into(),
        })?;
    // A row without a registration cannot be the target of a deletion request: keep it.
    Ok(ids.iter().map(|v| Some(v.is_none_or(keep))).collect())
}

/// Row count of one part from its footer.
pub fn part_rows(path: &Path) -> Result<u64, LakeError> {
    let file = File::open(path).map_err(io(path))?;
    let reader = SerializedFileReader::new(file).map_err(pq(path))?;
    let n = reader.metadata().file_metadata().num_rows();
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Writes one part. Finish it with [`LakeWriter::finish`]; dropping it unfinished deletes
/// what it wrote.
pub struct LakeWriter {
    table: Table,
    writer: Option<ArrowWriter<File>>,
    tmp_path: PathBuf,
    final_path: PathBuf,
    rows: u64,
}

impl std::fmt::Debug for LakeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeWriter")
            .field("table", &self.table)
            .field("final_path", &self.final_path)
            .field("rows", &self.rows)
            .finish()
    }
}

impl LakeWriter {
    /// Appends one record batch, which must have the table's schema (column names, types,
    /// nullability). Memory stays bounded: full row groups are flushed to disk.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        let batch = conform(self.table, batch)?;
        let w = self.writer.as_mut().ok_or_else(|| LakeError::Io {
            path: self.tmp_path.clone(),
            source: std::io::Error::other("writer already finished"),
        })?;
        w.write(&batch).map_err(pq(&self.tmp_path))?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Writes the footer, syncs the file and renames it into place: only now does the part
    /// become visible to scans.
    pub fn finish(mut self) -> Result<PartInfo, LakeError> {
        let w = self.writer.take().ok_or_else(|| LakeError::Io {
            path: self.tmp_path.clone(),
            source: std::io::Error::other("writer already finished"),
        })?;
        let tmp = self.tmp_path.clone();
        let published = w
            .into_inner()
            .map_err(pq(&tmp))
            .and_then(|file| file.sync_all().map_err(io(&tmp)))
            .and_then(|()| std::fs::rename(&tmp, &self.final_path).map_err(io(&self.final_path)));
        if let Err(e) = published {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        if let Some(dir) = self.final_path.parent() {
            sync_dir(dir)?;
        }
        Ok(PartInfo {
            path: self.final_path.clone(),
            rows: self.rows,
        })
    }
}

impl Drop for LakeWriter {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            // Unfinished (error or abandon): leave nothing behind.
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// A streaming scan over the parts of one table (see [`Lake::scan`]).
pub struct Scan {
    parts: VecDeque<PathBuf>,
    current: Option<(PathBuf, ParquetRecordBatchReader)>,
}

impl Iterator for Scan {
    type Item = Result<RecordBatch, LakeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((path, reader)) = self.current.as_mut() {
                match reader.next() {
                    Some(Ok(b)) => return Some(Ok(b)),
                    Some(Err(e)) => {
                        let path = path.clone();
                        self.current = None;
                        return Some(Err(LakeError::Parquet {
                            path,
                            source: ParquetError::ArrowError(e.to_string()),
                        }));
                    }
                    None => self.current = None,
                }
            }
            let path = self.parts.pop_front()?;
            let opened = File::open(&path)
                .map_err(io(&path))
                .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).map_err(pq(&path)))
                .and_then(|b| {
                    b.with_batch_size(SCAN_BATCH_ROWS)
                        .build()
                        .map_err(pq(&path))
                });
            match opened {
                Ok(r) => self.current = Some((path, r)),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_parse_with_dashes_in_batch_ids() {
        assert_eq!(parse_part_name("part-b-1-000003.parquet"), Some(("b-1", 3)));
        assert_eq!(parse_part_name("part-b1-x.parquet"), None);
        assert_eq!(parse_part_name(".part-b1-000001.parquet.tmp"), None);
        assert_eq!(
            parse_temp_name(".part-b1-000001.parquet.tmp").and_then(parse_part_name),
            Some(("b1", 1))
        );
        assert_eq!(parse_part_name("notes.txt"), None);
    }

    #[test]
    fn batch_ids_are_restricted_to_safe_file_name_characters() {
        assert!(check_batch_id("B-2024_01").is_ok());
        for bad in ["", "../x", "a/b", "a b", "名前"] {
            assert!(matches!(
                check_batch_id(bad),
                Err(LakeError::BatchId { .. })
            ));
        }
        assert!(check_batch_id(&"x".repeat(129)).is_err());
    }
}
