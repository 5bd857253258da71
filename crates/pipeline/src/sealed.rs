//! Personal data of the opt-out desk kept only in the vault (issue 14, item 7).
//!
//! * A request's **requester** (a guardian's, a bereaved relative's or — `--relation self` —
//!   the patient's own name) is sealed under the patient's subject key
//!   ([`kiban_store::Vault::seal_for_subject`], handler + `patient_key`, so a stop received
//!   before any data has one too) into `consent_events.requester_sealed`, the event ID bound
//!   as associated data; the clear `requester` column is never written by the desk, and the
//!   values an older workspace wrote there are sealed and NULLed
//!   ([`Workspace::seal_clear_requesters`], at open); the CSV import seals each name in its
//!   own transaction before the row is written (`kiban_consent::Sealing`).
//! * The stored **receipt copy** (`receipts/<number>.pdf.sealed`) is the PDF sealed under the
//!   same subject key, the receipt number bound; [`Workspace::receipt_copy`] opens it while
//!   the person exists. Clear `receipts/<number>.pdf` copies of older workspaces are sealed at
//!   open and the clear file destroyed.
//! * The deletion of the patient ([`Workspace::apply_deletions`]) shreds the subject key,
//!   NULLs the sealed names and removes the receipt copies ([`Workspace::erase_subjects`]),
//!   and the erasure record counts both.

use std::path::{Path, PathBuf};

use sqlx::Row;

use crate::optout_events::{legacy_receipt_copy_path, receipt_copy_path};
use crate::{PipelineError, Refusal, Workspace};

/// The purpose bound into a sealed requester's name (also by the CSV import, which seals in
/// its own transaction).
pub(crate) const REQUESTER: &str = "requester";
/// The purpose bound into a sealed receipt copy.
const RECEIPT_COPY: &str = "receipt-copy";
/// The first bytes of a sealed receipt copy; the subject (handler code and keyed
/// `patient_key`, no personal data) follows, each length-prefixed, then the sealed PDF.
const COPY_MAGIC: &[u8] = b"KIBAN-SEALED-RECEIPT-1\n";

/// What [`Workspace::erase_subjects`] erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubjectErasure {
    /// The subject's data key existed and was shredded.
    pub key_shredded: bool,
    /// Sealed requester names cleared.
    pub requesters: u64,
    /// Receipt copies removed.
    pub receipt_copies: u64,
}

fn push_part(out: &mut Vec<u8>, part: &str) {
    out.extend_from_slice(&(part.len() as u32).to_be_bytes());
    out.extend_from_slice(part.as_bytes());
}

fn take_part(bytes: &[u8]) -> Option<(String, &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return None;
    }
    let (s, rest) = rest.split_at(len);
    Some((String::from_utf8(s.to_vec()).ok()?, rest))
}

fn copy_unreadable(number: &str) -> PipelineError {
    Refusal::ReceiptCopyUnreadable {
        number: number.to_string(),
    }
    .into()
}

/// Writes `bytes` to `path` through a `0600` temporary file, fsync and a rename.
fn write_private_atomic(path: &Path, bytes: &[u8]) -> Result<(), PipelineError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    kiban_store::perms::create_dir_private(dir).map_err(|e| PipelineError::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "receipt".into());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = kiban_store::perms::create_private_file(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        PipelineError::io(path, e)
    })
}

/// Overwrites a clear file with zeros, then unlinks it (its clear bytes should not stay in
/// the folder's free blocks longer than the file system keeps them anyway).
fn destroy_clear_file(path: &Path) -> Result<(), PipelineError> {
    use std::io::Write;
    let len = std::fs::metadata(path)
        .map_err(|e| PipelineError::io(path, e))?
        .len();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| PipelineError::io(path, e))?;
    let zeros = vec![0u8; usize::try_from(len).unwrap_or(0)];
    f.write_all(&zeros)
        .and_then(|()| f.sync_all())
        .map_err(|e| PipelineError::io(path, e))?;
    drop(f);
    std::fs::remove_file(path).map_err(|e| PipelineError::io(path, e))
}

impl Workspace {
    /// Seals the requester's name of `event_id` (of the subject handler + `patient_key`)
    /// unless the event already has one: a repeated request keeps the first requester, as
    /// its receipt does.
    pub(crate) async fn seal_requester(
        &self,
        event_id: &str,
        handler: &str,
        patient_key: &str,
        name: &str,
    ) -> Result<(), PipelineError> {
        let sealed = self
            .vault
            .seal_for_subject(handler, patient_key, REQUESTER, event_id, name.as_bytes())
            .await?;
        sqlx::query(
            "UPDATE consent_events SET requester_sealed = $1 \
             WHERE event_id = $2 AND requester_sealed IS NULL",
        )
        .bind(sealed)
        .bind(event_id)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// The requester's name of `event_id`, opened through the vault; `None` when the event
    /// has none or the patient was deleted (the name is shredded).
    pub async fn requester_of(&self, event_id: &str) -> Result<Option<String>, PipelineError> {
        let row = sqlx::query(
            "SELECT handler_code, patient_key, requester_sealed FROM consent_events \
             WHERE event_id = $1",
        )
        .bind(event_id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let handler: String = row.try_get(0)?;
        let pk: String = row.try_get(1)?;
        let Some(sealed) = row.try_get::<Option<Vec<u8>>, _>(2)? else {
            return Ok(None);
        };
        let Some(plain) = self
            .vault
            .open_for_subject(&handler, &pk, REQUESTER, event_id, &sealed)
            .await?
        else {
            return Ok(None);
        };
        Ok(String::from_utf8(plain.to_vec()).ok())
    }

    /// Seals every requester's name still in the clear `consent_events.requester` column (an
    /// older workspace, a CSV import) and NULLs the column, then purges the database's freed
    /// pages (SQLite runs with `secure_delete`: the clear bytes are zeroed; the write-ahead log
    /// is truncated). Returns the names sealed. Idempotent.
    pub async fn seal_clear_requesters(&self) -> Result<u64, PipelineError> {
        let rows = sqlx::query(
            "SELECT event_id, handler_code, patient_key, requester FROM consent_events \
             WHERE requester IS NOT NULL",
        )
        .fetch_all(self.db.pool())
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut n = 0u64;
        for row in rows {
            let event_id: String = row.try_get(0)?;
            let handler: String = row.try_get(1)?;
            let pk: String = row.try_get(2)?;
            let name: String = row.try_get(3)?;
            if !name.trim().is_empty() {
                self.seal_requester(&event_id, &handler, &pk, &name).await?;
            }
            sqlx::query("UPDATE consent_events SET requester = NULL WHERE event_id = $1")
                .bind(&event_id)
                .execute(self.db.pool())
                .await?;
            n += 1;
        }
        self.vault.purge().await?;
        Ok(n)
    }

    /// Whether clear requesters or clear receipt copies are left to seal (for a reader's
    /// open: the sealing is a writer's).
    pub(crate) async fn clear_personal_data_pending(&self) -> Result<bool, PipelineError> {
        let clear = sqlx::query("SELECT 1 FROM consent_events WHERE requester IS NOT NULL LIMIT 1")
            .fetch_optional(self.db.pool())
            .await?;
        if clear.is_some() {
            return Ok(true);
        }
        Ok(!self.legacy_receipt_copies().await?.is_empty())
    }

    /// Clear receipt copies of an older workspace: (receipt number, handler, patient key,
    /// path).
    async fn legacy_receipt_copies(
        &self,
    ) -> Result<Vec<(String, String, String, PathBuf)>, PipelineError> {
        if !self.root.join(crate::optout_events::RECEIPTS_DIR).is_dir() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT DISTINCT receipt_number, handler_code, patient_key FROM consent_events \
             WHERE receipt_number IS NOT NULL",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let number: String = row.try_get(0)?;
            let p = legacy_receipt_copy_path(&self.root, &number);
            if p.exists() {
                out.push((number, row.try_get(1)?, row.try_get(2)?, p));
            }
        }
        Ok(out)
    }

    /// Seals the clear receipt copies of an older workspace and destroys the clear files.
    pub(crate) async fn seal_legacy_receipt_copies(&self) -> Result<u64, PipelineError> {
        let mut n = 0;
        for (number, handler, pk, clear) in self.legacy_receipt_copies().await? {
            let pdf = std::fs::read(&clear).map_err(|e| PipelineError::io(&clear, e))?;
            self.store_receipt_copy(&handler, &pk, &number, &pdf)
                .await?;
            destroy_clear_file(&clear)?;
            n += 1;
        }
        Ok(n)
    }

    /// Stores the receipt copy of `number`, sealed under the subject's key; returns its path.
    pub(crate) async fn store_receipt_copy(
        &self,
        handler: &str,
        patient_key: &str,
        number: &str,
        pdf: &[u8],
    ) -> Result<PathBuf, PipelineError> {
        let sealed = self
            .vault
            .seal_for_subject(handler, patient_key, RECEIPT_COPY, number, pdf)
            .await?;
        let mut bytes = Vec::with_capacity(COPY_MAGIC.len() + sealed.len() + 96);
        bytes.extend_from_slice(COPY_MAGIC);
        push_part(&mut bytes, handler);
        push_part(&mut bytes, patient_key);
        bytes.extend_from_slice(&sealed);
        let path = receipt_copy_path(&self.root, number);
        write_private_atomic(&path, &bytes)?;
        Ok(path)
    }

    /// The stored copy of receipt `number`, opened (the PDF): to print it again while the
    /// person exists. Refused when there is no copy (never issued, past its retention, or
    /// erased with the patient). Audited as `optout.receipt_copy`, naming the receipt number
    /// only.
    pub async fn receipt_copy(&self, number: &str) -> Result<Vec<u8>, PipelineError> {
        self.audited(
            "optout.receipt_copy",
            &format!("receipt:{number}"),
            async {
                let gone = || {
                    PipelineError::from(Refusal::ReceiptCopyMissing {
                        number: number.to_string(),
                    })
                };
                let path = receipt_copy_path(&self.root, number);
                let bytes = match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
                    Err(e) => return Err(PipelineError::io(&path, e)),
                };
                let rest = bytes
                    .strip_prefix(COPY_MAGIC)
                    .ok_or_else(|| copy_unreadable(number))?;
                let (handler, rest) = take_part(rest).ok_or_else(|| copy_unreadable(number))?;
                let (pk, sealed) = take_part(rest).ok_or_else(|| copy_unreadable(number))?;
                let pdf = self
                    .vault
                    .open_for_subject(&handler, &pk, RECEIPT_COPY, number, sealed)
                    .await
                    .map_err(|_| copy_unreadable(number))?
                    .ok_or_else(gone)?;
                Ok(pdf.to_vec())
            },
            |_| vec![],
        )
        .await
    }

    /// Erases what the control plane keeps of handlers' patients outside the vault's
    /// registrations: shreds each subject key, clears the sealed requester names and removes
    /// the receipt copies (the deletion of the patient, R-OPT-6). Idempotent. Many subjects
    /// at once, in their order: the names are cleared in one transaction and the keys
    /// shredded in one call, whose WAL checkpoint (the shred's irrecoverability on SQLite) is
    /// then paid once, not once per subject — per subject, a deletion run after a large
    /// import took tens of seconds.
    pub(crate) async fn erase_subjects(
        &self,
        subjects: &[(&str, &str)],
    ) -> Result<Vec<SubjectErasure>, PipelineError> {
        let mut out = vec![SubjectErasure::default(); subjects.len()];
        if subjects.is_empty() {
            return Ok(out);
        }
        for ((handler, patient_key), o) in subjects.iter().zip(out.iter_mut()) {
            let numbers = sqlx::query(
                "SELECT DISTINCT receipt_number FROM consent_events \
                 WHERE handler_code = $1 AND patient_key = $2 AND receipt_number IS NOT NULL",
            )
            .bind(*handler)
            .bind(*patient_key)
            .fetch_all(self.db.pool())
            .await?;
            for row in numbers {
                let number: String = row.try_get(0)?;
                for p in [
                    receipt_copy_path(&self.root, &number),
                    legacy_receipt_copy_path(&self.root, &number),
                ] {
                    match std::fs::remove_file(&p) {
                        Ok(()) => o.receipt_copies += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(PipelineError::io(&p, e)),
                    }
                }
            }
        }
        let mut tx = self.db.pool().begin().await?;
        for ((handler, patient_key), o) in subjects.iter().zip(out.iter_mut()) {
            o.requesters = sqlx::query(
                "UPDATE consent_events SET requester_sealed = NULL, requester = NULL \
                 WHERE handler_code = $1 AND patient_key = $2 \
                 AND (requester_sealed IS NOT NULL OR requester IS NOT NULL)",
            )
            .bind(*handler)
            .bind(*patient_key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        for ((handler, patient_key), o) in subjects.iter().zip(out.iter_mut()) {
            o.key_shredded = sqlx::query(
                "SELECT 1 FROM vault_subject_keys WHERE handler_code = $1 AND patient_key = $2",
            )
            .bind(*handler)
            .bind(*patient_key)
            .fetch_optional(self.db.pool())
            .await?
            .is_some();
        }
        self.vault.shred_subjects(subjects).await?;
        Ok(out)
    }
}

impl Workspace {
    /// Subjects with a deletion in force on `on` but no registration (a deletion request for
    /// a patient whose data never arrived): their subject key, sealed requester names and
    /// receipt copies are erased, each with an erasure record (reason `deletion_request`, no
    /// registration), the records in one transaction. Returns the records' IDs. Called by
    /// [`Workspace::apply_deletions`].
    pub(crate) async fn erase_unregistered_subjects(
        &self,
        on: chrono::NaiveDate,
    ) -> Result<Vec<String>, PipelineError> {
        // Only a subject with a deletion request of its own can be deleted (the gate's
        // `Deleted` is its first request): after a large import the other subjects — every
        // stop's requester — are not even read.
        let rows = sqlx::query(
            "SELECT s.handler_code, s.patient_key FROM vault_subject_keys s \
             WHERE NOT EXISTS (SELECT 1 FROM registrations r \
             WHERE r.handler_code = s.handler_code AND r.patient_key = s.patient_key) \
             AND EXISTS (SELECT 1 FROM consent_events e WHERE e.handler_code = s.handler_code \
             AND e.patient_key = s.patient_key AND e.kind = 'delete') \
             ORDER BY s.handler_code, s.patient_key",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut doomed: Vec<(String, String)> = Vec::new();
        for row in rows {
            let handler: String = row.try_get(0)?;
            let pk: String = row.try_get(1)?;
            let decision = kiban_consent::eligibility(&self.db, &handler, &pk, on).await?;
            if matches!(
                decision.eligibility,
                kiban_consent::Eligibility::Ineligible(kiban_consent::Reason::Deleted { .. })
            ) {
                doomed.push((handler, pk));
            }
        }
        let subjects: Vec<(&str, &str)> = doomed
            .iter()
            .map(|(h, p)| (h.as_str(), p.as_str()))
            .collect();
        let erased = self.erase_subjects(&subjects).await?;
        let mut records = Vec::with_capacity(doomed.len());
        let mut tx = self.db.pool().begin().await?;
        for ((handler, pk), erased) in doomed.into_iter().zip(erased) {
            let items = std::collections::BTreeMap::from([
                ("requester".to_string(), erased.requesters),
                ("receipt copy".to_string(), erased.receipt_copies),
            ]);
            records.push(
                kiban_records::record_erasure_in(
                    &mut tx,
                    &kiban_records::ErasureRecord {
                        erased_date: on,
                        items,
                        handler_code: Some(handler),
                        patient_key: Some(pk),
                        registration_id: None,
                        reason: "deletion_request".into(),
                    },
                    None,
                )
                .await?,
            );
        }
        tx.commit().await?;
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_header_parts_round_trip_and_reject_truncation() {
        let mut b = Vec::new();
        push_part(&mut b, "H1");
        push_part(&mut b, "abc");
        b.extend_from_slice(b"rest");
        let (h, rest) = take_part(&b).expect("handler");
        let (pk, rest) = take_part(rest).expect("key");
        assert_eq!((h.as_str(), pk.as_str(), rest), ("H1", "abc", &b"rest"[..]));
        assert!(take_part(&b[..5]).is_none());
        assert!(take_part(&[0, 0]).is_none());
    }
}
