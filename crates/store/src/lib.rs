//! kiban's stores.
//!
//! * [`db`]: the control plane in SQL: one migration set, run on SQLite (embedded default,
//!   zero setup) or PostgreSQL (production). Other crates own their tables through migration
//!   files in `crates/store/migrations/` and query through [`Db`].
//!
//! This crate never interprets consent, legal records or clinical meaning: it stores.

pub mod db;

pub use db::{Backend, Db, DbError};
pub mod keys;

pub use keys::{SecretKey, patient_key};
