//! The release workflow (issue 15) on the workspace: thin calls into `kiban-workflow`, each
//! change audited with the workspace's actor (`--actor`, `KIBAN_ACTOR`, kiban.toml). Audit
//! events name users, requests and contracts by ID only, never a name or an address.
//!
//! A refusal of the workflow is `Refusal::Workflow` (worded by the CLI); a row that does
//! not read back is an internal fault.

use std::path::Path;

use chrono::NaiveDate;
use kiban_workflow::{
    Approved, Contract, ContractChange, FairnessRow, History, Level, NewContract, NewRequest,
    NewReview, NewUser, Request, RequestChange, RequestState, Review, Stamp, User, UserChange,
    Workflow, WorkflowError,
};
use sha2::{Digest, Sha256};

use crate::{PipelineError, Refusal, Workspace};

impl From<WorkflowError> for PipelineError {
    fn from(e: WorkflowError) -> PipelineError {
        match e {
            WorkflowError::Refused(r) => PipelineError::Refusal(Refusal::Workflow(r)),
            WorkflowError::Sql(e) => PipelineError::Sql(e),
            corrupt @ WorkflowError::Corrupt { .. } => PipelineError::Internal(corrupt.to_string()),
        }
    }
}

impl Workspace {
    /// The workflow on this workspace's control plane.
    pub fn workflow(&self) -> Workflow {
        Workflow::new(self.db.clone())
    }

    pub(crate) fn stamp(&self) -> Stamp {
        Stamp {
            actor: self.actor().to_string(),
            at: chrono::Utc::now(),
            today: chrono::Local::now().date_naive(),
        }
    }

    /// `kiban user add`: a recipient, audited `user.add`.
    pub async fn add_user(&self, u: NewUser) -> Result<User, PipelineError> {
        let object = format!("user:{}", u.id);
        self.audited(
            "user.add",
            &object,
            async { Ok(self.workflow().add_user(u, &self.stamp()).await?) },
            |u: &User| vec![("version", u.version as u64)],
        )
        .await
    }

    /// A new version of a user (a renewed certification, a new key), audited `user.update`.
    pub async fn update_user(&self, id: &str, ch: UserChange) -> Result<User, PipelineError> {
        self.audited(
            "user.update",
            &format!("user:{id}"),
            async { Ok(self.workflow().update_user(id, ch, &self.stamp()).await?) },
            |u: &User| vec![("version", u.version as u64)],
        )
        .await
    }

    /// Every user's current version.
    pub async fn list_users(&self) -> Result<Vec<User>, PipelineError> {
        Ok(self.workflow().users().await?)
    }

    /// `kiban request add`: a request, with the SHA-256 of the release spec file it came
    /// with (`spec`), audited `request.add`.
    pub async fn add_request(
        &self,
        mut r: NewRequest,
        spec: Option<&Path>,
    ) -> Result<Request, PipelineError> {
        let object = format!("request:{}", r.id);
        self.audited(
            "request.add",
            &object,
            async {
                if let Some(p) = spec {
                    r.spec_sha256 = Some(spec_digest(p)?);
                }
                Ok(self.workflow().add_request(r, &self.stamp()).await?)
            },
            |r: &Request| vec![("version", r.version as u64)],
        )
        .await
    }

    /// `kiban request update`: a new version of a request, not approved until reviewed
    /// again, audited `request.update`.
    pub async fn update_request(
        &self,
        id: &str,
        mut ch: RequestChange,
        spec: Option<&Path>,
    ) -> Result<Request, PipelineError> {
        self.audited(
            "request.update",
            &format!("request:{id}"),
            async {
                if let Some(p) = spec {
                    ch.spec_sha256 = Some(spec_digest(p)?);
                }
                Ok(self
                    .workflow()
                    .update_request(id, ch, &self.stamp())
                    .await?)
            },
            |r: &Request| vec![("version", r.version as u64)],
        )
        .await
    }

    /// `kiban review record`: the committee's decision about the request's current
    /// version, audited `review.record`.
    pub async fn record_review(&self, r: NewReview) -> Result<Review, PipelineError> {
        let object = format!("request:{}", r.request);
        self.audited(
            "review.record",
            &object,
            async { Ok(self.workflow().record_review(r, &self.stamp()).await?) },
            |r: &Review| {
                vec![
                    ("review_no", r.review_no as u64),
                    ("request_version", r.request_version as u64),
                    (
                        if r.scope.is_some() {
                            "approved"
                        } else {
                            "rejected"
                        },
                        1,
                    ),
                ]
            },
        )
        .await
    }

    /// `kiban contract add`, audited `contract.add`.
    pub async fn add_contract(&self, c: NewContract) -> Result<Contract, PipelineError> {
        let object = format!("contract:{}", c.id);
        self.audited(
            "contract.add",
            &object,
            async { Ok(self.workflow().add_contract(c, &self.stamp()).await?) },
            |c: &Contract| vec![("version", c.version as u64)],
        )
        .await
    }

    /// An amendment of a contract (a new version), audited `contract.update`.
    pub async fn update_contract(
        &self,
        id: &str,
        ch: ContractChange,
    ) -> Result<Contract, PipelineError> {
        self.audited(
            "contract.update",
            &format!("contract:{id}"),
            async {
                Ok(self
                    .workflow()
                    .update_contract(id, ch, &self.stamp())
                    .await?)
            },
            |c: &Contract| vec![("version", c.version as u64)],
        )
        .await
    }

    /// Every version of a request, its reviews and contracts, in the order recorded.
    pub async fn request_history(&self, id: &str) -> Result<History, PipelineError> {
        Ok(self.workflow().history(id).await?)
    }

    /// The request's state as stored now (current version, user, review in force,
    /// contracts).
    pub async fn request_state(&self, id: &str) -> Result<RequestState, PipelineError> {
        Ok(self.workflow().state(id).await?)
    }

    /// Whether a release of `tables` at `level` under `request` may be made on `on`
    /// (`kiban_workflow::decide_release`); refused with `Refusal::Workflow`. Reads only.
    pub async fn check_release_request(
        &self,
        request: &str,
        level: Level,
        tables: &[String],
        on: NaiveDate,
    ) -> Result<Approved, PipelineError> {
        Ok(self
            .workflow()
            .check_release(request, level, tables, on)
            .await?)
    }

    /// Every request version's fee and turnaround (R-REL-3).
    pub async fn request_fairness(&self) -> Result<Vec<FairnessRow>, PipelineError> {
        Ok(self.workflow().fairness().await?)
    }
}

/// The SHA-256 of a release spec file, read in blocks (refused when it is not a file).
fn spec_digest(p: &Path) -> Result<String, PipelineError> {
    use std::io::Read;
    if !p.is_file() {
        return Err(Refusal::PathMissing { path: p.into() }.into());
    }
    let mut f = std::fs::File::open(p).map_err(|e| PipelineError::io(p, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| PipelineError::io(p, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
