//! Data handlers (医療情報取扱事業者): registration and listing, audited.

use std::path::Path;

use chrono::NaiveDate;
use kiban_consent::HandlerInfo;

use crate::{PipelineError, Workspace};

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
                    return Err(PipelineError::Refused(format!(
                        "医療情報取扱事業者 {} は登録済みです / handler {} is already registered",
                        h.code, h.code
                    )));
                }
                kiban_consent::add_handler(&self.db, h).await?;
                Ok(())
            },
            |_| vec![],
        )
        .await
    }

    pub async fn list_handlers(&self) -> Result<Vec<HandlerInfo>, PipelineError> {
        Ok(kiban_consent::list_handlers(&self.db).await?)
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
            return Err(PipelineError::Refused(format!(
                "{}: line {}: code is empty",
                path.display(),
                i + 2
            )));
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
