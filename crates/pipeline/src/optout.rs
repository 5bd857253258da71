//! The opt-out registry as operators use it: bulk import, single decisions.

use std::path::Path;

use chrono::NaiveDate;
use kiban_consent::{Decision, HandlerInfo, ImportReport, PatientIdFormat};

use crate::{PipelineError, Workspace};

impl Workspace {
    /// Imports notices, stop and deletion requests, withdrawals, consents and withdrawals of
    /// consent from a CSV file with the header `handler_code,patient_id,event,date` and the
    /// optional `channel,requester,relation,method,notice_version,scope,patient_birth`
    /// (see [`kiban_consent::import_csv`]). Bad rows — a notice version that does not exist,
    /// a requester who may not act for the patient (R-OPT-8) — are reported with line and
    /// column and not imported; good rows are.
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
                // Each row's ID is normalized with its handler's format; a row whose ID does not
                // fit is rejected with its line.
                let key = |handler: &str, format: PatientIdFormat, patient: &str| {
                    self.patient_key(handler, format, patient)
                };
                // Who may act for a patient (R-OPT-8) is checked with the vault identity's
                // birth and death dates when the patient was ingested.
                let lookup = |handler: String, patient_key: String| {
                    Box::pin(async move {
                        self.identity_facts(&handler, &patient_key)
                            .await
                            .map_err(|e| e.to_string())
                    })
                        as std::pin::Pin<
                            Box<
                                dyn std::future::Future<
                                        Output = Result<kiban_consent::PatientFacts, String>,
                                    > + Send
                                    + '_,
                            >,
                        >
                };
                // A requester's name is sealed under the patient's subject key in the
                // import's own transaction: it is never written in clear.
                let sealing = kiban_consent::Sealing {
                    vault: &self.vault,
                    purpose: crate::sealed::REQUESTER,
                };
                let f = std::io::BufReader::with_capacity(1 << 20, f);
                let report = kiban_consent::import_csv_sealed(
                    &self.db,
                    f,
                    &name,
                    &key,
                    Some(&lookup),
                    Some(&sealing),
                )
                .await?;
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
        // Any spelling the handler's format accepts gives the one key; one it does not is
        // refused (a decision for it would be about nobody).
        let h = self.registered_handler(handler).await?;
        let key = self.desk_patient_key(&h, patient_id)?;
        Ok(kiban_consent::eligibility(&self.db, handler, &key, on).await?)
    }

    /// The key of a patient ID given at the desk (`--patient`: status, events, patient
    /// facts): normalized with the handler's format ([`Workspace::patient_key`]), or refused
    /// naming the option when it does not fit — never recorded under a key that nothing
    /// else computes.
    pub(crate) fn desk_patient_key(
        &self,
        handler: &HandlerInfo,
        patient_id: &str,
    ) -> Result<String, PipelineError> {
        let format = handler.patient_id_format;
        self.patient_key(&handler.code, format, patient_id)
            .map_err(|e| {
                crate::workspace::patient_id_refused(
                    crate::refusal::IdField::PatientArg,
                    &handler.code,
                    format,
                    e,
                )
            })
    }
}
