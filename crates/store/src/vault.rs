//! The identity vault: each registration's [`Identity`], encrypted at rest.
//!
//! Envelope encryption, so that deleting a person is deleting 60 bytes (crypto-shredding,
//! R-SEC-4, R-OPT-6):
//! * every registration gets its own random 256-bit **data key**; its identity is serialized
//!   and sealed with AES-256-GCM under that key (`vault_identities`);
//! * the data key is itself sealed with AES-256-GCM under a key-encryption key derived from
//!   the workspace **master key** (`vault_keys`);
//! * the associated data of both seals binds them to the registration id, so a ciphertext
//!   copied onto another registration's row does not decrypt.
//!
//! [`Vault::shred`] deletes the wrapped data key and the ciphertext. Without the data key a
//! copy of the ciphertext taken earlier (a backup, a stolen file) cannot be decrypted, even
//! with the master key. On SQLite the connection runs with `secure_delete` and a shred
//! truncates the write-ahead log, so the wrapped key's bytes are overwritten in the database
//! file too; on PostgreSQL [`Vault::purge`] rewrites the vault tables.
//!
//! The vault also keeps the **names of source files** (`source_files`): input paths carry
//! patient IDs (SS-MIX2 storage folders) or names (FHIR exports), so the control plane and
//! the lake name a file by a keyed reference and its path is kept here, sealed with
//! AES-256-GCM under a key derived from the master key for this one purpose, the reference
//! bound as associated data ([`Vault::put_file_names`], [`Vault::file_names`]). These are
//! not per person: a file can hold many patients, and its name is kept as long as the ledger
//! row that names it.
//!
//! This module never logs, and its errors never carry identity, file names or key material.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use kiban_model::Identity;
use rand::RngCore;
use sqlx::Row;
use zeroize::{Zeroize, Zeroizing};

use std::collections::HashMap;

use crate::bulk::{Val, fetch_in, insert_rows};
use crate::db::{Backend, Db};
use crate::keys::SecretKey;

const KEK_PURPOSE: &str = "kiban-vault-kek-v1";
const KEY_ID_PURPOSE: &str = "kiban-vault-key-id-v1";
const AAD_KEY: &[u8] = b"kiban-vault-key-v1\0";
const AAD_IDENTITY: &[u8] = b"kiban-vault-identity-v1\0";
const FILE_NAME_PURPOSE: &str = "kiban-vault-file-names-v1";
/// The derivation the release keys were always wrapped under (kept, so that earlier
/// releases' keys still open).
const RELEASE_KEY_PURPOSE: &str = "release-keys";
const AAD_FILE_NAME: &[u8] = b"kiban-vault-file-name-v1\0";
pub const NONCE_LEN: usize = 12;
/// Bytes of the master key's fingerprint at the start of a sealed file name.
const FILE_KEY_ID_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(
        "the vault entry of registration {registration_id} was sealed with another master key \
         (wrong or rotated master.key)"
    )]
    WrongMasterKey { registration_id: String },
    #[error(
        "the vault entry of registration {registration_id} is corrupt or was tampered with: {what}"
    )]
    Corrupt {
        registration_id: String,
        what: &'static str,
    },
    #[error("the sealed name of file {file_ref} cannot be opened: {what}")]
    FileName {
        file_ref: String,
        what: &'static str,
    },
    #[error("the wrapped release key {0}")]
    ReleaseKey(&'static str),
    #[error("registration id must be non-empty")]
    EmptyId,
    #[error("could not serialize the identity record")]
    Serialize,
}

/// The identity vault over the control-plane database.
#[derive(Clone)]
pub struct Vault {
    db: Db,
    kek: SecretKey,
    key_id: String,
    /// Seals source file names (see the module documentation).
    names: SecretKey,
    /// Wraps each release's own key (the producer re-derives a release's pseudonyms from it
    /// for an inspection or an erasure request; erasing the wrapped key erases that power).
    release_keys: SecretKey,
}

/// The name of one source file, unsealed: the handler that delivered it and its path
/// relative to the folder given to the ingest.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceFileName {
    pub handler_code: String,
    pub rel_path: String,
}

impl std::fmt::Debug for SourceFileName {
    /// Never the path: it names patients.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFileName")
            .field("handler_code", &self.handler_code)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A data key; zeroized on drop.
type DataKey = Zeroizing<[u8; 32]>;

fn random_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

fn aad(prefix: &[u8], registration_id: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() + registration_id.len());
    v.extend_from_slice(prefix);
    v.extend_from_slice(registration_id.as_bytes());
    v
}

fn cipher(key: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key))
}

fn nonce_of(bytes: &[u8]) -> Option<&Nonce<aes_gcm::aead::consts::U12>> {
    (bytes.len() == NONCE_LEN).then(|| Nonce::from_slice(bytes))
}

/// One stored entry, as read from the database.
struct Sealed {
    key_id: String,
    wrapped_key: Vec<u8>,
    key_nonce: Vec<u8>,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl Vault {
    /// A vault over `db` (migrated) sealed by `master`. The master key itself is never used
    /// as a cipher key: a key-encryption key is derived from it for this one purpose.
    pub fn new(db: Db, master: SecretKey) -> Vault {
        let kek = master.derive(KEK_PURPOSE);
        let key_id = hex::encode(&master.derive(KEY_ID_PURPOSE).as_bytes()[..8]);
        let names = master.derive(FILE_NAME_PURPOSE);
        let release_keys = master.derive(RELEASE_KEY_PURPOSE);
        Vault {
            db,
            kek,
            key_id,
            names,
            release_keys,
        }
    }

    /// A short public fingerprint of the master key (stored beside each wrapped key so that a
    /// wrong key is reported as such, not as corruption).
    pub fn master_key_id(&self) -> &str {
        &self.key_id
    }

    fn wrap(&self, registration_id: &str, dk: &[u8; 32]) -> Result<(Vec<u8>, Vec<u8>), VaultError> {
        let nonce = random_nonce();
        let ct = cipher(self.kek.as_bytes())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: dk,
                    aad: &aad(AAD_KEY, registration_id),
                },
            )
            .map_err(|_| VaultError::Corrupt {
                registration_id: registration_id.to_string(),
                what: "data key could not be sealed",
            })?;
        Ok((ct, nonce.to_vec()))
    }

    fn unwrap_key(
        &self,
        registration_id: &str,
        key_id: &str,
        wrapped: &[u8],
        nonce: &[u8],
    ) -> Result<DataKey, VaultError> {
        if key_id != self.key_id {
            return Err(VaultError::WrongMasterKey {
                registration_id: registration_id.to_string(),
            });
        }
        let corrupt = |what| VaultError::Corrupt {
            registration_id: registration_id.to_string(),
            what,
        };
        let nonce = nonce_of(nonce).ok_or_else(|| corrupt("key nonce has the wrong length"))?;
        let mut plain = cipher(self.kek.as_bytes())
            .decrypt(
                nonce,
                Payload {
                    msg: wrapped,
                    aad: &aad(AAD_KEY, registration_id),
                },
            )
            .map_err(|_| corrupt("wrapped data key fails authentication"))?;
        let mut dk: DataKey = Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            plain.zeroize();
            return Err(corrupt("wrapped data key has the wrong length"));
        }
        dk.copy_from_slice(&plain);
        plain.zeroize();
        Ok(dk)
    }

    /// The data keys of `ids` that exist, unwrapped.
    async fn load_keys(
        &self,
        conn: &mut sqlx::AnyConnection,
        ids: &[&str],
    ) -> Result<HashMap<String, DataKey>, VaultError> {
        let rows = fetch_in(
            conn,
            "SELECT registration_id, key_id, wrapped_key, nonce FROM vault_keys \
             WHERE registration_id IN ",
            ids,
        )
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get(0)?;
            let key_id: String = row.try_get(1)?;
            let wrapped: Vec<u8> = row.try_get(2)?;
            let nonce: Vec<u8> = row.try_get(3)?;
            let dk = self.unwrap_key(&id, &key_id, &wrapped, &nonce)?;
            out.insert(id, dk);
        }
        Ok(out)
    }

    /// The data keys of `ids`, created (and stored) for those that have none. Safe against
    /// concurrent puts: new key rows are inserted-or-ignored, and when another writer's row
    /// won, that one is read back, so both writers use the same key.
    async fn data_keys(
        &self,
        conn: &mut sqlx::AnyConnection,
        ids: &[&str],
    ) -> Result<HashMap<String, DataKey>, VaultError> {
        let mut keys = self.load_keys(conn, ids).await?;
        let missing: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !keys.contains_key(*id))
            .collect();
        if missing.is_empty() {
            return Ok(keys);
        }
        let now = chrono::Utc::now().to_rfc3339();
        let mut fresh_keys = HashMap::with_capacity(missing.len());
        let mut rows = Vec::with_capacity(missing.len());
        for id in &missing {
            let mut fresh: DataKey = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(fresh.as_mut());
            let (wrapped, nonce) = self.wrap(id, &fresh)?;
            rows.push(vec![
                Val::Text((*id).to_string()),
                Val::Text(self.key_id.clone()),
                Val::Bytes(wrapped),
                Val::Bytes(nonce),
                Val::Text(now.clone()),
            ]);
            fresh_keys.insert((*id).to_string(), fresh);
        }
        let inserted = insert_rows(
            conn,
            "INSERT INTO vault_keys (registration_id, key_id, wrapped_key, nonce, created_at)",
            " ON CONFLICT (registration_id) DO NOTHING",
            rows.into_iter(),
        )
        .await?;
        if inserted == missing.len() as u64 {
            keys.extend(fresh_keys);
            return Ok(keys);
        }
        // Someone else created some of these keys meanwhile: theirs are the stored ones.
        let stored = self.load_keys(conn, &missing).await?;
        for id in missing {
            match stored.get(id) {
                Some(dk) => {
                    keys.insert(id.to_string(), dk.clone());
                }
                None => {
                    return Err(VaultError::Corrupt {
                        registration_id: id.to_string(),
                        what: "data key vanished while being created (concurrent shred?)",
                    });
                }
            }
        }
        Ok(keys)
    }

    /// Stores `identity` as the identity of `registration_id`, replacing any previous one
    /// (callers merge first, e.g. with [`Identity::merge_missing`]).
    pub async fn put(&self, registration_id: &str, identity: &Identity) -> Result<(), VaultError> {
        let mut tx = self.db.pool().begin().await?;
        self.put_many(&mut tx, &[(registration_id, identity)])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// [`Vault::put`] for many registrations on `conn`, normally a transaction that the
    /// caller commits together with whatever the identities belong to (an ingest chunk).
    /// Each identity is sealed under its own registration's data key (created when missing);
    /// the rows are written with multi-row statements. An id given twice keeps the last
    /// identity.
    pub async fn put_many(
        &self,
        conn: &mut sqlx::AnyConnection,
        entries: &[(&str, &Identity)],
    ) -> Result<(), VaultError> {
        // Last one wins for a repeated id (one statement cannot upsert a row twice).
        let mut last: HashMap<&str, &Identity> = HashMap::with_capacity(entries.len());
        let mut order: Vec<&str> = Vec::with_capacity(entries.len());
        for (id, identity) in entries {
            if id.is_empty() {
                return Err(VaultError::EmptyId);
            }
            if last.insert(id, identity).is_none() {
                order.push(id);
            }
        }
        let keys = self.data_keys(conn, &order).await?;
        let now = chrono::Utc::now().to_rfc3339();
        let mut rows = Vec::with_capacity(order.len());
        for id in &order {
            let dk = keys.get(*id).ok_or_else(|| VaultError::Corrupt {
                registration_id: (*id).to_string(),
                what: "data key missing after being created",
            })?;
            let identity = last.get(id).copied().ok_or(VaultError::EmptyId)?;
            let (nonce, ct) = Self::seal(id, dk, identity)?;
            rows.push(vec![
                Val::Text((*id).to_string()),
                Val::Bytes(nonce),
                Val::Bytes(ct),
                Val::Text(now.clone()),
            ]);
        }
        insert_rows(
            conn,
            "INSERT INTO vault_identities (registration_id, nonce, ciphertext, updated_at)",
            " ON CONFLICT (registration_id) DO UPDATE SET nonce = excluded.nonce, \
             ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
            rows.into_iter(),
        )
        .await?;
        Ok(())
    }

    /// Serializes and seals one identity under its data key; returns (nonce, ciphertext).
    fn seal(
        registration_id: &str,
        dk: &[u8; 32],
        identity: &Identity,
    ) -> Result<(Vec<u8>, Vec<u8>), VaultError> {
        let plain =
            Zeroizing::new(serde_json::to_vec(identity).map_err(|_| VaultError::Serialize)?);
        let nonce = random_nonce();
        let ct = cipher(dk)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_slice(),
                    aad: &aad(AAD_IDENTITY, registration_id),
                },
            )
            .map_err(|_| VaultError::Corrupt {
                registration_id: registration_id.to_string(),
                what: "identity could not be sealed",
            })?;
        Ok((nonce.to_vec(), ct))
    }

    fn open(&self, registration_id: &str, s: &Sealed) -> Result<Identity, VaultError> {
        let dk = self.unwrap_key(registration_id, &s.key_id, &s.wrapped_key, &s.key_nonce)?;
        let corrupt = |what| VaultError::Corrupt {
            registration_id: registration_id.to_string(),
            what,
        };
        let nonce = nonce_of(&s.nonce).ok_or_else(|| corrupt("nonce has the wrong length"))?;
        let plain = Zeroizing::new(
            cipher(&dk)
                .decrypt(
                    nonce,
                    Payload {
                        msg: &s.ciphertext,
                        aad: &aad(AAD_IDENTITY, registration_id),
                    },
                )
                .map_err(|_| corrupt("identity ciphertext fails authentication"))?,
        );
        serde_json::from_slice(&plain).map_err(|_| corrupt("identity record does not parse"))
    }

    fn sealed(row: &sqlx::any::AnyRow, offset: usize) -> Result<Sealed, sqlx::Error> {
        Ok(Sealed {
            key_id: row.try_get(offset)?,
            wrapped_key: row.try_get(offset + 1)?,
            key_nonce: row.try_get(offset + 2)?,
            nonce: row.try_get(offset + 3)?,
            ciphertext: row.try_get(offset + 4)?,
        })
    }

    /// The identity of `registration_id`; `None` when it has none or was shredded.
    pub async fn get(&self, registration_id: &str) -> Result<Option<Identity>, VaultError> {
        let row = sqlx::query(
            "SELECT k.key_id, k.wrapped_key, k.nonce, i.nonce, i.ciphertext \
             FROM vault_keys k JOIN vault_identities i ON i.registration_id = k.registration_id \
             WHERE k.registration_id = $1",
        )
        .bind(registration_id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let s = Self::sealed(&row, 0)?;
        self.open(registration_id, &s).map(Some)
    }

    /// The identities of `ids` that have one, on `conn` (a pooled connection or the
    /// caller's transaction), with one query per few hundred ids instead of one per id.
    pub async fn get_many(
        &self,
        conn: &mut sqlx::AnyConnection,
        ids: &[&str],
    ) -> Result<HashMap<String, Identity>, VaultError> {
        let rows = fetch_in(
            conn,
            "SELECT k.registration_id, k.key_id, k.wrapped_key, k.nonce, i.nonce, i.ciphertext \
             FROM vault_keys k JOIN vault_identities i ON i.registration_id = k.registration_id \
             WHERE k.registration_id IN ",
            ids,
        )
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get(0)?;
            let s = Self::sealed(&row, 1)?;
            let identity = self.open(&id, &s)?;
            out.insert(id, identity);
        }
        Ok(out)
    }

    /// Up to `limit` identities with registration ids strictly after `after` (or from the
    /// start), in registration-id order: keyset paging for linkage over millions of
    /// registrations without holding them all.
    pub async fn list_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<(String, Identity)>, VaultError> {
        let rows = sqlx::query(
            "SELECT k.registration_id, k.key_id, k.wrapped_key, k.nonce, i.nonce, i.ciphertext \
             FROM vault_keys k JOIN vault_identities i ON i.registration_id = k.registration_id \
             WHERE k.registration_id > $1 ORDER BY k.registration_id LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.db.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get(0)?;
            let s = Self::sealed(row, 1)?;
            let identity = self.open(&id, &s)?;
            out.push((id, identity));
        }
        Ok(out)
    }

    /// Every identity in the vault, in registration-id order. Prefer [`Vault::list_page`] for
    /// large workspaces.
    pub async fn list(&self) -> Result<Vec<(String, Identity)>, VaultError> {
        let mut out = Vec::new();
        loop {
            let after = out.last().map(|(id, _): &(String, Identity)| id.clone());
            let page = self.list_page(after.as_deref(), 1000).await?;
            if page.is_empty() {
                return Ok(out);
            }
            out.extend(page);
        }
    }

    /// Number of registrations holding an identity.
    pub async fn count(&self) -> Result<u64, VaultError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM vault_identities")
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Wraps a release's key (AES-256-GCM under a key derived from the master key, bound to
    /// `release_id`): the random nonce and the ciphertext, as the `releases` table keeps them.
    pub fn wrap_release_key(
        &self,
        release_id: &str,
        key: &[u8; 32],
    ) -> Result<([u8; NONCE_LEN], Vec<u8>), VaultError> {
        let nonce = random_nonce();
        let ct = cipher(self.release_keys.as_bytes())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: key,
                    aad: release_id.as_bytes(),
                },
            )
            .map_err(|_| VaultError::ReleaseKey("could not be wrapped"))?;
        Ok((nonce, ct))
    }

    /// Opens what [`Vault::wrap_release_key`] wrapped for `release_id`.
    pub fn unwrap_release_key(
        &self,
        release_id: &str,
        nonce: &[u8],
        wrapped: &[u8],
    ) -> Result<zeroize::Zeroizing<[u8; 32]>, VaultError> {
        let nonce = nonce_of(nonce).ok_or(VaultError::ReleaseKey("has a malformed nonce"))?;
        let plain = zeroize::Zeroizing::new(
            cipher(self.release_keys.as_bytes())
                .decrypt(
                    nonce,
                    Payload {
                        msg: wrapped,
                        aad: release_id.as_bytes(),
                    },
                )
                .map_err(|_| VaultError::ReleaseKey("fails authentication"))?,
        );
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        if plain.len() != 32 {
            return Err(VaultError::ReleaseKey("has the wrong length"));
        }
        key.copy_from_slice(&plain);
        Ok(key)
    }

    /// Seals a source file's relative path, bound to its reference `file_ref`: the master
    /// key's fingerprint (8 bytes, so that a wrong key is reported as such), a random nonce,
    /// the AES-256-GCM ciphertext.
    pub fn seal_file_name(&self, file_ref: &str, rel_path: &str) -> Result<Vec<u8>, VaultError> {
        let nonce = random_nonce();
        let ct = cipher(self.names.as_bytes())
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: rel_path.as_bytes(),
                    aad: &aad(AAD_FILE_NAME, file_ref),
                },
            )
            .map_err(|_| VaultError::FileName {
                file_ref: file_ref.to_string(),
                what: "could not be sealed",
            })?;
        let mut out = Vec::with_capacity(FILE_KEY_ID_LEN + NONCE_LEN + ct.len());
        out.extend_from_slice(&self.file_key_id());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens what [`Vault::seal_file_name`] sealed for `file_ref`.
    pub fn open_file_name(&self, file_ref: &str, sealed: &[u8]) -> Result<String, VaultError> {
        let err = |what| VaultError::FileName {
            file_ref: file_ref.to_string(),
            what,
        };
        if sealed.len() < FILE_KEY_ID_LEN + NONCE_LEN {
            return Err(err("too short"));
        }
        let (key_id, rest) = sealed.split_at(FILE_KEY_ID_LEN);
        if key_id != self.file_key_id() {
            return Err(err(
                "sealed with another master key (wrong or rotated master.key)",
            ));
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let plain = cipher(self.names.as_bytes())
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &aad(AAD_FILE_NAME, file_ref),
                },
            )
            .map_err(|_| err("fails authentication (corrupt, or moved from another row)"))?;
        String::from_utf8(plain).map_err(|_| err("is not UTF-8"))
    }

    fn file_key_id(&self) -> [u8; FILE_KEY_ID_LEN] {
        let mut id = [0u8; FILE_KEY_ID_LEN];
        // The public fingerprint of the master key (hex of 8 bytes), as bytes.
        let _ = hex::decode_to_slice(&self.key_id, &mut id);
        id
    }

    /// Stores the sealed names of source files on `conn`, normally the transaction that also
    /// writes the rows naming them by `file_ref` (so that no reference is stored without its
    /// name). Entries are (reference, handler code, relative path); a reference already
    /// stored keeps its name (the reference is a keyed hash of handler and path, so it is the
    /// same name). Returns the rows added.
    pub async fn put_file_names(
        &self,
        conn: &mut sqlx::AnyConnection,
        entries: &[(&str, &str, &str)],
    ) -> Result<u64, VaultError> {
        let mut rows = Vec::with_capacity(entries.len());
        let mut seen = std::collections::HashSet::with_capacity(entries.len());
        for (file_ref, handler, rel_path) in entries {
            if !seen.insert(*file_ref) {
                continue;
            }
            rows.push(vec![
                Val::Text((*file_ref).to_string()),
                Val::Text((*handler).to_string()),
                Val::Bytes(self.seal_file_name(file_ref, rel_path)?),
            ]);
        }
        Ok(insert_rows(
            conn,
            "INSERT INTO source_files (file_ref, handler_code, sealed)",
            " ON CONFLICT (file_ref) DO NOTHING",
            rows.into_iter(),
        )
        .await?)
    }

    /// The names of those of `refs` that have one, unsealed.
    pub async fn file_names(
        &self,
        refs: &[&str],
    ) -> Result<HashMap<String, SourceFileName>, VaultError> {
        let mut conn = self.db.pool().acquire().await?;
        let rows = fetch_in(
            &mut conn,
            "SELECT file_ref, handler_code, sealed FROM source_files WHERE file_ref IN ",
            refs,
        )
        .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in rows {
            let file_ref: String = row.try_get(0)?;
            let handler_code: String = row.try_get(1)?;
            let sealed: Vec<u8> = row.try_get(2)?;
            let rel_path = self.open_file_name(&file_ref, &sealed)?;
            out.insert(
                file_ref,
                SourceFileName {
                    handler_code,
                    rel_path,
                },
            );
        }
        Ok(out)
    }

    /// Crypto-shreds `registration_id` (R-SEC-4, R-OPT-6): deletes its wrapped data key and
    /// its ciphertext. Returns whether there was anything to destroy.
    pub async fn shred(&self, registration_id: &str) -> Result<bool, VaultError> {
        Ok(self.shred_many(&[registration_id]).await? > 0)
    }

    /// Shreds many registrations in one transaction, then [`Vault::purge`]s; returns how many
    /// had a key or an identity.
    pub async fn shred_many(&self, registration_ids: &[&str]) -> Result<u64, VaultError> {
        let mut tx = self.db.pool().begin().await?;
        let mut n = 0;
        for id in registration_ids {
            let k = sqlx::query("DELETE FROM vault_keys WHERE registration_id = $1")
                .bind(*id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let i = sqlx::query("DELETE FROM vault_identities WHERE registration_id = $1")
                .bind(*id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if k + i > 0 {
                n += 1;
            }
        }
        tx.commit().await?;
        if self.db.backend() == Backend::Sqlite && n > 0 {
            self.purge().await?;
        }
        Ok(n)
    }

    /// Makes deleted vault rows physically unrecoverable from the database files as far as
    /// the backend allows. SQLite (which runs with `secure_delete=ON`, zeroing deleted
    /// content): checkpoints and truncates the write-ahead log, which still holds old page
    /// images. PostgreSQL: `VACUUM FULL` of the two vault tables (rewrites them into new
    /// files; takes an exclusive lock, so run it after a batch of deletions).
    pub async fn purge(&self) -> Result<(), VaultError> {
        match self.db.backend() {
            Backend::Sqlite => {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(self.db.pool())
                    .await?;
            }
            Backend::Postgres => {
                sqlx::query("VACUUM FULL vault_keys, vault_identities")
                    .execute(self.db.pool())
                    .await?;
            }
        }
        Ok(())
    }
}
