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
//! This module never logs, and its errors never carry identity or key material.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use kiban_model::Identity;
use rand::RngCore;
use sqlx::Row;
use zeroize::{Zeroize, Zeroizing};

use crate::db::{Backend, Db};
use crate::keys::SecretKey;

const KEK_PURPOSE: &str = "kiban-vault-kek-v1";
const KEY_ID_PURPOSE: &str = "kiban-vault-key-id-v1";
const AAD_KEY: &[u8] = b"kiban-vault-key-v1\0";
const AAD_IDENTITY: &[u8] = b"kiban-vault-identity-v1\0";
const NONCE_LEN: usize = 12;

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
        Vault { db, kek, key_id }
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

    /// The data key of `registration_id`, created (and stored) if it has none. Safe against
    /// concurrent puts: the key row is inserted-or-ignored and then read back, so both callers
    /// use whichever key won.
    async fn data_key(&self, registration_id: &str) -> Result<DataKey, VaultError> {
        if let Some(dk) = self.load_key(registration_id).await? {
            return Ok(dk);
        }
        let mut fresh: DataKey = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(fresh.as_mut());
        let (wrapped, nonce) = self.wrap(registration_id, &fresh)?;
        sqlx::query(
            "INSERT INTO vault_keys (registration_id, key_id, wrapped_key, nonce, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (registration_id) DO NOTHING",
        )
        .bind(registration_id)
        .bind(&self.key_id)
        .bind(wrapped)
        .bind(nonce)
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(self.db.pool())
        .await?;
        self.load_key(registration_id)
            .await?
            .ok_or_else(|| VaultError::Corrupt {
                registration_id: registration_id.to_string(),
                what: "data key vanished while being created (concurrent shred?)",
            })
    }

    async fn load_key(&self, registration_id: &str) -> Result<Option<DataKey>, VaultError> {
        let row = sqlx::query(
            "SELECT key_id, wrapped_key, nonce FROM vault_keys WHERE registration_id = $1",
        )
        .bind(registration_id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let key_id: String = row.try_get(0)?;
        let wrapped: Vec<u8> = row.try_get(1)?;
        let nonce: Vec<u8> = row.try_get(2)?;
        self.unwrap_key(registration_id, &key_id, &wrapped, &nonce)
            .map(Some)
    }

    /// Stores `identity` as the identity of `registration_id`, replacing any previous one
    /// (callers merge first, e.g. with [`Identity::merge_missing`]).
    pub async fn put(&self, registration_id: &str, identity: &Identity) -> Result<(), VaultError> {
        if registration_id.is_empty() {
            return Err(VaultError::EmptyId);
        }
        let dk = self.data_key(registration_id).await?;
        let plain =
            Zeroizing::new(serde_json::to_vec(identity).map_err(|_| VaultError::Serialize)?);
        let nonce = random_nonce();
        let ct = cipher(&dk)
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
        sqlx::query(
            "INSERT INTO vault_identities (registration_id, nonce, ciphertext, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (registration_id) DO UPDATE SET nonce = excluded.nonce, \
             ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
        )
        .bind(registration_id)
        .bind(nonce.to_vec())
        .bind(ct)
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(self.db.pool())
        .await?;
        Ok(())
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
