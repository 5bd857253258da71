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
//!   are rewritten out of every part, each part replaced atomically. [`Lake::compact_rows`]
//!   does the same for any row predicate over string columns (retraction of an invalidated
//!   SS-MIX2 order, keyed on the provenance columns).
//! * **Attachments are content-addressed** (`<root>/attachments/<sha[0..2]>/<sha256>`): files
//!   kept beside the facts (SS-MIX2 extended-storage PDFs, images) are written once per
//!   content, through a temporary file and a rename, after their hash is checked.

use std::collections::VecDeque;
use std::fs::File;
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
    #[error("table {table} has no UTF-8 column {column}")]
    Column { table: Table, column: String },
    #[error("invalid attachment digest (64 lower-case hex characters expected)")]
    Digest,
    #[error("attachment {path}: content changed since it was hashed (SHA-256 differs)")]
    AttachmentChanged { path: PathBuf },
}

/// The folder (under the lake root) of kept attachments.
pub const ATTACHMENTS_DIR: &str = "attachments";

fn check_digest(sha256: &str) -> Result<(), LakeError> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(LakeError::Digest)
    }
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
            crate::perms::create_dir_private(&dir).map_err(io(&dir))?;
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
        crate::perms::create_dir_private(&dir).map_err(io(&dir))?;
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
            match crate::perms::private_new_file_options().open(&tmp_path) {
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
        // A row without a registration cannot be the target of a deletion request: keep it.
        self.compact_rows(table, &[REGISTRATION_ID], &mut |v| v[0].is_none_or(keep))
    }

    /// Rewrites the parts of `table` without the rows for which `keep` returns false; `keep`
    /// gets the values of the UTF-8 `columns` of each row (in that order, `None` for null).
    /// Returns the number of rows removed. Same guarantees as [`Lake::compact`]: each part
    /// replaced atomically, emptied parts deleted, untouched parts not rewritten (a first pass
    /// reads only `columns`), so running it twice removes nothing the second time. `keep` may
    /// be called more than once per row and must answer the same each time.
    pub fn compact_rows(
        &self,
        table: Table,
        columns: &[&str],
        keep: &mut dyn FnMut(&[Option<&str>]) -> bool,
    ) -> Result<u64, LakeError> {
        let dir = self.table_dir(table);
        for n in self.part_names(table)? {
            if n.starts_with(".compact-") && n.ends_with(".tmp") {
                let p = dir.join(&n);
                std::fs::remove_file(&p).map_err(io(&p))?;
            }
        }
        let mut removed = 0u64;
        for part in self.parts(table)? {
            removed += self.compact_part(table, &part, columns, keep)?;
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
        columns: &[&str],
        keep: &mut dyn FnMut(&[Option<&str>]) -> bool,
    ) -> Result<u64, LakeError> {
        // Pass 1: the predicate's columns only.
        let drops = {
            let file = File::open(part).map_err(io(part))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq(part))?;
            let idx = column_indices(table, builder.schema(), columns)?;
            let mask = ProjectionMask::roots(builder.parquet_schema(), idx.iter().copied());
            let reader = builder
                .with_projection(mask)
                .with_batch_size(SCAN_BATCH_ROWS)
                .build()
                .map_err(pq(part))?;
            let mut drops = 0u64;
            for b in reader {
                let b = b?;
                // The projection keeps schema order: find each column by name again.
                let idx = column_indices(table, &b.schema(), columns)?;
                let mask = keep_mask(table, &b, &idx, keep)?;
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
            let idx = column_indices(table, builder.schema(), columns)?;
            let reader = builder
                .with_batch_size(SCAN_BATCH_ROWS)
                .build()
                .map_err(pq(part))?;
            let out = crate::perms::create_private_file(&tmp).map_err(io(&tmp))?;
            let props = writer_props().map_err(pq(&tmp))?;
            let mut w = ArrowWriter::try_new(out, table.schema(), Some(props)).map_err(pq(&tmp))?;
            let mut kept = 0u64;
            for b in reader {
                let b = b?;
                let mask = keep_mask(table, &b, &idx, keep)?;
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

fn column_indices(
    table: Table,
    schema: &arrow::datatypes::Schema,
    columns: &[&str],
) -> Result<Vec<usize>, LakeError> {
    columns
        .iter()
        .map(|c| {
            schema.index_of(c).map_err(|_| LakeError::Column {
                table,
                column: (*c).to_string(),
            })
        })
        .collect()
}

fn keep_mask(
    table: Table,
    batch: &RecordBatch,
    idx: &[usize],
    keep: &mut dyn FnMut(&[Option<&str>]) -> bool,
) -> Result<BooleanArray, LakeError> {
    let cols: Vec<&StringArray> = idx
        .iter()
        .map(|&i| {
            batch
                .column(i)
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| LakeError::Column {
                    table,
                    column: batch.schema().field(i).name().clone(),
                })
        })
        .collect::<Result<_, _>>()?;
    let mut values: Vec<Option<&str>> = vec![None; cols.len()];
    Ok((0..batch.num_rows())
        .map(|r| {
            for (v, c) in values.iter_mut().zip(&cols) {
                *v = (!c.is_null(r)).then(|| c.value(r));
            }
            Some(keep(&values))
        })
        .collect())
}

impl Lake {
    /// The folder of kept attachments.
    pub fn attachments_dir(&self) -> PathBuf {
        self.root.join(ATTACHMENTS_DIR)
    }

    /// Where the attachment with this SHA-256 is (or would be) kept.
    pub fn attachment_path(&self, sha256: &str) -> Result<PathBuf, LakeError> {
        check_digest(sha256)?;
        Ok(self.attachments_dir().join(&sha256[..2]).join(sha256))
    }

    /// Keeps a copy of `src`, whose content must hash to `sha256`, and returns the reference
    /// recorded beside the facts (`attachments/<sha256>`, relative to the lake root).
    /// Idempotent: content already kept is not copied again. The copy is written to a hidden
    /// temporary file, its hash checked, synced and renamed into place, so a kept attachment
    /// is always whole; a content that changed since it was hashed is refused.
    pub fn keep_attachment(&self, src: &Path, sha256: &str) -> Result<String, LakeError> {
        use sha2::Digest;
        use std::io::{Read, Write};
        let dest = self.attachment_path(sha256)?;
        let reference = format!("{ATTACHMENTS_DIR}/{sha256}");
        if dest.exists() {
            return Ok(reference);
        }
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        crate::perms::create_dir_private(&dir).map_err(io(&dir))?;
        let tmp = dir.join(format!(".{sha256}.{}.tmp", std::process::id()));
        let result = (|| -> Result<(), LakeError> {
            let mut input = File::open(src).map_err(io(src))?;
            let mut out = crate::perms::create_private_file(&tmp).map_err(io(&tmp))?;
            let mut hasher = sha2::Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = input.read(&mut buf).map_err(io(src))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(io(&tmp))?;
            }
            if hex::encode(hasher.finalize()) != sha256 {
                return Err(LakeError::AttachmentChanged {
                    path: src.to_path_buf(),
                });
            }
            out.sync_all().map_err(io(&tmp))?;
            std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(&dir)?;
        Ok(reference)
    }

    /// The SHA-256 of every kept attachment, sorted. Temporaries of interrupted copies are
    /// deleted on the way.
    pub fn attachments(&self) -> Result<Vec<String>, LakeError> {
        let root = self.attachments_dir();
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&root)(e)),
        };
        for sub in rd {
            let sub = sub.map_err(io(&root))?.path();
            if !sub.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&sub).map_err(io(&sub))? {
                let f = f.map_err(io(&sub))?;
                let name = f.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.ends_with(".tmp") {
                    let p = f.path();
                    std::fs::remove_file(&p).map_err(io(&p))?;
                } else if check_digest(&name).is_ok() {
                    out.push(name);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes the kept attachment with this SHA-256; false when it was not kept.
    pub fn remove_attachment(&self, sha256: &str) -> Result<bool, LakeError> {
        let p = self.attachment_path(sha256)?;
        match std::fs::remove_file(&p) {
            Ok(()) => {
                if let Some(d) = p.parent() {
                    sync_dir(d)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&p)(e)),
        }
    }
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

    fn measurement_part(lake: &Lake, batch: &str, rows: &[(&str, &str, &str)]) {
        let mut b = kiban_model::FactBatchBuilder::new(batch);
        for (reg, handler, file) in rows {
            let f = kiban_model::Fact::Measurement(kiban_model::Measurement {
                date: chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"),
                ..Default::default()
            });
            let p = kiban_model::Provenance {
                handler_code: (*handler).into(),
                source_file: (*file).into(),
                source_record: "OBX[1]".into(),
            };
            b.push(reg, &f, &p);
        }
        let mut w = lake.writer(Table::Measurement, batch).expect("writer");
        for (_, rb) in b.finish().expect("finish") {
            w.write(&rb).expect("write");
        }
        w.finish().expect("part");
    }

    fn files_of(lake: &Lake) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for b in lake.scan(Table::Measurement).expect("scan") {
            let b = b.expect("batch");
            let col = |n: &str| {
                b.column_by_name(n)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                    .expect("column")
                    .clone()
            };
            let (f, batch) = (col("source_file"), col("ingest_batch"));
            for i in 0..b.num_rows() {
                out.push((f.value(i).to_string(), batch.value(i).to_string()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn compact_rows_removes_rows_by_provenance_atomically_and_idempotently() {
        let tmp = tempfile::tempdir().expect("tmp");
        let lake = Lake::open(tmp.path()).expect("lake");
        measurement_part(
            &lake,
            "b1",
            &[("r1", "H1", "a"), ("r1", "H1", "b"), ("r2", "H2", "a")],
        );
        measurement_part(&lake, "b2", &[("r1", "H1", "a")]);
        measurement_part(&lake, "b3", &[("r3", "H1", "a")]);
        let mut calls = 0usize;
        // Drop H1's rows from file "a", except those of batch b2.
        let mut keep = |v: &[Option<&str>]| {
            calls += 1;
            !(v[0] == Some("H1") && v[1] == Some("a") && v[2] != Some("b2"))
        };
        let cols = ["handler_code", "source_file", "ingest_batch"];
        let n = lake
            .compact_rows(Table::Measurement, &cols, &mut keep)
            .expect("compact");
        assert_eq!(n, 2);
        assert!(calls >= 5);
        assert_eq!(
            files_of(&lake),
            vec![
                ("a".to_string(), "b1".to_string()),
                ("a".to_string(), "b2".to_string()),
                ("b".to_string(), "b1".to_string()),
            ]
        );
        // b3 lost its only row: its part is gone, no temporary is left.
        assert_eq!(lake.parts(Table::Measurement).expect("parts").len(), 2);
        let leftovers = std::fs::read_dir(lake.table_dir(Table::Measurement))
            .expect("dir")
            .filter(|e| {
                e.as_ref()
                    .map(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
                    .unwrap_or(false)
            })
            .count();
        assert_eq!(leftovers, 0);
        let again = lake
            .compact_rows(Table::Measurement, &cols, &mut |v: &[Option<&str>]| {
                !(v[0] == Some("H1") && v[1] == Some("a") && v[2] != Some("b2"))
            })
            .expect("again");
        assert_eq!(again, 0, "idempotent");
        assert!(matches!(
            lake.compact_rows(Table::Measurement, &["no_such_column"], &mut |_| true),
            Err(LakeError::Column { .. })
        ));
        // The registration-keyed compaction behaves as before on top of it.
        assert_eq!(
            lake.compact(Table::Measurement, &|r| r != "r2").expect("c"),
            1
        );
    }

    #[test]
    fn attachments_are_content_addressed_and_checked() {
        use sha2::Digest;
        let tmp = tempfile::tempdir().expect("tmp");
        let lake = Lake::open(&tmp.path().join("lake")).expect("lake");
        let src = tmp.path().join("report.pdf");
        std::fs::write(&src, b"%PDF-1.4 kiban\n").expect("write");
        let sha = hex::encode(sha2::Sha256::digest(b"%PDF-1.4 kiban\n"));
        let r = lake.keep_attachment(&src, &sha).expect("keep");
        assert_eq!(r, format!("attachments/{sha}"));
        let kept = lake.attachment_path(&sha).expect("path");
        assert_eq!(std::fs::read(&kept).expect("kept"), b"%PDF-1.4 kiban\n");
        assert_eq!(lake.keep_attachment(&src, &sha).expect("again"), r);
        assert_eq!(lake.attachments().expect("list"), vec![sha.clone()]);
        // A file that changed since it was hashed is refused and leaves nothing behind.
        let other = hex::encode(sha2::Sha256::digest(b"something else"));
        assert!(matches!(
            lake.keep_attachment(&src, &other),
            Err(LakeError::AttachmentChanged { .. })
        ));
        assert_eq!(lake.attachments().expect("list"), vec![sha.clone()]);
        assert!(matches!(
            lake.attachment_path("../../etc/passwd"),
            Err(LakeError::Digest)
        ));
        assert!(lake.remove_attachment(&sha).expect("rm"));
        assert!(!lake.remove_attachment(&sha).expect("rm again"));
        assert!(lake.attachments().expect("list").is_empty());
        // Attachments are not a table: batches and scans do not see them.
        assert!(lake.batches().expect("batches").is_empty());
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
