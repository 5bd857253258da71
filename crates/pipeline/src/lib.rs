//! kiban's orchestration layer: one [`Workspace`] that wires the libraries together.
//!
//! * [`Workspace::init`] / [`Workspace::open`]: the workspace folder (`kiban.toml`, keys,
//!   SQLite database or a PostgreSQL URL, the Parquet lake, the audit log, releases).
//! * [`Workspace::ingest`]: files → format readers → **the consent gate per unit** →
//!   identity into the vault, facts into the lake, receipt record, audit event. Chunks are
//!   committed atomically; an interrupted chunk is rolled back when the workspace next opens.
//! * [`files`]: input files are named by keyed references everywhere the workspace stores
//!   or prints them; their paths (which carry patient IDs) are kept sealed in the vault and
//!   shown with [`Workspace::show_files`].
//! * [`Workspace::release`]: **the gate again per registration**, person clusters, the
//!   release spec applied by `kiban-release`, a release record and an audit event.
//! * [`records`]: the statutory records listed for inspection ([`Workspace::list_records`]).
//! * [`demo::run`]: the whole pipeline on synthetic and bundled sample data.
//!
//! Every command that changes state appends an audit event, also when it fails or is
//! refused. This crate never prints: progress goes through [`Progress`], results are
//! returned as values for the binary to present.

pub mod audit_check;
pub mod backup;
pub mod books;
pub mod config;
pub mod deletion;
pub mod demo;
pub mod desk_find;
pub mod duties;
pub mod error;
pub mod export;
pub mod files;
pub mod handlers;
pub mod incidents;
pub mod ingest;
pub mod link;
pub mod lock;
pub mod optout;
pub mod optout_events;
pub mod progress;
pub mod records;
pub mod refusal;
pub mod release;
pub mod release_approval;
pub mod release_erasure;
pub mod release_images;
pub mod retention;
pub mod sealed;
pub mod stats;
pub mod workflow;
pub mod workspace;

pub use error::PipelineError;
pub use progress::{NoProgress, Progress};
pub use refusal::Refusal;
pub use workspace::Workspace;
