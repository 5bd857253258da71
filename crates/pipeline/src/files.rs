//! Source file references: what the control plane and the lake call an input file.
//!
//! Input paths carry personal data: an SS-MIX2 storage path names the hospital's patient ID
//! in its folders and file name (`123/456/1234567/…/1234567_-_ADT-00_…`), a Synthea-style
//! FHIR export names the patient (`Aaron697_Brekke496_….json`). So nothing the workspace
//! stores or prints names a file by its path. A file is named by its **reference**: `f-` and
//! 32 hex digits of an HMAC under the workspace index key of (handler code, relative path),
//! computed right after discovery ([`kiban_ingest::relabel`]) and used for `ingest_files`,
//! `quarantine`, `gate_rejections`, `ingest_attachments`, the lake's `source_file`
//! provenance, the run report and error messages. It is deterministic, so a re-ingest or a
//! resumed ingest of the same tree finds the same references.
//!
//! The path is kept only sealed, in the vault's `source_files` table
//! ([`kiban_store::Vault::put_file_names`]), written in the transaction of the first chunk
//! that names the reference. [`Workspace::show_files`] (`kiban files show REF…`) unseals it for
//! the operator, and is audited.
//!
//! Workspaces written before references existed hold clear paths: `seal_legacy_names` seals
//! them and replaces them by references once, when the workspace opens after the migration.
//! Lake rows written then keep their path as provenance (the lake is not rewritten for it;
//! releases drop provenance).

use std::collections::HashSet;

use kiban_store::vault::SourceFileName;
use serde::Serialize;

use crate::{PipelineError, Workspace};

/// The `kv` key that says whether the clear paths of an older workspace were sealed.
const LEGACY_KEY: &str = "source_file_names";

/// One reference asked about, with its name when the workspace knows it.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ShownFile {
    pub file_ref: String,
    /// The handler that delivered the file; `None` for an unknown reference.
    pub handler: Option<String>,
    /// The path relative to the folder given to `kiban ingest`; `None` for an unknown
    /// reference.
    pub path: Option<String>,
}

impl std::fmt::Debug for ShownFile {
    /// Never the path (it names patients), so that a failed assertion or a log line cannot
    /// leak it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShownFile")
            .field("file_ref", &self.file_ref)
            .field("handler", &self.handler)
            .field("known", &self.path.is_some())
            .finish()
    }
}

/// `s` with every control character (TAB, newline, carriage return, the other C0 and C1
/// controls, DEL) written as an escape (`\t`, `\n`, `\r`, `\u{7f}`), so that a file name
/// printed as one field of a tab-separated line stays one field on one line. Other text,
/// backslashes included, is left as it is (`--json` gives every name exactly).
pub fn escape_control(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether `s` has the shape of a file reference (`f-` and 32 lower-case hex digits).
pub fn is_file_ref(s: &str) -> bool {
    s.len() == 34
        && s.starts_with("f-")
        && s[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Workspace {
    /// The reference of the file at `rel_path` (relative to the folder given to the ingest)
    /// delivered by `handler`: stable for the workspace, meaningless without its index key.
    pub fn file_ref(&self, handler: &str, rel_path: &str) -> String {
        self.file_ref_bytes(handler, rel_path.as_bytes())
    }

    /// [`Workspace::file_ref`] of a relative path's exact bytes
    /// ([`kiban_ingest::SourceFile::rel_bytes`]): two names that differ only in bytes that
    /// are not UTF-8 get two references. Equal to `file_ref` for every UTF-8 path.
    pub fn file_ref_bytes(&self, handler: &str, rel_path: &[u8]) -> String {
        let mac = self
            .index_key
            .hmac(&[b"source-file", handler.trim().as_bytes(), rel_path]);
        format!("f-{}", hex::encode(&mac[..16]))
    }

    /// The keyed hash of an SS-MIX2 file's name and item folder (`ingest_files.name_key`).
    pub(crate) fn name_key(&self, handler: &str, name_tail: &str) -> String {
        let mac = self.index_key.hmac(&[
            b"ssmix2-name",
            handler.trim().as_bytes(),
            name_tail.as_bytes(),
        ]);
        hex::encode(&mac[..16])
    }

    /// The names of the files `refs` stand for, in the order asked (`kiban files show`).
    /// Unsealing is audited (`files.show`, with counts only).
    pub async fn show_files(&self, refs: &[String]) -> Result<Vec<ShownFile>, PipelineError> {
        self.audited(
            "files.show",
            "source_files",
            self.show_files_inner(refs),
            |v: &Vec<ShownFile>| {
                vec![
                    ("requested", v.len() as u64),
                    (
                        "found",
                        v.iter().filter(|f| f.path.is_some()).count() as u64,
                    ),
                ]
            },
        )
        .await
    }

    async fn show_files_inner(&self, refs: &[String]) -> Result<Vec<ShownFile>, PipelineError> {
        let asked: Vec<&str> = refs.iter().map(|r| r.trim()).collect();
        let names = self.vault.file_names(&asked).await?;
        Ok(asked
            .iter()
            .map(|r| {
                let name = names.get(*r).cloned();
                let (handler, path) = match name {
                    Some(SourceFileName {
                        handler_code,
                        rel_path,
                    }) => (Some(handler_code), Some(rel_path)),
                    None => (None, None),
                };
                ShownFile {
                    file_ref: (*r).to_string(),
                    handler,
                    path,
                }
            })
            .collect())
    }
}

/// Whether [`seal_legacy_names`] has work to do (read only).
pub(crate) async fn legacy_names_pending(ws: &Workspace) -> Result<bool, PipelineError> {
    use sqlx::Row;
    let state: Option<String> = sqlx::query("SELECT value FROM kv WHERE key = $1")
        .bind(LEGACY_KEY)
        .fetch_optional(ws.db.pool())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(state.as_deref() == Some("pending"))
}

/// Seals the clear paths an older workspace holds (`ingest_files`, `quarantine`,
/// `gate_rejections`, `ingest_attachments`) and replaces them by references, once, in one
/// transaction. Audited as `ingest.seal_file_names` when there was anything to seal.
pub(crate) async fn seal_legacy_names(ws: &Workspace) -> Result<(), PipelineError> {
    use sqlx::Row;
    let state: Option<String> = sqlx::query("SELECT value FROM kv WHERE key = $1")
        .bind(LEGACY_KEY)
        .fetch_optional(ws.db.pool())
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    if state.as_deref() != Some("pending") {
        return Ok(());
    }
    let mut tx = ws.db.pool().begin().await?;
    let known: HashSet<String> = sqlx::query("SELECT file_ref FROM source_files")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    // (reference, handler, path) of every name sealed here.
    let mut names: Vec<(String, String, String)> = Vec::new();
    let mut seal = |handler: &str, value: &str| -> Option<String> {
        if known.contains(value) {
            return None;
        }
        let r = ws.file_ref(handler, value);
        names.push((r.clone(), handler.to_string(), value.to_string()));
        Some(r)
    };

    let rows = sqlx::query("SELECT handler_code, sha256, file_ref, format FROM ingest_files")
        .fetch_all(&mut *tx)
        .await?;
    let mut files = 0u64;
    for r in rows {
        let (handler, key, path, format): (String, String, String, String) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        let Some(file_ref) = seal(&handler, &path) else {
            continue;
        };
        let name_key = (format == kiban_ingest::Format::Ssmix2.name())
            .then(|| ws.name_key(&handler, crate::ingest::name_tail(&path)));
        sqlx::query(
            "UPDATE ingest_files SET file_ref = $1, name_key = $2 WHERE handler_code = $3 AND sha256 = $4",
        )
        .bind(&file_ref)
        .bind(name_key)
        .bind(&handler)
        .bind(&key)
        .execute(&mut *tx)
        .await?;
        files += 1;
    }
    let mut rows_sealed = 0u64;
    for (table, id) in [
        ("quarantine", "quarantine_id"),
        ("gate_rejections", "rejection_id"),
    ] {
        let rows = sqlx::query(&format!("SELECT {id}, handler_code, file FROM {table}"))
            .fetch_all(&mut *tx)
            .await?;
        for r in rows {
            let (row_id, handler, path): (String, String, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let Some(file_ref) = seal(&handler, &path) else {
                continue;
            };
            sqlx::query(&format!("UPDATE {table} SET file = $1 WHERE {id} = $2"))
                .bind(&file_ref)
                .bind(&row_id)
                .execute(&mut *tx)
                .await?;
            rows_sealed += 1;
        }
    }
    let rows = sqlx::query(
        "SELECT attachment_id, handler_code, file_ref, main_document FROM ingest_attachments",
    )
    .fetch_all(&mut *tx)
    .await?;
    for r in rows {
        let (row_id, handler, path, main): (String, String, String, String) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        let file_ref = seal(&handler, &path).unwrap_or(path);
        let main_ref = seal(&handler, &main).unwrap_or(main);
        sqlx::query(
            "UPDATE ingest_attachments SET file_ref = $1, main_document = $2 WHERE attachment_id = $3",
        )
        .bind(&file_ref)
        .bind(&main_ref)
        .bind(&row_id)
        .execute(&mut *tx)
        .await?;
        rows_sealed += 1;
    }
    let entries: Vec<(&str, &str, &str)> = names
        .iter()
        .map(|(r, h, p)| (r.as_str(), h.as_str(), p.as_str()))
        .collect();
    let sealed = ws.vault.put_file_names(&mut tx, &entries).await?;
    sqlx::query("UPDATE kv SET value = 'done' WHERE key = $1")
        .bind(LEGACY_KEY)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    // The clear paths must not survive in the database files either. Rewritten rows leave
    // stale copies that secure_delete does not reach (unused space of pages rebuilt when
    // the shorter rows were rebalanced) and old page images in SQLite's write-ahead log, or
    // dead tuples in PostgreSQL tables: rebuild the files, once.
    match ws.db.backend() {
        kiban_store::Backend::Sqlite => {
            for sql in ["VACUUM", "PRAGMA wal_checkpoint(TRUNCATE)"] {
                sqlx::query(sql).execute(ws.db.pool()).await?;
            }
        }
        kiban_store::Backend::Postgres => {
            sqlx::query(
                "VACUUM FULL ingest_files, quarantine, gate_rejections, ingest_attachments",
            )
            .execute(ws.db.pool())
            .await?;
        }
    }
    if files + rows_sealed > 0 {
        ws.audit(
            kiban_records::AuditEvent::new(ws.actor(), "ingest.seal_file_names", "source_files")
                .count("ingest_files", files)
                .count("other_rows", rows_sealed)
                .count("names_sealed", sealed),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_shape() {
        assert!(is_file_ref("f-0123456789abcdef0123456789abcdef"));
        assert!(!is_file_ref("f-0123456789ABCDEF0123456789abcdef"));
        assert!(!is_file_ref("123/456/1234567"));
    }

    #[test]
    fn control_characters_are_escaped_and_nothing_else() {
        assert_eq!(escape_control("a/b 名前.hl7"), "a/b 名前.hl7");
        assert_eq!(
            escape_control("a\tb\nc\rd\u{7f}e\u{1b}f\u{85}g\\t"),
            "a\\tb\\nc\\rd\\u{7f}e\\u{1b}f\\u{85}g\\t"
        );
        assert!(!escape_control("x\ty\nz").contains(['\t', '\n']));
    }
}
