//! The opt-out registry as operators use it: bulk import, single decisions.

use std::path::Path;

use chrono::NaiveDate;
use kiban_consent::{Decision, ImportReport};

use crate::{PipelineError, Workspace};

impl Workspace {
    /// Imports notices, stop requests and deletion requests from a CSV file with the header
    /// `handler_code,patient_id,event,date[,channel,requester,relation]`. Bad rows are
    /// reported with line and column and not imported; good rows are.
    pub async fn import_optout(&self, path: &Path) -> Result<ImportReport, PipelineError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.audited(
            "optout.import",
            &format!("file:{name}"),
            async {
                let f = std::fs::File::open(path).map_err(|e| PipelineError::io(path, e))?;
                let key = |handler: &str, patient: &str| self.patient_key(handler, patient);
                let report = kiban_consent::import_csv(&self.db, f, &name, &key).await?;
                // A deletion request is carried out as soon as it is recorded (R-OPT-6).
                if report.by_kind.get("delete").is_some_and(|n| *n > 0) {
                    self.apply_deletions(chrono::Local::now().date_naive())
                        .await?;
                }
                Ok(report)
            },
            |r: &ImportReport| {
                vec![
                    ("imported", r.imported),
                    ("duplicates", r.duplicates),
                    ("rejected", r.rejected),
                ]
            },
        )
        .await
    }

    /// The gate's decision for one patient of one handler on `on` (`kiban optout status`).
    pub async fn optout_status(
        &self,
        handler: &str,
        patient_id: &str,
        on: NaiveDate,
    ) -> Result<Decision, PipelineError> {
        if kiban_consent::get_handler(&self.db, handler)
            .await?
            .is_none()
        {
            return Err(PipelineError::Refused(format!(
                "医療情報取扱事業者 {handler} は登録されていません / handler {handler} is not registered"
            )));
        }
        let key = self.patient_key(handler, patient_id);
        Ok(kiban_consent::eligibility(&self.db, handler, &key, on).await?)
    }
}
