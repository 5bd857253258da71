//! `kiban.toml`, the workspace's configuration.

use serde::{Deserialize, Serialize};

use crate::PipelineError;

/// The default configuration written by `kiban init`.
pub const DEFAULT_CONFIG: &str = r#"# kiban workspace configuration
[workspace]
# Shown in audit events when no actor is given (--actor / KIBAN_ACTOR).
default_actor = "operator"
# Seconds a command waits for the workspace lock held by another kiban command (an ingest,
# a release…) before it gives up; 0 = do not wait. KIBAN_LOCK_TIMEOUT overrides it.
lock_timeout_secs = 300

[database]
# The control plane. SQLite (embedded, zero setup) by default; for production a
# PostgreSQL URL such as "postgres://kiban@db.internal/kiban". A relative sqlite path is
# relative to the workspace folder.
url = "sqlite://kiban.db"

[ingest]
# Facts buffered before a chunk is committed to the lake (memory bound of an ingest).
chunk_rows = 200000
# Files per chunk at most (a chunk is the unit of atomic commit and resume).
chunk_files = 2000
# Intake limits (bytes). A file with a line, message or document over its limit is
# quarantined with the reason (code too_large), never read into memory whole.
# A line of a line-based file (FHIR NDJSON: one resource per line) and a CSV record.
max_line_bytes = 16777216
# One SS-MIX2 / HL7 v2 file (one message).
max_message_bytes = 16777216
# A JSON document read whole (a FHIR Bundle or resource file).
max_document_bytes = 67108864

[retention]
# The erasure duty (R-REC-5): what `kiban retention run` erases once it is no longer needed.
# Absent or commented out: nothing is erased automatically (statutory records keep their own
# 3-year rule, `kiban retention run --years`).
# Days the producer keeps its own copy of an internal-evaluation package and the release's
# key after the day it was made; then both are erased, with an erasure record.
# release_copies_days = 180
# Days after a handler's contract end (`kiban handler update CODE --contract-end DATE`) its
# data are erased: identities (vault), clinical facts (lake), kept files and the
# registrations' keys, each with an erasure record.
# handler_data_after_contract_end_days = 90

[link]
# The clerical review queue of `kiban link review` (R-LINK-2): at most this share of the
# registrations goes to review (0.005 = 0.5 %), the pairs the model is least sure of and
# whose decision moves the most. Pairs beyond it are decided by the model (they stay apart)
# and counted in the error rates `kiban link` reports. 0: nothing goes to review.
review_budget = 0.005
"#;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub workspace: WorkspaceSection,
    pub database: DatabaseSection,
    pub ingest: IngestSection,
    /// Absent in workspaces created before the retention policy: nothing is erased.
    #[serde(default)]
    pub retention: RetentionSection,
    /// Absent in workspaces created before the review budget: the default budget.
    #[serde(default)]
    pub link: LinkSection,
}

/// Linkage settings (`[link]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSection {
    /// The most pairs sent to clerical review, as a share of the registrations, in [0, 1]
    /// (see [`kiban_link::LinkConfig::review_budget`]).
    #[serde(default = "default_review_budget")]
    pub review_budget: f64,
}

impl Default for LinkSection {
    fn default() -> Self {
        LinkSection {
            review_budget: default_review_budget(),
        }
    }
}

fn default_review_budget() -> f64 {
    kiban_link::linker::DEFAULT_REVIEW_BUDGET
}

/// The retention policy (`[retention]`): `None` keeps a kind of data until it is erased by
/// hand; a number of days erases it that many days after its date (a release's day, a
/// handler's contract end). Data dated exactly that many days ago is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    #[serde(default)]
    pub release_copies_days: Option<u32>,
    #[serde(default)]
    pub handler_data_after_contract_end_days: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSection {
    pub default_actor: String,
    /// See [`crate::lock`]; absent in workspaces created before the lock existed.
    #[serde(default = "default_lock_timeout")]
    pub lock_timeout_secs: u64,
}

fn default_lock_timeout() -> u64 {
    crate::lock::DEFAULT_TIMEOUT_SECS
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    pub chunk_rows: usize,
    pub chunk_files: usize,
    /// Intake limits ([`kiban_ingest::Limits`]); absent in older workspaces.
    #[serde(default = "limits::line")]
    pub max_line_bytes: u64,
    #[serde(default = "limits::message")]
    pub max_message_bytes: u64,
    #[serde(default = "limits::document")]
    pub max_document_bytes: u64,
}

mod limits {
    pub fn line() -> u64 {
        kiban_ingest::Limits::default().max_line as u64
    }
    pub fn message() -> u64 {
        kiban_ingest::Limits::default().max_message as u64
    }
    pub fn document() -> u64 {
        kiban_ingest::Limits::default().max_document as u64
    }
}

impl IngestSection {
    /// The readers' limits (a value beyond the address space is capped).
    pub fn limits(&self) -> kiban_ingest::Limits {
        let cap = |v: u64| usize::try_from(v).unwrap_or(usize::MAX).max(1);
        kiban_ingest::Limits {
            max_line: cap(self.max_line_bytes),
            max_message: cap(self.max_message_bytes),
            max_document: cap(self.max_document_bytes),
        }
    }
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, PipelineError> {
        let c: Config = toml::from_str(text).map_err(|e| PipelineError::Config(e.to_string()))?;
        let b = c.link.review_budget;
        if !(0.0..=1.0).contains(&b) {
            return Err(PipelineError::Config(format!(
                "[link] review_budget must be a share of the registrations in [0, 1] (0.005 = 0.5 %), not {b}"
            )));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses() {
        let c = Config::parse(DEFAULT_CONFIG).expect("parses");
        assert!(c.database.url.starts_with("sqlite://"));
        assert!(c.ingest.chunk_rows > 0);
        assert_eq!(c.ingest.limits(), kiban_ingest::Limits::default());
        assert_eq!(c.workspace.lock_timeout_secs, 300);
        // A new workspace erases nothing automatically until the policy is set.
        assert_eq!(c.retention, RetentionSection::default());
        assert_eq!(c.link.review_budget, 0.005);
    }

    #[test]
    fn a_review_budget_is_read_and_checked() {
        let none = DEFAULT_CONFIG.replace("review_budget = 0.005", "review_budget = 0");
        assert_eq!(
            Config::parse(&none).expect("parses").link.review_budget,
            0.0
        );
        for bad in ["-0.1", "1.5", "nan", "\"1%\""] {
            let t =
                DEFAULT_CONFIG.replace("review_budget = 0.005", &format!("review_budget = {bad}"));
            assert!(Config::parse(&t).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_retention_policy_is_read_and_checked() {
        let t = DEFAULT_CONFIG.replace("# release_copies_days = 180", "release_copies_days = 30");
        let c = Config::parse(&t).expect("parses");
        assert_eq!(c.retention.release_copies_days, Some(30));
        assert_eq!(c.retention.handler_data_after_contract_end_days, None);
        let typo = DEFAULT_CONFIG.replace("# release_copies_days = 180", "release_copy_days = 30");
        assert!(Config::parse(&typo).is_err());
        let negative =
            DEFAULT_CONFIG.replace("# release_copies_days = 180", "release_copies_days = -1");
        assert!(Config::parse(&negative).is_err());
    }

    #[test]
    fn older_configs_get_the_defaults() {
        let old = "[workspace]\ndefault_actor = \"x\"\n[database]\nurl = \"sqlite://kiban.db\"\n\
                   [ingest]\nchunk_rows = 10\nchunk_files = 10\n";
        let c = Config::parse(old).expect("parses");
        assert_eq!(c.ingest.limits(), kiban_ingest::Limits::default());
        assert_eq!(c.workspace.lock_timeout_secs, 300);
        assert_eq!(c.retention, RetentionSection::default());
        assert_eq!(c.link, LinkSection::default());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let t = format!("{DEFAULT_CONFIG}\n[extra]\nx = 1\n");
        assert!(Config::parse(&t).is_err());
    }
}
