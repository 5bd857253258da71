//! `kiban.toml`, the workspace's configuration.

use serde::{Deserialize, Serialize};

use crate::PipelineError;

/// The default configuration written by `kiban init`.
pub const DEFAULT_CONFIG: &str = r#"# kiban workspace configuration
[workspace]
# Shown in audit events when no actor is given (--actor / KIBAN_ACTOR).
default_actor = "operator"

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
"#;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub workspace: WorkspaceSection,
    pub database: DatabaseSection,
    pub ingest: IngestSection,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSection {
    pub default_actor: String,
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
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, PipelineError> {
        toml::from_str(text).map_err(|e| PipelineError::Config(e.to_string()))
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
    }

    #[test]
    fn unknown_keys_are_refused() {
        let t = format!("{DEFAULT_CONFIG}\n[extra]\nx = 1\n");
        assert!(Config::parse(&t).is_err());
    }
}
