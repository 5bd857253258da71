//! The identity vault: each registration's [`Identity`], encrypted at rest.
//!
//! Envelope encryption, so that deleting a person is deleting 60 bytes (crypto-shredding,
//! R-SEC-4, R-OPT-6):
//! * every registration gets its own random 256-bit **data key**; its identity is serialized
//!   and sealed with AES-256-GCM under that key (`vault_identities`);
//! * the data key is itself sealed with AES-256-GCM under a key-encryption key derived from
//!   the current **epoch key** (`vault_keys`), a file under `keys/` beside the master key and
//!   never in the database, which records only the epoch's number and a fingerprint (`kv`:
//!   `vault.epoch`, `vault.epoch_key_id`);
//! * the associated data of both seals binds them to the registration id, so a ciphertext
//!   copied onto another registration's row does not decrypt.
//!
//! [`Vault::shred`] deletes the wrapped data key and the ciphertext. Without the data key a
//! copy of the ciphertext taken earlier cannot be decrypted, even with the master key.
//!
//! **Key epochs** make that hold against database backups too, which still hold the wrapped
//! data key: a shred marks a rotation pending (`vault.rotate_pending`, in the shred's own
//! transaction) and [`Vault::rotate_epoch`] re-wraps every surviving data key under a fresh
//! epoch key — the new key file written durably (temporary file, fsync, rename, fsync of
//! `keys/`) *before* the re-wrapped rows are committed — then destroys the old epoch key file
//! (overwritten, unlinked). A database backup from before the deletion names an epoch whose
//! key no longer exists, so nothing in it opens, the deleted person included; a backup policy
//! must therefore keep epoch key backups apart from database backups and destroy those older
//! than a deletion within the period promised (ARCHITECTURE.md, backup policy). A crash
//! between the new file and the commit leaves two epoch files: [`Vault::prepare_epochs`]
//! (at open, under the exclusive workspace lock) keeps the one the database names and
//! destroys the other. Workspaces from before epochs (data keys wrapped under the master
//! key) move to epoch 1 there too. [`Vault::new`] alone (no key folder) keeps the master-key
//! wrapping, for library users and tests without a workspace.
//!
//! **Subjects.** What the control plane knows of a person before (or without) any
//! registration — a request's requester, the stored receipt copy — is sealed under a
//! per-subject data key (`vault_subject_keys`, keyed by handler and `patient_key`, wrapped
//! like the registrations' keys): [`Vault::seal_for_subject`], [`Vault::open_for_subject`],
//! and [`Vault::shred_subjects`], which the deletion of that patient calls. On SQLite the connection runs with `secure_delete` and a shred
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
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::bulk::{Val, fetch_in, insert_rows};
use crate::db::{Backend, Db};
use crate::keys::{KeyError, SecretKey, destroy_key_file};

const KEK_PURPOSE: &str = "kiban-vault-kek-v1";
const KEY_ID_PURPOSE: &str = "kiban-vault-key-id-v1";
const AAD_KEY: &[u8] = b"kiban-vault-key-v1\0";
const AAD_IDENTITY: &[u8] = b"kiban-vault-identity-v1\0";
const FILE_NAME_PURPOSE: &str = "kiban-vault-file-names-v1";
/// The derivation the release keys were always wrapped under (kept, so that earlier
/// releases' keys still open).
const RELEASE_KEY_PURPOSE: &str = "release-keys";
const AAD_FILE_NAME: &[u8] = b"kiban-vault-file-name-v1\0";
const AAD_SUBJECT_KEY: &[u8] = b"kiban-vault-subject-key-v1\0";
const AAD_SUBJECT_DATA: &[u8] = b"kiban-vault-subject-data-v1\0";
/// A registration's sealed object (an original DICOM file kept for releases of images).
const AAD_OBJECT: &[u8] = b"kiban-vault-object-v1\0";
/// `kv` keys: the epoch in force, its key's fingerprint, a rotation owed by a shred.
const KV_EPOCH: &str = "vault.epoch";
const KV_EPOCH_ID: &str = "vault.epoch_key_id";
const KV_ROTATE: &str = "vault.rotate_pending";
/// Epoch key files: `keys/vault-epoch-<N>.key`.
const EPOCH_FILE_PREFIX: &str = "vault-epoch-";
const EPOCH_FILE_SUFFIX: &str = ".key";
/// Rows re-wrapped per page during a rotation.
const REWRAP_PAGE: i64 = 1000;
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
    #[error(
        "the vault key of {entry} was wrapped under a key epoch this workspace no longer has \
         (a database restored from before a deletion cannot be opened with the keys kept \
         after it: see the backup policy in ARCHITECTURE.md)"
    )]
    StaleEpoch { entry: String },
    #[error(
        "the database names vault key epoch {epoch}, but {path} is missing (restore keys/ from \
         the key backup of the database's time)"
    )]
    EpochKeyMissing { epoch: u64, path: String },
    #[error("the vault key epoch file of epoch {epoch} does not match the database's fingerprint")]
    EpochKeyMismatch { epoch: u64 },
    #[error("the vault's key epoch was not loaded (prepare_epochs or load_epoch first)")]
    EpochNotLoaded,
    #[error("this vault has no key folder: key epochs need Vault::with_epochs")]
    NoEpochs,
    #[error("the vault's key epoch state is poisoned")]
    Poisoned,
    #[error("a subject's sealed {0} cannot be opened: {1}")]
    Subject(&'static str, &'static str),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("registration id must be non-empty")]
    EmptyId,
    #[error("could not serialize the identity record")]
    Serialize,
    #[error("the vault's page reader stopped unexpectedly")]
    ReaderFailed,
}

/// A key-encryption key: derived from an epoch key (or, before epochs, the master key), with
/// the public fingerprint stored beside each key it wraps.
#[derive(Clone)]
struct Kek {
    epoch: u64,
    key: SecretKey,
    key_id: String,
}

impl Kek {
    /// The master-key wrapping of workspaces from before key epochs (epoch 0).
    fn legacy(master: &SecretKey) -> Kek {
        Kek {
            epoch: 0,
            key: master.derive(KEK_PURPOSE),
            key_id: hex::encode(&master.derive(KEY_ID_PURPOSE).as_bytes()[..8]),
        }
    }

    /// Epoch `epoch`'s wrapping; its fingerprint (`e<N>:` + 16 hex) never looks like a
    /// master-key fingerprint (16 hex).
    fn of_epoch(epoch: u64, epoch_key: &SecretKey) -> Kek {
        Kek {
            epoch,
            key: epoch_key.derive(KEK_PURPOSE),
            key_id: format!(
                "e{epoch}:{}",
                hex::encode(&epoch_key.derive(KEY_ID_PURPOSE).as_bytes()[..8])
            ),
        }
    }
}

enum EpochState {
    /// [`Vault::new`]: data keys wrapped under the master key.
    Legacy,
    /// [`Vault::with_epochs`] before [`Vault::prepare_epochs`] / [`Vault::load_epoch`].
    Unloaded,
    Epoch(Kek),
}

/// What [`Vault::prepare_epochs`] did at open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochReport {
    /// The epoch in force afterwards.
    pub epoch: u64,
    /// Data and subject keys moved from the master-key wrapping to epoch 1.
    pub migrated: u64,
    /// Epoch key files destroyed because the database does not name them (a crash between
    /// a rotation's new file and its commit, or after the commit).
    pub removed_files: u64,
    /// A rotation owed by an earlier shred was carried out.
    pub rotated: bool,
}

/// The path of epoch `epoch`'s key file in `keys_dir`.
pub fn epoch_key_path(keys_dir: &Path, epoch: u64) -> PathBuf {
    keys_dir.join(format!("{EPOCH_FILE_PREFIX}{epoch}{EPOCH_FILE_SUFFIX}"))
}

/// The epoch key files in `keys_dir`, by epoch.
pub fn epoch_key_files(keys_dir: &Path) -> Result<Vec<(u64, PathBuf)>, VaultError> {
    let rd = match std::fs::read_dir(keys_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(KeyError::Io {
                path: keys_dir.display().to_string(),
                source,
            }
            .into());
        }
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| KeyError::Io {
            path: keys_dir.display().to_string(),
            source,
        })?;
        let name = entry.file_name();
        let Some(n) = name
            .to_str()
            .and_then(|n| n.strip_prefix(EPOCH_FILE_PREFIX))
            .and_then(|n| n.strip_suffix(EPOCH_FILE_SUFFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((n, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// The identity vault over the control-plane database.
#[derive(Clone)]
pub struct Vault {
    db: Db,
    /// The master-key wrapping (epoch 0): used by [`Vault::new`], and read once by the
    /// migration of an older workspace to epoch 1.
    legacy: Kek,
    /// The folder of the epoch key files (`keys/`), for [`Vault::with_epochs`].
    keys_dir: Option<PathBuf>,
    epoch: Arc<RwLock<EpochState>>,
    /// The master key's public fingerprint.
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

/// Associated data of a registration's sealed object: the registration and the object.
fn object_aad(registration_id: &str, bind: &str) -> Vec<u8> {
    let mut v = aad(AAD_OBJECT, registration_id);
    v.push(0);
    v.extend_from_slice(bind.as_bytes());
    v
}

fn seal_object(
    dk: &[u8; 32],
    registration_id: &str,
    bind: &str,
    plain: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let nonce = random_nonce();
    let ct = cipher(dk)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &object_aad(registration_id, bind),
            },
        )
        .map_err(|_| VaultError::Corrupt {
            registration_id: registration_id.to_string(),
            what: "object could not be sealed",
        })?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens registrations' sealed objects with keys loaded by [`Vault::object_opener`]. Holds
/// the data keys in memory (zeroized on drop); never printed (no `Debug` of keys).
pub struct ObjectOpener {
    keys: HashMap<String, DataKey>,
}

impl std::fmt::Debug for ObjectOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectOpener")
            .field("registrations", &self.keys.len())
            .finish()
    }
}

impl ObjectOpener {
    /// The object `bind` of `registration_id`; `None` when the registration has no key
    /// (shredded by a deletion, or never ingested): the object is crypto-shredded.
    pub fn open(
        &self,
        registration_id: &str,
        bind: &str,
        sealed: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, VaultError> {
        let Some(dk) = self.keys.get(registration_id) else {
            return Ok(None);
        };
        let corrupt = |what| VaultError::Corrupt {
            registration_id: registration_id.to_string(),
            what,
        };
        if sealed.len() < NONCE_LEN {
            return Err(corrupt("sealed object too short"));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let plain = cipher(dk)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &object_aad(registration_id, bind),
                },
            )
            .map_err(|_| corrupt("sealed object fails authentication"))?;
        Ok(Some(Zeroizing::new(plain)))
    }
}

/// Wraps a 32-byte key under `kek`: (ciphertext, nonce).
fn wrap_under(kek: &Kek, aad: &[u8], dk: &[u8; 32]) -> Option<(Vec<u8>, Vec<u8>)> {
    let nonce = random_nonce();
    let ct = cipher(kek.key.as_bytes())
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: dk, aad })
        .ok()?;
    Some((ct, nonce.to_vec()))
}

/// Opens what [`wrap_under`] wrapped; the error says what failed (never a value).
fn unwrap_under(
    kek: &Kek,
    aad: &[u8],
    wrapped: &[u8],
    nonce: &[u8],
) -> Result<DataKey, &'static str> {
    let nonce = nonce_of(nonce).ok_or("key nonce has the wrong length")?;
    let mut plain = cipher(kek.key.as_bytes())
        .decrypt(nonce, Payload { msg: wrapped, aad })
        .map_err(|_| "wrapped data key fails authentication")?;
    if plain.len() != 32 {
        plain.zeroize();
        return Err("wrapped data key has the wrong length");
    }
    let mut dk: DataKey = Zeroizing::new([0u8; 32]);
    dk.copy_from_slice(&plain);
    plain.zeroize();
    Ok(dk)
}

/// The error for a wrapped key whose fingerprint is not the key-encryption key's: a key
/// epoch this workspace no longer has (or a pre-epoch row after the move to epochs), or
/// another master key.
fn mismatch(kek: &Kek, legacy: &Kek, key_id: &str, entry: impl FnOnce() -> String) -> VaultError {
    if key_id.starts_with('e') && key_id.contains(':') || (kek.epoch > 0 && key_id == legacy.key_id)
    {
        VaultError::StaleEpoch { entry: entry() }
    } else {
        VaultError::WrongMasterKey {
            registration_id: entry(),
        }
    }
}

/// The associated data binding a subject's wrapped key to (handler, patient key).
fn subject_aad(prefix: &[u8], handler: &str, patient_key: &str, extra: &[&str]) -> Vec<u8> {
    let mut v = prefix.to_vec();
    for part in [handler, patient_key].iter().chain(extra) {
        v.extend_from_slice(&(part.len() as u64).to_be_bytes());
        v.extend_from_slice(part.as_bytes());
    }
    v
}

/// One stored entry, as read from the database.
struct Sealed {
    key_id: String,
    wrapped_key: Vec<u8>,
    key_nonce: Vec<u8>,
    nonce: Vec<u8>,
    ciphertext: Vec<u8>,
}

/// Identities read per statement by [`Vault::list`] and [`Vault::list_map`].
const LIST_PAGE: u32 = 8192;

/// The sealed identities with their wrapped keys, [`LIST_PAGE`] a statement, sent page by
/// page to `tx` (an error ends the read; so does a receiver that went away).
///
/// Each page comes back as *one* row: its rows' fields hex-encoded, `,` between fields and
/// `;` between rows (`group_concat`, `string_agg`). The drivers' cost per row returned
/// (a row converted, every value copied) was three quarters of the time of a whole-vault
/// read; one row per page leaves the database's own work and a hex decoding. SQLite pages
/// by the identities' own row order (`rowid`): the table is read front to back and each key
/// row found through the key table's index, where paging by registration id would jump
/// through the identity table's index once per row. PostgreSQL pages by registration id.
async fn read_sealed_pages(db: Db, tx: tokio::sync::mpsc::Sender<Result<String, VaultError>>) {
    let sqlite = db.backend() == Backend::Sqlite;
    let sql = if sqlite {
        "SELECT max(p.pos), count(*), group_concat(hex(p.id) || ',' || hex(p.key_id) || ',' \
         || hex(p.wk) || ',' || hex(p.kn) || ',' || hex(p.n) || ',' || hex(p.c), ';') \
         FROM (SELECT i.rowid AS pos, i.registration_id AS id, k.key_id AS key_id, \
         k.wrapped_key AS wk, k.nonce AS kn, i.nonce AS n, i.ciphertext AS c \
         FROM vault_identities i JOIN vault_keys k ON k.registration_id = i.registration_id \
         WHERE i.rowid > $1 ORDER BY i.rowid LIMIT $2) p"
    } else {
        "SELECT max(p.id), count(*), string_agg(encode(convert_to(p.id, 'UTF8'), 'hex') \
         || ',' || encode(convert_to(p.key_id, 'UTF8'), 'hex') || ',' || encode(p.wk, 'hex') \
         || ',' || encode(p.kn, 'hex') || ',' || encode(p.n, 'hex') || ',' \
         || encode(p.c, 'hex'), ';') \
         FROM (SELECT k.registration_id AS id, k.key_id AS key_id, k.wrapped_key AS wk, \
         k.nonce AS kn, i.nonce AS n, i.ciphertext AS c FROM vault_keys k \
         JOIN vault_identities i ON i.registration_id = k.registration_id \
         WHERE k.registration_id > $1 ORDER BY k.registration_id LIMIT $2) p"
    };
    let mut after_pos = 0i64;
    let mut after_id = String::new();
    loop {
        let q = sqlx::query(sql);
        let q = if sqlite {
            q.bind(after_pos)
        } else {
            q.bind(after_id.clone())
        };
        let page: Result<(i64, String), VaultError> = async {
            let row = q.bind(i64::from(LIST_PAGE)).fetch_one(db.pool()).await?;
            let n: i64 = row.try_get(1)?;
            if n == 0 {
                return Ok((0, String::new()));
            }
            if sqlite {
                after_pos = row.try_get(0)?;
            } else {
                after_id = row.try_get(0)?;
            }
            Ok((n, row.try_get(2)?))
        }
        .await;
        let last = match &page {
            Ok((n, _)) => *n < i64::from(LIST_PAGE),
            Err(_) => true,
        };
        if tx.send(page.map(|(_, packed)| packed)).await.is_err() || last {
            return;
        }
    }
}

/// One row of a page of [`read_sealed_pages`]: six hex fields.
fn unpack_sealed(packed: &str) -> Result<(String, Sealed), VaultError> {
    let bad = || VaultError::Corrupt {
        registration_id: String::new(),
        what: "a listed vault row does not unpack",
    };
    let mut f = packed.split(',').map(|h| hex::decode(h).map_err(|_| bad()));
    let mut next = || f.next().unwrap_or_else(|| Err(bad()));
    let text = |b: Vec<u8>| String::from_utf8(b).map_err(|_| bad());
    let id = text(next()?)?;
    let sealed = Sealed {
        key_id: text(next()?)?,
        wrapped_key: next()?,
        key_nonce: next()?,
        nonce: next()?,
        ciphertext: next()?,
    };
    Ok((id, sealed))
}

impl Vault {
    /// A vault over `db` (migrated) sealed by `master`. The master key itself is never used
    /// as a cipher key: a key-encryption key is derived from it for this one purpose.
    ///
    /// Data keys are wrapped under the master key (no key epochs): a library user or a test
    /// without a workspace. A workspace uses [`Vault::with_epochs`].
    pub fn new(db: Db, master: SecretKey) -> Vault {
        Vault::build(db, master, None, EpochState::Legacy)
    }

    /// A vault whose data keys are wrapped under the epoch key kept in `keys_dir` (see the
    /// module documentation). Nothing is read until [`Vault::prepare_epochs`] (a writer, at
    /// open) or [`Vault::load_epoch`] (a reader); until then every key operation fails.
    pub fn with_epochs(db: Db, master: SecretKey, keys_dir: &Path) -> Vault {
        Vault::build(
            db,
            master,
            Some(keys_dir.to_path_buf()),
            EpochState::Unloaded,
        )
    }

    fn build(db: Db, master: SecretKey, keys_dir: Option<PathBuf>, state: EpochState) -> Vault {
        let legacy = Kek::legacy(&master);
        let key_id = legacy.key_id.clone();
        let names = master.derive(FILE_NAME_PURPOSE);
        let release_keys = master.derive(RELEASE_KEY_PURPOSE);
        Vault {
            db,
            legacy,
            keys_dir,
            epoch: Arc::new(RwLock::new(state)),
            key_id,
            names,
            release_keys,
        }
    }

    /// The key-encryption key in force.
    fn kek(&self) -> Result<Kek, VaultError> {
        match &*self.epoch.read().map_err(|_| VaultError::Poisoned)? {
            EpochState::Legacy => Ok(self.legacy.clone()),
            EpochState::Unloaded => Err(VaultError::EpochNotLoaded),
            EpochState::Epoch(k) => Ok(k.clone()),
        }
    }

    fn set_epoch(&self, kek: Kek) -> Result<(), VaultError> {
        *self.epoch.write().map_err(|_| VaultError::Poisoned)? = EpochState::Epoch(kek);
        Ok(())
    }

    /// The key epoch in force (0: the master-key wrapping of [`Vault::new`]).
    pub fn epoch(&self) -> Result<u64, VaultError> {
        Ok(self.kek()?.epoch)
    }

    /// A short public fingerprint of the master key (stored beside each wrapped key so that a
    /// wrong key is reported as such, not as corruption).
    pub fn master_key_id(&self) -> &str {
        &self.key_id
    }

    fn wrap(
        kek: &Kek,
        registration_id: &str,
        dk: &[u8; 32],
    ) -> Result<(Vec<u8>, Vec<u8>), VaultError> {
        wrap_under(kek, &aad(AAD_KEY, registration_id), dk).ok_or_else(|| VaultError::Corrupt {
            registration_id: registration_id.to_string(),
            what: "data key could not be sealed",
        })
    }

    fn unwrap_key(
        &self,
        registration_id: &str,
        key_id: &str,
        wrapped: &[u8],
        nonce: &[u8],
    ) -> Result<DataKey, VaultError> {
        let kek = self.kek()?;
        Self::unwrap_with(&kek, &self.legacy, registration_id, key_id, wrapped, nonce)
    }

    /// Unwraps a registration's data key under `kek` (which must be the one its row names).
    fn unwrap_with(
        kek: &Kek,
        legacy: &Kek,
        registration_id: &str,
        key_id: &str,
        wrapped: &[u8],
        nonce: &[u8],
    ) -> Result<DataKey, VaultError> {
        if key_id != kek.key_id {
            return Err(mismatch(kek, legacy, key_id, || {
                registration_id.to_string()
            }));
        }
        let corrupt = |what| VaultError::Corrupt {
            registration_id: registration_id.to_string(),
            what,
        };
        unwrap_under(kek, &aad(AAD_KEY, registration_id), wrapped, nonce).map_err(corrupt)
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
        let kek = self.kek()?;
        let now = chrono::Utc::now().to_rfc3339();
        let mut fresh_keys = HashMap::with_capacity(missing.len());
        let mut rows = Vec::with_capacity(missing.len());
        for id in &missing {
            let mut fresh: DataKey = Zeroizing::new([0u8; 32]);
            rand::rngs::OsRng.fill_bytes(fresh.as_mut());
            let (wrapped, nonce) = Self::wrap(&kek, id, &fresh)?;
            rows.push(vec![
                Val::Text((*id).to_string()),
                Val::Text(kek.key_id.clone()),
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
        let kek = self.kek()?;
        Self::open_with(&kek, &self.legacy, registration_id, s)
    }

    /// [`Vault::open`] under `kek` (the key-encryption key in force, read once by a caller
    /// that opens many).
    fn open_with(
        kek: &Kek,
        legacy: &Kek,
        registration_id: &str,
        s: &Sealed,
    ) -> Result<Identity, VaultError> {
        let dk = Self::unwrap_with(
            kek,
            legacy,
            registration_id,
            &s.key_id,
            &s.wrapped_key,
            &s.key_nonce,
        )?;
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
    /// registrations without holding them all. The page is opened on every core.
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
        let mut sealed = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get(0)?;
            sealed.push((id, Self::sealed(row, 1)?));
        }
        drop(rows);
        self.open_all(sealed)
    }

    /// Opens sealed identities in parallel (rayon), keeping their order; the first failure
    /// in that order is the error.
    fn open_all(
        &self,
        sealed: Vec<(String, Sealed)>,
    ) -> Result<Vec<(String, Identity)>, VaultError> {
        let kek = self.kek()?;
        Self::open_map(&kek, &self.legacy, sealed, &|id, identity| (id, identity))
    }

    /// Opens `sealed` on every core and maps each identity through `f`, keeping the order;
    /// the first failure in that order is the error.
    fn open_map<T: Send>(
        kek: &Kek,
        legacy: &Kek,
        sealed: Vec<(String, Sealed)>,
        f: &(dyn Fn(String, Identity) -> T + Sync),
    ) -> Result<Vec<T>, VaultError> {
        use rayon::prelude::*;
        sealed
            .into_par_iter()
            .map(|(id, s)| {
                let identity = Self::open_with(kek, legacy, &id, &s)?;
                Ok(f(id, identity))
            })
            .collect()
    }

    /// Every identity in the vault, in registration-id order, opened on every core (see
    /// [`Vault::list_map`]). Prefer [`Vault::list_page`] for large workspaces when the
    /// identities need not all be held at once, or [`Vault::list_map`] to keep only what
    /// is needed of each.
    pub async fn list(&self) -> Result<Vec<(String, Identity)>, VaultError> {
        let mut out = self.list_map(|id, identity| (id, identity)).await?;
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// `f(registration_id, identity)` of every identity in the vault, in no particular
    /// order (sort the result when order matters): the whole-vault read of linkage and
    /// `link export`. The sealed rows are read [`LIST_PAGE`] at a time in the order the
    /// database stores them — on SQLite the table's own row order, so the read is
    /// sequential rather than a jump through the key index per row — by a task of its own,
    /// while the page before is opened on every core; only `f`'s results are kept, so a
    /// caller that needs one field of each identity does not hold them all. Identities
    /// exist only decrypted in memory, inside this call and `f`.
    pub async fn list_map<T, F>(&self, f: F) -> Result<Vec<T>, VaultError>
    where
        T: Send,
        F: Fn(String, Identity) -> T + Sync,
    {
        let kek = self.kek()?;
        // Two pages in flight at most: the one being opened and the one being read.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<String, VaultError>>(1);
        let reader = tokio::spawn(read_sealed_pages(self.db.clone(), tx));
        let mut out = Vec::new();
        while let Some(packed) = rx.recv().await {
            let packed = packed?;
            if packed.is_empty() {
                continue;
            }
            // Unpacked and opened on every core.
            use rayon::prelude::*;
            let rows: Vec<&str> = packed.split(';').collect();
            let opened = rows
                .into_par_iter()
                .map(|row| {
                    let (id, s) = unpack_sealed(row)?;
                    let identity = Self::open_with(&kek, &self.legacy, &id, &s)?;
                    Ok(f(id, identity))
                })
                .collect::<Result<Vec<T>, VaultError>>()?;
            out.extend(opened);
        }
        reader.await.map_err(|_| VaultError::ReaderFailed)?;
        Ok(out)
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
        if n > 0 {
            // The wrapped keys are still in database backups: the epoch that wrapped them
            // must go (Vault::rotate_if_pending), even after a crash.
            kv_set(&mut tx, KV_ROTATE, "1").await?;
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
                sqlx::query("VACUUM FULL vault_keys, vault_identities, vault_subject_keys")
                    .execute(self.db.pool())
                    .await?;
            }
        }
        Ok(())
    }
}

async fn kv_get(conn: &mut sqlx::AnyConnection, key: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query("SELECT value FROM kv WHERE key = $1")
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get::<String, _>(0))
        .transpose()
}

async fn kv_set(conn: &mut sqlx::AnyConnection, key: &str, value: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO kv (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Key epochs (see the module documentation).
impl Vault {
    fn keys_dir(&self) -> Result<&Path, VaultError> {
        self.keys_dir.as_deref().ok_or(VaultError::NoEpochs)
    }

    /// The epoch the database names, with its key's fingerprint.
    async fn named_epoch(
        conn: &mut sqlx::AnyConnection,
    ) -> Result<Option<(u64, String)>, VaultError> {
        let Some(e) = kv_get(conn, KV_EPOCH).await? else {
            return Ok(None);
        };
        let epoch = e.parse::<u64>().map_err(|_| VaultError::Corrupt {
            registration_id: "(key epoch)".into(),
            what: "the recorded key epoch is not a number",
        })?;
        let id = kv_get(conn, KV_EPOCH_ID).await?.unwrap_or_default();
        Ok(Some((epoch, id)))
    }

    /// Loads the epoch key the database names and checks its fingerprint.
    fn load_epoch_key(dir: &Path, epoch: u64, key_id: &str) -> Result<Kek, VaultError> {
        let path = epoch_key_path(dir, epoch);
        if !path.exists() {
            return Err(VaultError::EpochKeyMissing {
                epoch,
                path: path.display().to_string(),
            });
        }
        let kek = Kek::of_epoch(epoch, &SecretKey::load(&path)?);
        if kek.key_id != key_id {
            return Err(VaultError::EpochKeyMismatch { epoch });
        }
        Ok(kek)
    }

    /// For a reader: loads the epoch key the database names, changing nothing. A workspace
    /// not yet moved to epochs is read under the master key.
    pub async fn load_epoch(&self) -> Result<u64, VaultError> {
        let dir = self.keys_dir()?;
        let mut conn = self.db.pool().acquire().await?;
        match Self::named_epoch(&mut conn).await? {
            Some((epoch, id)) => {
                let kek = Self::load_epoch_key(dir, epoch, &id)?;
                self.set_epoch(kek)?;
                Ok(epoch)
            }
            None => {
                *self.epoch.write().map_err(|_| VaultError::Poisoned)? = EpochState::Legacy;
                Ok(0)
            }
        }
    }

    /// Whether [`Vault::prepare_epochs`] has work to do (no epoch yet, an epoch file the
    /// database does not name, a rotation owed). Reads only.
    pub async fn epochs_need_preparing(&self) -> Result<bool, VaultError> {
        let dir = self.keys_dir()?;
        let mut conn = self.db.pool().acquire().await?;
        let Some((epoch, _)) = Self::named_epoch(&mut conn).await? else {
            return Ok(true);
        };
        if kv_get(&mut conn, KV_ROTATE).await?.is_some() {
            return Ok(true);
        }
        Ok(epoch_key_files(dir)?.iter().any(|(n, _)| *n != epoch))
    }

    /// For a writer at open (under the exclusive workspace lock, after the migrations):
    /// recovers from a crash in a rotation (keeps the epoch file the database names, destroys
    /// any other), moves a workspace from before epochs to epoch 1 (idempotent), loads the
    /// epoch key, and carries out a rotation that a shred left owed.
    pub async fn prepare_epochs(&self) -> Result<EpochReport, VaultError> {
        let dir = self.keys_dir()?.to_path_buf();
        let named = {
            let mut conn = self.db.pool().acquire().await?;
            Self::named_epoch(&mut conn).await?
        };
        let files = epoch_key_files(&dir)?;
        let mut report = EpochReport::default();
        match named {
            Some((epoch, id)) => {
                let kek = Self::load_epoch_key(&dir, epoch, &id)?;
                for (n, p) in &files {
                    if *n != epoch && destroy_key_file(p)? {
                        report.removed_files += 1;
                    }
                }
                self.set_epoch(kek)?;
                report.epoch = epoch;
            }
            None => {
                // A new workspace, one from before epochs, or a crash in the move to epoch 1
                // (its file was written, its rows never committed): start epoch 1 afresh.
                for (_, p) in &files {
                    if destroy_key_file(p)? {
                        report.removed_files += 1;
                    }
                }
                let legacy = self.legacy.clone();
                report.migrated = self.move_to_epoch(&dir, &legacy, 1).await?;
                report.epoch = 1;
            }
        }
        if self.rotate_if_pending().await?.is_some() {
            report.rotated = true;
            report.epoch = self.epoch()?;
        }
        Ok(report)
    }

    /// Carries out a rotation that a shred left owed; returns the new epoch, `None` when none
    /// was owed or this vault has no key epochs ([`Vault::new`]).
    pub async fn rotate_if_pending(&self) -> Result<Option<u64>, VaultError> {
        if self.keys_dir.is_none() {
            return Ok(None);
        }
        let pending = {
            let mut conn = self.db.pool().acquire().await?;
            kv_get(&mut conn, KV_ROTATE).await?.is_some()
        };
        if !pending {
            return Ok(None);
        }
        self.rotate_epoch().await.map(Some)
    }

    /// Re-wraps every data key and subject key under a fresh epoch key and destroys the
    /// current epoch key (see the module documentation for the order and crash safety).
    /// Returns the new epoch.
    pub async fn rotate_epoch(&self) -> Result<u64, VaultError> {
        let dir = self.keys_dir()?.to_path_buf();
        let current = self.kek()?;
        if current.epoch == 0 {
            return Err(VaultError::EpochNotLoaded);
        }
        let next = current.epoch + 1;
        self.move_to_epoch(&dir, &current, next).await?;
        destroy_key_file(&epoch_key_path(&dir, current.epoch))?;
        self.purge().await?;
        Ok(next)
    }

    /// Writes epoch `next`'s key file durably, re-wraps every key wrapped under `from` in one
    /// transaction that also names `next` in the database and clears an owed rotation, and
    /// makes `next` the epoch in force. On a failure before the commit the new file is
    /// destroyed. Returns the keys re-wrapped. The caller destroys `from`'s file.
    async fn move_to_epoch(&self, dir: &Path, from: &Kek, next: u64) -> Result<u64, VaultError> {
        let path = epoch_key_path(dir, next);
        let key = SecretKey::generate();
        key.write_durable(&path)?;
        let to = Kek::of_epoch(next, &key);
        drop(key);
        let result = async {
            let mut tx = self.db.pool().begin().await?;
            let n = self.rewrap_all(&mut tx, from, &to).await?;
            kv_set(&mut tx, KV_EPOCH, &next.to_string()).await?;
            kv_set(&mut tx, KV_EPOCH_ID, &to.key_id).await?;
            sqlx::query("DELETE FROM kv WHERE key = $1")
                .bind(KV_ROTATE)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<u64, VaultError>(n)
        }
        .await;
        match result {
            Ok(n) => {
                self.set_epoch(to)?;
                Ok(n)
            }
            Err(e) => {
                let _ = destroy_key_file(&path);
                Err(e)
            }
        }
    }

    /// Re-wraps, page by page, every registration and subject key from `from` to `to`.
    async fn rewrap_all(
        &self,
        conn: &mut sqlx::AnyConnection,
        from: &Kek,
        to: &Kek,
    ) -> Result<u64, VaultError> {
        let mut n = 0u64;
        let mut after = String::new();
        loop {
            let rows = sqlx::query(
                "SELECT registration_id, key_id, wrapped_key, nonce FROM vault_keys \
                 WHERE registration_id > $1 ORDER BY registration_id LIMIT $2",
            )
            .bind(&after)
            .bind(REWRAP_PAGE)
            .fetch_all(&mut *conn)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get(0)?;
            for row in rows {
                let id: String = row.try_get(0)?;
                let key_id: String = row.try_get(1)?;
                let wrapped: Vec<u8> = row.try_get(2)?;
                let nonce: Vec<u8> = row.try_get(3)?;
                let dk = Self::unwrap_with(from, &self.legacy, &id, &key_id, &wrapped, &nonce)?;
                let (w, nn) = Self::wrap(to, &id, &dk)?;
                sqlx::query(
                    "UPDATE vault_keys SET key_id = $1, wrapped_key = $2, nonce = $3 \
                     WHERE registration_id = $4",
                )
                .bind(&to.key_id)
                .bind(w)
                .bind(nn)
                .bind(&id)
                .execute(&mut *conn)
                .await?;
                n += 1;
            }
        }
        let (mut h_after, mut p_after) = (String::new(), String::new());
        loop {
            let rows = sqlx::query(
                "SELECT handler_code, patient_key, key_id, wrapped_key, nonce \
                 FROM vault_subject_keys WHERE handler_code > $1 \
                 OR (handler_code = $1 AND patient_key > $2) \
                 ORDER BY handler_code, patient_key LIMIT $3",
            )
            .bind(&h_after)
            .bind(&p_after)
            .bind(REWRAP_PAGE)
            .fetch_all(&mut *conn)
            .await?;
            let Some(last) = rows.last() else { break };
            h_after = last.try_get(0)?;
            p_after = last.try_get(1)?;
            for row in rows {
                let handler: String = row.try_get(0)?;
                let pk: String = row.try_get(1)?;
                let key_id: String = row.try_get(2)?;
                let wrapped: Vec<u8> = row.try_get(3)?;
                let nonce: Vec<u8> = row.try_get(4)?;
                let dk = Self::unwrap_subject(
                    from,
                    &self.legacy,
                    &handler,
                    &pk,
                    &key_id,
                    &wrapped,
                    &nonce,
                )?;
                let (w, nn) =
                    wrap_under(to, &subject_aad(AAD_SUBJECT_KEY, &handler, &pk, &[]), &dk)
                        .ok_or(VaultError::Subject("key", "could not be wrapped"))?;
                sqlx::query(
                    "UPDATE vault_subject_keys SET key_id = $1, wrapped_key = $2, nonce = $3 \
                     WHERE handler_code = $4 AND patient_key = $5",
                )
                .bind(&to.key_id)
                .bind(w)
                .bind(nn)
                .bind(&handler)
                .bind(&pk)
                .execute(&mut *conn)
                .await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Subjects: what is known of a handler's patient outside any registration (see the module
/// documentation).
impl Vault {
    fn unwrap_subject(
        kek: &Kek,
        legacy: &Kek,
        handler: &str,
        patient_key: &str,
        key_id: &str,
        wrapped: &[u8],
        nonce: &[u8],
    ) -> Result<DataKey, VaultError> {
        if key_id != kek.key_id {
            return Err(mismatch(kek, legacy, key_id, || "a subject".to_string()));
        }
        unwrap_under(
            kek,
            &subject_aad(AAD_SUBJECT_KEY, handler, patient_key, &[]),
            wrapped,
            nonce,
        )
        .map_err(|what| VaultError::Subject("key", what))
    }

    /// The subject's data key, `None` when it has none (never had, or shredded).
    async fn subject_key(
        &self,
        conn: &mut sqlx::AnyConnection,
        handler: &str,
        patient_key: &str,
    ) -> Result<Option<DataKey>, VaultError> {
        let row = sqlx::query(
            "SELECT key_id, wrapped_key, nonce FROM vault_subject_keys \
             WHERE handler_code = $1 AND patient_key = $2",
        )
        .bind(handler)
        .bind(patient_key)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let key_id: String = row.try_get(0)?;
        let wrapped: Vec<u8> = row.try_get(1)?;
        let nonce: Vec<u8> = row.try_get(2)?;
        let kek = self.kek()?;
        Self::unwrap_subject(
            &kek,
            &self.legacy,
            handler,
            patient_key,
            &key_id,
            &wrapped,
            &nonce,
        )
        .map(Some)
    }

    /// The subject's data key, created when it has none (insert-or-ignore, then read back, so
    /// two writers agree on one key).
    async fn subject_key_or_create(
        &self,
        conn: &mut sqlx::AnyConnection,
        handler: &str,
        patient_key: &str,
    ) -> Result<DataKey, VaultError> {
        if let Some(k) = self.subject_key(conn, handler, patient_key).await? {
            return Ok(k);
        }
        let kek = self.kek()?;
        let mut fresh: DataKey = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(fresh.as_mut());
        let (w, nonce) = wrap_under(
            &kek,
            &subject_aad(AAD_SUBJECT_KEY, handler, patient_key, &[]),
            &fresh,
        )
        .ok_or(VaultError::Subject("key", "could not be wrapped"))?;
        sqlx::query(
            "INSERT INTO vault_subject_keys (handler_code, patient_key, key_id, wrapped_key, \
             nonce, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (handler_code, patient_key) DO NOTHING",
        )
        .bind(handler)
        .bind(patient_key)
        .bind(&kek.key_id)
        .bind(w)
        .bind(nonce)
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(&mut *conn)
        .await?;
        self.subject_key(conn, handler, patient_key)
            .await?
            .ok_or(VaultError::Subject("key", "vanished while being created"))
    }

    /// Seals `plain` for one handler's patient under the subject's data key (created when
    /// missing): a random nonce, then the AES-256-GCM ciphertext, bound as associated data
    /// to the subject, `purpose` (what it is: `requester`, `receipt-copy`) and `bind` (the
    /// row or file it belongs to, e.g. the event ID), so a sealed value moved elsewhere does
    /// not open.
    pub async fn seal_for_subject(
        &self,
        handler: &str,
        patient_key: &str,
        purpose: &str,
        bind: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let mut conn = self.db.pool().acquire().await?;
        let dk = self
            .subject_key_or_create(&mut conn, handler, patient_key)
            .await?;
        let nonce = random_nonce();
        let ct = cipher(&dk)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &subject_aad(AAD_SUBJECT_DATA, handler, patient_key, &[purpose, bind]),
                },
            )
            .map_err(|_| VaultError::Subject("value", "could not be sealed"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// [`Vault::seal_for_subject`] for many values on `conn`, normally the caller's
    /// transaction, so that what is sealed and the rows holding it commit together (a bulk
    /// import never writes a requester's name in clear, not even for a moment). Each item is
    /// (handler, patient key, bind, plain), all sealed for `purpose`; the subjects' keys are
    /// read a few hundred per statement and the missing ones created with multi-row
    /// statements (insert-or-ignore, then read back, so two writers agree on one key).
    /// Returns the sealed values in the order of `items`.
    pub async fn seal_many_for_subjects(
        &self,
        conn: &mut sqlx::AnyConnection,
        purpose: &str,
        items: &[(&str, &str, &str, &[u8])],
    ) -> Result<Vec<Vec<u8>>, VaultError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let kek = self.kek()?;
        let mut wanted: Vec<(&str, &str)> = items.iter().map(|(h, pk, _, _)| (*h, *pk)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut keys = self.subject_keys_in(conn, &kek, &wanted).await?;
        let missing: Vec<(&str, &str)> = wanted
            .iter()
            .copied()
            .filter(|s| !keys.contains_key(&(s.0.to_string(), s.1.to_string())))
            .collect();
        if !missing.is_empty() {
            let now = chrono::Utc::now().to_rfc3339();
            let mut rows = Vec::with_capacity(missing.len());
            for (h, pk) in &missing {
                let mut fresh: DataKey = Zeroizing::new([0u8; 32]);
                rand::rngs::OsRng.fill_bytes(fresh.as_mut());
                let (w, nonce) =
                    wrap_under(&kek, &subject_aad(AAD_SUBJECT_KEY, h, pk, &[]), &fresh)
                        .ok_or(VaultError::Subject("key", "could not be wrapped"))?;
                rows.push(vec![
                    Val::Text((*h).to_string()),
                    Val::Text((*pk).to_string()),
                    Val::Text(kek.key_id.clone()),
                    Val::Bytes(w),
                    Val::Bytes(nonce),
                    Val::Text(now.clone()),
                ]);
            }
            insert_rows(
                conn,
                "INSERT INTO vault_subject_keys (handler_code, patient_key, key_id, wrapped_key, \
                 nonce, created_at)",
                " ON CONFLICT (handler_code, patient_key) DO NOTHING",
                rows.into_iter(),
            )
            .await?;
            // Read back: where another writer's key won, that one is used.
            keys.extend(self.subject_keys_in(conn, &kek, &missing).await?);
        }
        let mut out = Vec::with_capacity(items.len());
        for (h, pk, bind, plain) in items {
            let dk = keys
                .get(&((*h).to_string(), (*pk).to_string()))
                .ok_or(VaultError::Subject("key", "vanished while being created"))?;
            let nonce = random_nonce();
            let ct = cipher(dk)
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: plain,
                        aad: &subject_aad(AAD_SUBJECT_DATA, h, pk, &[purpose, bind]),
                    },
                )
                .map_err(|_| VaultError::Subject("value", "could not be sealed"))?;
            let mut sealed = Vec::with_capacity(NONCE_LEN + ct.len());
            sealed.extend_from_slice(&nonce);
            sealed.extend_from_slice(&ct);
            out.push(sealed);
        }
        Ok(out)
    }

    /// The data keys of the subjects among `subjects` that have one, read on `conn` a few
    /// hundred patient keys per statement.
    async fn subject_keys_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        kek: &Kek,
        subjects: &[(&str, &str)],
    ) -> Result<HashMap<(String, String), DataKey>, VaultError> {
        let mut pks: Vec<&str> = subjects.iter().map(|s| s.1).collect();
        pks.sort_unstable();
        pks.dedup();
        let rows = fetch_in(
            conn,
            "SELECT handler_code, patient_key, key_id, wrapped_key, nonce \
             FROM vault_subject_keys WHERE patient_key IN ",
            &pks,
        )
        .await?;
        let mut out = HashMap::with_capacity(subjects.len());
        for row in rows {
            let h: String = row.try_get(0)?;
            let pk: String = row.try_get(1)?;
            if subjects.binary_search(&(h.as_str(), pk.as_str())).is_err() {
                continue;
            }
            let key_id: String = row.try_get(2)?;
            let wrapped: Vec<u8> = row.try_get(3)?;
            let nonce: Vec<u8> = row.try_get(4)?;
            let dk = Self::unwrap_subject(kek, &self.legacy, &h, &pk, &key_id, &wrapped, &nonce)?;
            out.insert((h, pk), dk);
        }
        Ok(out)
    }

    /// Opens what [`Vault::seal_for_subject`] sealed; `None` when the subject's key is gone
    /// (the patient was deleted: the value is crypto-shredded).
    pub async fn open_for_subject(
        &self,
        handler: &str,
        patient_key: &str,
        purpose: &str,
        bind: &str,
        sealed: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, VaultError> {
        let mut conn = self.db.pool().acquire().await?;
        let Some(dk) = self.subject_key(&mut conn, handler, patient_key).await? else {
            return Ok(None);
        };
        if sealed.len() < NONCE_LEN {
            return Err(VaultError::Subject("value", "too short"));
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let plain = cipher(&dk)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &subject_aad(AAD_SUBJECT_DATA, handler, patient_key, &[purpose, bind]),
                },
            )
            .map_err(|_| {
                VaultError::Subject(
                    "value",
                    "fails authentication (corrupt, or moved from another row)",
                )
            })?;
        Ok(Some(Zeroizing::new(plain)))
    }

    /// Seals a registration's own object (an original DICOM file: its header names the
    /// patient) under the registration's data key, created when missing, on `conn` (the
    /// ingest chunk's transaction): a random nonce, then the AES-256-GCM ciphertext, bound
    /// to the registration and to `bind` (the object's reference). Shredding the
    /// registration ([`Vault::shred`]) leaves it unreadable wherever it is kept.
    pub async fn seal_for_registration(
        &self,
        conn: &mut sqlx::AnyConnection,
        registration_id: &str,
        bind: &str,
        plain: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        if registration_id.is_empty() {
            return Err(VaultError::EmptyId);
        }
        let keys = self.data_keys(conn, &[registration_id]).await?;
        let dk = keys
            .get(registration_id)
            .ok_or_else(|| VaultError::Corrupt {
                registration_id: registration_id.to_string(),
                what: "data key missing after being created",
            })?;
        seal_object(dk, registration_id, bind, plain)
    }

    /// The keys to open what [`Vault::seal_for_registration`] sealed for `ids`, loaded once
    /// (a release opens many objects in a synchronous loop). Registrations without a key
    /// (shredded) are simply absent: their objects do not open.
    pub async fn object_opener(&self, ids: &[&str]) -> Result<ObjectOpener, VaultError> {
        let mut conn = self.db.pool().acquire().await?;
        let keys = self.load_keys(&mut conn, ids).await?;
        Ok(ObjectOpener { keys })
    }

    /// Crypto-shreds the data keys of the subjects (handler, patient key) in one
    /// transaction, marking a key-epoch rotation owed; returns how many had a key. Everything
    /// sealed for them, wherever it is kept (a column, a file, a backup), no longer opens
    /// once the epoch has rotated.
    pub async fn shred_subjects(&self, subjects: &[(&str, &str)]) -> Result<u64, VaultError> {
        let mut tx = self.db.pool().begin().await?;
        let mut n = 0;
        for (handler, pk) in subjects {
            n += sqlx::query(
                "DELETE FROM vault_subject_keys WHERE handler_code = $1 AND patient_key = $2",
            )
            .bind(*handler)
            .bind(*pk)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if n > 0 {
            kv_set(&mut tx, KV_ROTATE, "1").await?;
        }
        tx.commit().await?;
        if self.db.backend() == Backend::Sqlite && n > 0 {
            self.purge().await?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn vault(dir: &Path) -> Vault {
        let db = Db::open_sqlite(&dir.join("v.db")).await.expect("db");
        db.migrate().await.expect("migrate");
        Vault::with_epochs(db, SecretKey::from_bytes([3; 32]), &dir.join("keys"))
    }

    fn identity(name: &str) -> Identity {
        let mut i = Identity::default();
        i.name_kanji = Some(name.into());
        i
    }

    #[tokio::test]
    async fn epochs_rotate_destroy_and_recover_from_a_crash() {
        let tmp = tempfile::tempdir().expect("tmp");
        let keys = tmp.path().join("keys");
        let v = vault(tmp.path()).await;
        assert!(matches!(v.get("r1").await, Ok(None)));
        assert!(matches!(
            v.put("r1", &identity("a")).await,
            Err(VaultError::EpochNotLoaded)
        ));
        let r = v.prepare_epochs().await.expect("prepare");
        assert_eq!((r.epoch, r.migrated), (1, 0));
        v.put("r1", &identity("a")).await.expect("put");
        v.put("r2", &identity("b")).await.expect("put");
        let sealed = v
            .seal_for_subject("H", "pk", "requester", "ev1", b"name")
            .await
            .expect("seal");
        // Nothing owed until something is shredded.
        assert_eq!(v.rotate_if_pending().await.expect("none"), None);
        assert!(v.shred("r2").await.expect("shred"));
        assert_eq!(v.rotate_if_pending().await.expect("rotate"), Some(2));
        assert_eq!(
            epoch_key_files(&keys).expect("ls"),
            vec![(2, epoch_key_path(&keys, 2))]
        );
        assert_eq!(
            v.get("r1")
                .await
                .expect("get")
                .and_then(|i| i.name_kanji.clone()),
            Some("a".into())
        );
        let open = v
            .open_for_subject("H", "pk", "requester", "ev1", &sealed)
            .await
            .expect("open")
            .expect("key");
        assert_eq!(open.as_slice(), b"name");
        // Bound to its row: another event's ID does not open it.
        assert!(
            v.open_for_subject("H", "pk", "requester", "ev2", &sealed)
                .await
                .is_err()
        );

        // A crash after the new file was written, before the commit: a stray epoch 3 file.
        SecretKey::generate()
            .write_durable(&epoch_key_path(&keys, 3))
            .expect("stray");
        let again = vault(tmp.path()).await;
        assert!(again.epochs_need_preparing().await.expect("check"));
        let r = again.prepare_epochs().await.expect("recover");
        assert_eq!((r.epoch, r.removed_files), (2, 1));
        assert!(!epoch_key_path(&keys, 3).exists());
        assert!(again.get("r1").await.expect("get").is_some());

        // A subject shred owes a rotation too; a shredded subject opens as None.
        assert_eq!(
            again.shred_subjects(&[("H", "pk")]).await.expect("shred"),
            1
        );
        assert_eq!(
            again
                .open_for_subject("H", "pk", "requester", "ev1", &sealed)
                .await
                .expect("open"),
            None
        );
        assert!(again.epochs_need_preparing().await.expect("owed"));
        assert!(again.prepare_epochs().await.expect("rotate").rotated);
        assert_eq!(again.epoch().expect("epoch"), 3);
    }

    #[tokio::test]
    async fn a_pre_epoch_vault_moves_to_epoch_1_once() {
        let tmp = tempfile::tempdir().expect("tmp");
        let db = Db::open_sqlite(&tmp.path().join("v.db")).await.expect("db");
        db.migrate().await.expect("migrate");
        let master = SecretKey::from_bytes([4; 32]);
        let old = Vault::new(db.clone(), master.clone());
        old.put("r1", &identity("a")).await.expect("put");
        let v = Vault::with_epochs(db.clone(), master.clone(), &tmp.path().join("keys"));
        let r = v.prepare_epochs().await.expect("move");
        assert_eq!((r.epoch, r.migrated), (1, 1));
        assert_eq!(
            v.get("r1")
                .await
                .expect("get")
                .and_then(|i| i.name_kanji.clone()),
            Some("a".into())
        );
        // Idempotent; and the master key alone no longer opens it.
        let r = v.prepare_epochs().await.expect("again");
        assert_eq!((r.epoch, r.migrated, r.removed_files), (1, 0, 0));
        assert!(matches!(
            Vault::new(db, master).get("r1").await,
            Err(VaultError::StaleEpoch { .. })
        ));
    }
}
