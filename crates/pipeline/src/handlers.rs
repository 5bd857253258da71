//! Data handlers (医療情報取扱事業者): registration, updates with their history, notice
//! versions, listing — every change audited.
//!
//! A handler's filing and publication dates are often learnt after it was registered: an
//! update (`kiban handler update`) sets them, and `kiban_consent` keeps the record it replaces
//! in `handler_history`, so nothing is overwritten without a trace. Notice versions
//! (`kiban handler notice-version add`) carry their own waiting period and the notice
//! document, whose copy is kept content-addressed under `WORKSPACE/notices/`.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kiban_consent::{HandlerChange, HandlerInfo, HandlerUpdate, NoticeDocument, NoticeVersion};
use sha2::{Digest, Sha256};

use crate::optout_events::{consent_refusal, write_atomic};
use crate::{PipelineError, Refusal, Workspace};

/// The folder of notice documents, inside the workspace.
pub const NOTICES_DIR: &str = "notices";

/// The largest notice document kept (a notice is a leaflet, not a data file).
pub const MAX_NOTICE_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;

impl Workspace {
    /// Registers a handler (R-OPT-3, R-REC-2: the producer records the handler's filing and
    /// publication before it accepts data).
    pub async fn add_handler(&self, h: &HandlerInfo) -> Result<(), PipelineError> {
        self.audited(
            "handler.add",
            &format!("handler:{}", h.code),
            async {
                if kiban_consent::get_handler(&self.db, &h.code)
                    .await?
                    .is_some()
                {
                    return Err(Refusal::HandlerExists {
                        handler: h.code.clone(),
                    }
                    .into());
                }
                kiban_consent::add_handler_as(&self.db, h, self.actor())
                    .await
                    .map_err(consent_refusal)?;
                Ok(())
            },
            |_| vec![],
        )
        .await
    }

    pub async fn list_handlers(&self) -> Result<Vec<HandlerInfo>, PipelineError> {
        Ok(kiban_consent::list_handlers(&self.db).await?)
    }

    /// Changes a registered handler's filing and publication dates, name, address,
    /// representative, waiting period (R-OPT-3, R-REC-2) or contract end (the retention
    /// policy erases its data after it, `retention`), keeping the record it replaces
    /// in the handler's history. Returns the change, `None` when nothing changed. Audited as
    /// `handler.update` (the fields changed are counted, never their values).
    pub async fn update_handler(
        &self,
        code: &str,
        update: &HandlerUpdate,
    ) -> Result<Option<HandlerChange>, PipelineError> {
        self.audited(
            "handler.update",
            &format!("handler:{code}"),
            async {
                if update.is_empty() {
                    return Err(Refusal::NothingToChange.into());
                }
                self.registered_handler(code).await?;
                kiban_consent::update_handler_as(&self.db, code, update, self.actor())
                    .await
                    .map_err(consent_refusal)
            },
            |c: &Option<HandlerChange>| vec![("changed", u64::from(c.is_some()))],
        )
        .await
    }

    /// A handler's history: its registration (when recorded) and every change, oldest first.
    pub async fn handler_history(&self, code: &str) -> Result<Vec<HandlerChange>, PipelineError> {
        self.registered_handler(code).await?;
        Ok(kiban_consent::handler_history(&self.db, code).await?)
    }

    /// Adds a version of a handler's notice to patients (R-OPT-1), with its own waiting
    /// period (R-OPT-2; `None`: the handler's) and, when given, the notice document, whose
    /// copy is kept as `notices/<sha256>.<ext>` and named in the version by file name and
    /// hash. Audited as `handler.notice_version.add`.
    pub async fn add_notice_version(
        &self,
        code: &str,
        version: &NoticeVersion,
        document: Option<&Path>,
    ) -> Result<NoticeVersion, PipelineError> {
        self.audited(
            "handler.notice_version.add",
            &format!("handler:{code}"),
            async {
                self.registered_handler(code).await?;
                if kiban_consent::list_notice_versions(&self.db, code)
                    .await?
                    .iter()
                    .any(|v| v.version == version.version)
                {
                    return Err(Refusal::NoticeVersionExists {
                        handler: code.to_string(),
                        version: version.version.clone(),
                    }
                    .into());
                }
                let mut v = version.clone();
                if let Some(path) = document {
                    v.document = Some(self.keep_notice_document(path)?.0);
                }
                kiban_consent::add_notice_version(&self.db, code, &v)
                    .await
                    .map_err(consent_refusal)?;
                Ok(v)
            },
            |v: &NoticeVersion| vec![("documents", u64::from(v.document.is_some()))],
        )
        .await
    }

    /// A registered handler's notice versions, oldest first.
    pub async fn list_notice_versions(
        &self,
        code: &str,
    ) -> Result<Vec<NoticeVersion>, PipelineError> {
        self.registered_handler(code).await?;
        Ok(kiban_consent::list_notice_versions(&self.db, code).await?)
    }

    /// The stored copy of a notice document.
    pub fn notice_document_path(&self, doc: &NoticeDocument) -> PathBuf {
        self.root
            .join(NOTICES_DIR)
            .join(format!("{}{}", doc.sha256, safe_extension(&doc.name)))
    }

    /// Copies a notice document into the workspace under its hash.
    fn keep_notice_document(
        &self,
        path: &Path,
    ) -> Result<(NoticeDocument, PathBuf), PipelineError> {
        let meta = std::fs::metadata(path).map_err(|e| PipelineError::io(path, e))?;
        if !meta.is_file() || meta.len() == 0 || meta.len() > MAX_NOTICE_DOCUMENT_BYTES {
            return Err(Refusal::NoticeDocumentSize {
                max_mib: MAX_NOTICE_DOCUMENT_BYTES >> 20,
            }
            .into());
        }
        let bytes = std::fs::read(path).map_err(|e| PipelineError::io(path, e))?;
        let doc = NoticeDocument {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "notice".into()),
            sha256: hex::encode(Sha256::digest(&bytes)),
        };
        let copy = self.notice_document_path(&doc);
        if let Some(dir) = copy.parent() {
            std::fs::create_dir_all(dir).map_err(|e| PipelineError::io(dir, e))?;
        }
        if !copy.exists() {
            write_atomic(&copy, &bytes)?;
        }
        Ok((doc, copy))
    }
}

/// `.pdf` for `notice.PDF`; nothing for a name without a plain ASCII extension.
fn safe_extension(name: &str) -> String {
    match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some(e)
            if !e.is_empty() && e.len() <= 8 && e.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            format!(".{}", e.to_ascii_lowercase())
        }
        _ => String::new(),
    }
}

/// Reads a handlers file with the header
/// `code,name,address,representative,filed,published,own_published` (as `kiban synth`
/// writes it); dates `YYYY-MM-DD`, empty when not yet done.
pub fn read_handlers_csv(path: &Path) -> Result<Vec<HandlerInfo>, PipelineError> {
    let mut rdr = csv::Reader::from_path(path).map_err(|e| PipelineError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| PipelineError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let field = |n: usize| rec.get(n).unwrap_or("").trim().to_string();
        let date = |n: usize| NaiveDate::parse_from_str(&field(n), "%Y-%m-%d").ok();
        if field(0).is_empty() {
            return Err(Refusal::HandlerListCodeMissing {
                path: path.to_path_buf(),
                line: i as u64 + 2,
            }
            .into());
        }
        let mut h = HandlerInfo::new(field(0), field(1), field(2));
        h.representative = Some(field(3)).filter(|s| !s.is_empty());
        h.filed_date = date(4);
        h.minister_published_date = date(5);
        h.own_published_date = date(6);
        out.push(h);
    }
    Ok(out)
}
