//! Signed checkpoints over the audit chain (R-SEC-2; issue 17, item 3).
//!
//! The chain of [`crate::audit`] is keyless: whoever can write the log's folder can rewrite
//! its tail, HEAD and INTENT consistently. A checkpoint is the workspace's signed statement
//! "the log held `events` events and the last one hashed to `hash`", made at `time` by the
//! workspace `workspace`, signed with the workspace's Ed25519 audit key. Checkpoints are kept
//! in the control plane (`audit_checkpoints`, migration 0020; one per event count) and the
//! latest can be exported as a JSON file for off-site keeping. A verifier recomputes the
//! chain and checks that, at every checkpoint's count, the chain hashes to the checkpoint's
//! hash ([`check`]): a tail dropped (HEAD rewritten too) falls short of a checkpoint, a tail
//! rewritten and re-chained hashes otherwise — against a copy the rewriter cannot reach.
//!
//! The signed bytes are the canonical JSON of every field but `signature`, `format` first
//! (`kiban-audit-checkpoint/1`), so a checkpoint's signature cannot be taken for any other
//! signature of the same key. Nothing personal is in a checkpoint.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use kiban_store::Db;

use crate::RecordsError;
use crate::audit::{AuditHead, VerifyReport};

/// The `format` of every checkpoint this version writes.
pub const FORMAT: &str = "kiban-audit-checkpoint/1";

/// The control plane's `kv` key of the workspace identity checkpoints name.
const WORKSPACE_ID_KEY: &str = "audit.workspace_id";

/// One signed checkpoint, as stored and as exported (the JSON field names are stable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub format: String,
    /// The workspace's identity (random, kept in the control plane).
    pub workspace: String,
    /// How many events the log held.
    pub events: u64,
    /// The hash of the last of them (hex).
    pub hash: String,
    /// When the checkpoint was made (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// The Ed25519 public key that signed it (hex).
    pub public_key: String,
    /// Ed25519 over the canonical JSON of the other fields (hex).
    pub signature: String,
}

/// What is signed: every field but the signature, in this order.
#[derive(Serialize)]
struct Signed<'a> {
    format: &'a str,
    workspace: &'a str,
    events: u64,
    hash: &'a str,
    time: &'a str,
    public_key: &'a str,
}

/// Why a checkpoint does not vouch for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointFault {
    /// Not a valid signature of its own key (altered, or not a checkpoint at all).
    SignatureBad,
    /// Validly signed, but by a key that is not the workspace's audit key.
    OtherKey,
    /// Signed for another workspace.
    OtherWorkspace,
    /// It vouches for more events than the log holds: the log lost its tail.
    BeyondLog { log_events: u64 },
    /// The chain at its count hashes otherwise: the log was rewritten.
    HashMismatch,
    /// A format this version does not know.
    UnknownFormat,
}

impl CheckpointFault {
    /// A stable code for scripts and the CLI's wording.
    pub fn code(&self) -> &'static str {
        match self {
            CheckpointFault::SignatureBad => "signature_bad",
            CheckpointFault::OtherKey => "other_key",
            CheckpointFault::OtherWorkspace => "other_workspace",
            CheckpointFault::BeyondLog { .. } => "beyond_log",
            CheckpointFault::HashMismatch => "hash_mismatch",
            CheckpointFault::UnknownFormat => "unknown_format",
        }
    }
}

impl Checkpoint {
    /// Signs `head` (the log's end) for `workspace` now.
    pub fn sign(key: &SigningKey, workspace: &str, head: &AuditHead) -> Checkpoint {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut cp = Checkpoint {
            format: FORMAT.to_string(),
            workspace: workspace.to_string(),
            events: head.seq,
            hash: head.hash.clone(),
            time,
            public_key: hex::encode(key.verifying_key().to_bytes()),
            signature: String::new(),
        };
        let sig: Signature = key.sign(&cp.message());
        cp.signature = hex::encode(sig.to_bytes());
        cp
    }

    fn message(&self) -> Vec<u8> {
        // Strings and a number: serializing cannot fail.
        serde_json::to_vec(&Signed {
            format: &self.format,
            workspace: &self.workspace,
            events: self.events,
            hash: &self.hash,
            time: &self.time,
            public_key: &self.public_key,
        })
        .unwrap_or_default()
    }

    /// Whether `signature` is its `public_key`'s signature of the other fields.
    pub fn signature_ok(&self) -> bool {
        let mut key = [0u8; 32];
        let mut sig = [0u8; 64];
        if hex::decode_to_slice(&self.public_key, &mut key).is_err()
            || hex::decode_to_slice(&self.signature, &mut sig).is_err()
        {
            return false;
        }
        let Ok(key) = VerifyingKey::from_bytes(&key) else {
            return false;
        };
        key.verify_strict(&self.message(), &Signature::from_bytes(&sig))
            .is_ok()
    }

    /// The exported form: pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Reads an exported checkpoint; `None` when it is not one (the caller names the file).
    pub fn from_json(bytes: &[u8]) -> Option<Checkpoint> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Checks `cp` against a verified chain (`log`, whose `hashes` must hold `cp.events` when the
/// chain reaches it: [`crate::audit::verify_each`]), the workspace's audit public key (hex)
/// and identity. No fault: the chain up to `cp.events` is the one the workspace signed.
pub fn check(
    cp: &Checkpoint,
    log: &VerifyReport,
    public_key: &str,
    workspace: &str,
) -> Vec<CheckpointFault> {
    let mut faults = Vec::new();
    if cp.format != FORMAT {
        faults.push(CheckpointFault::UnknownFormat);
    }
    if !cp.signature_ok() {
        faults.push(CheckpointFault::SignatureBad);
    } else if !cp.public_key.eq_ignore_ascii_case(public_key) {
        faults.push(CheckpointFault::OtherKey);
    }
    if cp.workspace != workspace {
        faults.push(CheckpointFault::OtherWorkspace);
    }
    if cp.events > log.events {
        faults.push(CheckpointFault::BeyondLog {
            log_events: log.events,
        });
    } else if cp.events > 0 && log.hashes.get(&cp.events) != Some(&cp.hash) {
        faults.push(CheckpointFault::HashMismatch);
    }
    faults
}

/// The workspace identity checkpoints name, created on first use (random, 128 bits).
pub async fn workspace_identity(db: &Db) -> Result<String, RecordsError> {
    if let Some(id) = read_identity(db).await? {
        return Ok(id);
    }
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    let id = format!("ws-{}", hex::encode(b));
    sqlx::query("INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(WORKSPACE_ID_KEY)
        .bind(&id)
        .execute(db.pool())
        .await?;
    // Another process may have written its own first: that one is the identity.
    read_identity(db)
        .await?
        .ok_or_else(|| RecordsError::Invalid("workspace identity not stored".into()))
}

/// The workspace identity, when one was ever made (reads only).
pub async fn read_identity(db: &Db) -> Result<Option<String>, RecordsError> {
    let row = sqlx::query("SELECT value FROM kv WHERE key = $1")
        .bind(WORKSPACE_ID_KEY)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
}

/// Stores `cp` unless a checkpoint of the same event count is stored already (the first
/// stays: a later one of the same count cannot replace it). Returns whether it was new.
pub async fn store_checkpoint(db: &Db, cp: &Checkpoint) -> Result<bool, RecordsError> {
    let events = i64::try_from(cp.events)
        .map_err(|_| RecordsError::Invalid("checkpoint event count too large".into()))?;
    let done = sqlx::query(
        "INSERT INTO audit_checkpoints (events, hash, time, workspace, public_key, signature, format) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (events) DO NOTHING",
    )
    .bind(events)
    .bind(&cp.hash)
    .bind(&cp.time)
    .bind(&cp.workspace)
    .bind(&cp.public_key)
    .bind(&cp.signature)
    .bind(&cp.format)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Every stored checkpoint, by event count.
pub async fn list_checkpoints(db: &Db) -> Result<Vec<Checkpoint>, RecordsError> {
    let rows = sqlx::query(
        "SELECT events, hash, time, workspace, public_key, signature, format \
         FROM audit_checkpoints ORDER BY events",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(row_checkpoint).collect()
}

/// The stored checkpoint of the most events.
pub async fn latest_checkpoint(db: &Db) -> Result<Option<Checkpoint>, RecordsError> {
    let row = sqlx::query(
        "SELECT events, hash, time, workspace, public_key, signature, format \
         FROM audit_checkpoints ORDER BY events DESC LIMIT 1",
    )
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(row_checkpoint).transpose()
}

fn row_checkpoint(r: &sqlx::any::AnyRow) -> Result<Checkpoint, RecordsError> {
    let events: i64 = r.try_get("events")?;
    Ok(Checkpoint {
        format: r.try_get("format")?,
        workspace: r.try_get("workspace")?,
        events: u64::try_from(events).map_err(|_| RecordsError::Corrupt {
            table: "audit_checkpoints",
            column: "events",
            record_id: events.to_string(),
        })?,
        hash: r.try_get("hash")?,
        time: r.try_get("time")?,
        public_key: r.try_get("public_key")?,
        signature: r.try_get("signature")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    fn head(seq: u64, c: char) -> AuditHead {
        AuditHead {
            seq,
            hash: std::iter::repeat_n(c, 64).collect(),
        }
    }

    fn log(events: u64, at: &[(u64, AuditHead)]) -> VerifyReport {
        VerifyReport {
            events,
            segments: 1,
            head: head(events, 'f'),
            repair_pending: false,
            hashes: at
                .iter()
                .map(|(s, h)| (*s, h.hash.clone()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn a_checkpoint_vouches_for_the_chain_it_signed() {
        let k = key(1);
        let pk = hex::encode(k.verifying_key().to_bytes());
        let cp = Checkpoint::sign(&k, "ws-a", &head(5, 'a'));
        assert!(cp.signature_ok());
        assert_eq!(check(&cp, &log(7, &[(5, head(5, 'a'))]), &pk, "ws-a"), []);
        let back = Checkpoint::from_json(cp.to_json().as_bytes()).unwrap();
        assert_eq!(back, cp);
    }

    #[test]
    fn attack_every_field_changed_breaks_the_signature() {
        let k = key(1);
        let cp = Checkpoint::sign(&k, "ws-a", &head(5, 'a'));
        let mut edits: Vec<Checkpoint> = Vec::new();
        let mut c = cp.clone();
        c.events = 4;
        edits.push(c);
        let mut c = cp.clone();
        c.hash = head(5, 'b').hash;
        edits.push(c);
        let mut c = cp.clone();
        c.time = "2020-01-01T00:00:00.000Z".into();
        edits.push(c);
        let mut c = cp.clone();
        c.workspace = "ws-b".into();
        edits.push(c);
        let mut c = cp.clone();
        c.public_key = hex::encode(key(2).verifying_key().to_bytes());
        edits.push(c);
        for c in edits {
            assert!(!c.signature_ok(), "{c:?}");
        }
    }

    #[test]
    fn attack_rewritten_truncated_or_foreign_logs_are_faulted() {
        let k = key(1);
        let pk = hex::encode(k.verifying_key().to_bytes());
        let cp = Checkpoint::sign(&k, "ws-a", &head(5, 'a'));
        // Rewritten and re-chained: same count, other hash.
        assert_eq!(
            check(&cp, &log(5, &[(5, head(5, 'b'))]), &pk, "ws-a"),
            [CheckpointFault::HashMismatch]
        );
        // Tail dropped and HEAD rewritten: the log holds fewer events.
        assert_eq!(
            check(&cp, &log(3, &[]), &pk, "ws-a"),
            [CheckpointFault::BeyondLog { log_events: 3 }]
        );
        // Re-signed by the rewriter with a key of their own.
        let forged = Checkpoint::sign(&key(9), "ws-a", &head(5, 'b'));
        assert_eq!(
            check(&forged, &log(5, &[(5, head(5, 'b'))]), &pk, "ws-a"),
            [CheckpointFault::OtherKey]
        );
        // Another workspace's checkpoint.
        assert_eq!(
            check(&cp, &log(5, &[(5, head(5, 'a'))]), &pk, "ws-b"),
            [CheckpointFault::OtherWorkspace]
        );
    }
}
