//! kiban's stores.
//!
//! * [`db`]: the control plane in SQL: one migration set, run on SQLite (embedded default,
//!   zero setup) or PostgreSQL (production). Other crates own their tables through migration
//!   files in `crates/store/migrations/` and query through [`Db`].
//! * [`keys`]: the workspace secrets (master key, index key) and the keyed `patient_key`.
//! * [`registry`]: registrations (one handler's patient), known only by a random id and the
//!   keyed hash of the patient ID; never the plaintext ID.
//! * [`vault`]: the identity vault, AES-256-GCM with one data key per registration wrapped by
//!   the master key; shredding destroys the key (R-SEC-4, R-OPT-6); and the sealed names of
//!   source files, whose paths carry patient IDs (the control plane holds only references).
//! * [`perms`]: owner-only files (0600) and folders (0700) whatever the umask.
//! * [`lake`]: the clinical store as Parquet parts per table and ingest batch, written batch
//!   by batch with atomic publication, streamed on read, compacted on deletion requests.
//!
//! This crate never interprets consent, legal records or clinical meaning: it stores. It never
//! logs or prints, and its errors never carry identity, patient IDs or key material.

pub mod bulk;
pub mod db;
pub mod keys;
pub mod lake;
pub mod perms;
pub mod registry;
pub mod vault;

pub use db::{Backend, Db, DbError};
pub use keys::{SecretKey, patient_key};
pub use lake::{Lake, LakeError, LakeWriter, PartInfo, Scan};
pub use registry::{Registration, Registry, RegistryError};
pub use vault::{SourceFileName, Vault, VaultError};

#[cfg(feature = "testing")]
pub mod testing;
