//! The producer's duties on the workspace (issue 15, items 7 in part and 8): complaints,
//! inquiries, outsourcing contracts and their supervision (`kiban_workflow::duties`), the
//! figures of the annual business report ([`Workspace::annual_report`], 第13条) and the
//! retention of every workflow record ([`Workspace::workflow_retention`], R-REC-8, called by
//! `kiban retention run`).
//!
//! Every change is audited with the workspace's actor; audit events name records by ID and
//! carry counts only — never a complaint's content, a question, an answer or a name.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use kiban_records::PurgeReport;
use kiban_workflow::duties::{
    Complaint, Holds, Inquiry, NewAnswer, NewComplaint, NewInquiry, NewOutsourcing, NewResolution,
    NewSupervision, Outsourcing, PurgePlan, RecordKindW, Supervision, plan_purge, purge_in,
};
use kiban_workflow::{Duties, DutyError, Stamp};
use serde::Serialize;
use sqlx::Row;

use crate::{PipelineError, Refusal, Workspace};

impl From<DutyError> for PipelineError {
    fn from(e: DutyError) -> PipelineError {
        match e {
            DutyError::Refused(r) => PipelineError::Refusal(Refusal::Duty(r)),
            DutyError::Sql(e) => PipelineError::Sql(e),
            corrupt @ DutyError::Corrupt { .. } => PipelineError::Internal(corrupt.to_string()),
        }
    }
}

/// The figures of the annual business report (事業報告書, 規則第13条第2項) for one fiscal
/// year. Japan's fiscal year (年度) runs from 1 April to 31 March, and the report is made per
/// business year (毎事業年度終了後三月以内): `--year 2026` is 2026年度, 2026-04-01 to
/// 2027-03-31. Counts only, never who.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnualReport {
    pub fiscal_year: i32,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub releases: ReleaseFigures,
    pub users: UserFigures,
    pub handlers: HandlerFigures,
    pub receipts: ReceiptFigures,
    /// Stop requests received (opt-out, by the event's date).
    pub stops: u64,
    /// Deletion requests received.
    pub deletions: u64,
    pub complaints: ComplaintFigures,
    pub inquiries: InquiryFigures,
    pub outsourcing: OutsourcingFigures,
    /// Book entries (R-REC-4) written in the year, by kind (delivery, onward, …).
    pub book_entries: BTreeMap<String, u64>,
    /// Incidents (R-SEC-5): leaks, loss, damage (`crate::incidents`).
    pub incidents: crate::incidents::IncidentFigures,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseFigures {
    /// Releases made (prepared or written) in the year, by level.
    pub made_by_level: BTreeMap<String, u64>,
    /// Of those, internal evaluations (never delivered).
    pub internal_evaluation: u64,
    /// Releases under a request approved (sealed for delivery) in the year, by level.
    pub approved_by_level: BTreeMap<String, u64>,
    /// Releases erased in the year.
    pub erased: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserFigures {
    /// Users on record at the year's end, by kind.
    pub at_year_end_by_kind: BTreeMap<String, u64>,
    /// Users first recorded in the year, by kind.
    pub new_by_kind: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HandlerFigures {
    /// Handlers whose filing (届出) is dated in the year.
    pub filed: u64,
    /// Handlers whose contract with the producer ended in the year.
    pub contract_ended: u64,
    /// Handlers filed by the year's end whose contract had not ended by then.
    pub active_at_year_end: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReceiptFigures {
    /// Receipt records (one per delivery received) dated in the year.
    pub records: u64,
    /// Patients received, summed over the records (a patient sent twice counts twice).
    pub patients: u64,
    /// Distinct patients received (by handler and keyed patient ID).
    pub distinct_patients: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComplaintFigures {
    pub received: u64,
    pub resolved: u64,
    /// Received by the year's end and not resolved by then.
    pub open_at_year_end: u64,
    /// Received in the year, by whom (patient, handler, user, other).
    pub received_by_party: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InquiryFigures {
    pub received: u64,
    pub answered: u64,
    /// Answered in the year by escalating to a complaint.
    pub escalated: u64,
    pub received_by_party: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutsourcingFigures {
    /// Contracts in force on some day of the year.
    pub in_force: u64,
    /// Contracts signed in the year.
    pub signed: u64,
    /// Supervisions made in the year.
    pub supervisions: u64,
}

/// The workflow part of a retention run: what was purged (or, in a dry run, is due) and what
/// is past its period but held.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkflowPurge {
    #[serde(flatten)]
    pub plan: PurgePlan,
    /// Rows deleted per kind (every version, review, contract, supervision); empty in a
    /// dry run.
    pub rows: BTreeMap<RecordKindW, u64>,
}

impl WorkflowPurge {
    pub fn due(&self, kind: RecordKindW) -> u64 {
        self.plan.count(kind)
    }
}

/// Every kind a retention run leaves a purge record for.
const PURGE_KINDS: [RecordKindW; 9] = [
    RecordKindW::Request,
    RecordKindW::User,
    RecordKindW::Complaint,
    RecordKindW::Inquiry,
    RecordKindW::Outsourcing,
    RecordKindW::BookEntry,
    RecordKindW::TransferContract,
    RecordKindW::Producer,
    RecordKindW::Incident,
];

impl Workspace {
    /// The duties on this workspace's control plane.
    pub fn duties(&self) -> Duties {
        Duties::new(self.db.clone())
    }

    fn duty_stamp(&self) -> Stamp {
        Stamp {
            actor: self.actor().to_string(),
            at: chrono::Utc::now(),
            today: chrono::Local::now().date_naive(),
        }
    }

    /// `kiban complaint add`, audited `complaint.add`.
    pub async fn add_complaint(&self, c: NewComplaint) -> Result<Complaint, PipelineError> {
        let object = format!("complaint:{}", c.id);
        self.audited(
            "complaint.add",
            &object,
            async { Ok(self.duties().add_complaint(c, &self.duty_stamp()).await?) },
            |c: &Complaint| vec![("version", c.version as u64)],
        )
        .await
    }

    /// `kiban complaint resolve`, audited `complaint.resolve`.
    pub async fn resolve_complaint(&self, r: NewResolution) -> Result<Complaint, PipelineError> {
        let object = format!("complaint:{}", r.complaint);
        self.audited(
            "complaint.resolve",
            &object,
            async {
                Ok(self
                    .duties()
                    .resolve_complaint(r, &self.duty_stamp())
                    .await?)
            },
            |c: &Complaint| vec![("version", c.version as u64)],
        )
        .await
    }

    /// Every complaint's current version.
    pub async fn list_complaints(&self) -> Result<Vec<Complaint>, PipelineError> {
        Ok(self.duties().complaints().await?)
    }

    /// Every version of a complaint (receipt, resolution).
    pub async fn complaint_versions(&self, id: &str) -> Result<Vec<Complaint>, PipelineError> {
        Ok(self.duties().complaint_versions(id).await?)
    }

    /// `kiban inquiry add`, audited `inquiry.add`.
    pub async fn add_inquiry(&self, q: NewInquiry) -> Result<Inquiry, PipelineError> {
        let object = format!("inquiry:{}", q.id);
        self.audited(
            "inquiry.add",
            &object,
            async { Ok(self.duties().add_inquiry(q, &self.duty_stamp()).await?) },
            |q: &Inquiry| vec![("version", q.version as u64)],
        )
        .await
    }

    /// `kiban inquiry answer [--escalate C]`, audited `inquiry.answer` (with `escalated`
    /// 1 when it became a complaint).
    pub async fn answer_inquiry(
        &self,
        a: NewAnswer,
    ) -> Result<(Inquiry, Option<Complaint>), PipelineError> {
        let object = format!("inquiry:{}", a.inquiry);
        self.audited(
            "inquiry.answer",
            &object,
            async { Ok(self.duties().answer_inquiry(a, &self.duty_stamp()).await?) },
            |(q, c): &(Inquiry, Option<Complaint>)| {
                vec![
                    ("version", q.version as u64),
                    ("escalated", u64::from(c.is_some())),
                ]
            },
        )
        .await
    }

    /// Every inquiry's current version.
    pub async fn list_inquiries(&self) -> Result<Vec<Inquiry>, PipelineError> {
        Ok(self.duties().inquiries().await?)
    }

    /// `kiban outsourcing add`, audited `outsourcing.add`.
    pub async fn add_outsourcing(&self, o: NewOutsourcing) -> Result<Outsourcing, PipelineError> {
        let object = format!("outsourcing:{}", o.id);
        self.audited(
            "outsourcing.add",
            &object,
            async { Ok(self.duties().add_outsourcing(o, &self.duty_stamp()).await?) },
            |o: &Outsourcing| vec![("version", o.version as u64)],
        )
        .await
    }

    /// `kiban outsourcing supervise`, audited `outsourcing.supervise`.
    pub async fn supervise_outsourcing(
        &self,
        s: NewSupervision,
    ) -> Result<Supervision, PipelineError> {
        let object = format!("outsourcing:{}", s.contract);
        self.audited(
            "outsourcing.supervise",
            &object,
            async { Ok(self.duties().supervise(s, &self.duty_stamp()).await?) },
            |s: &Supervision| vec![("supervision_no", s.no as u64)],
        )
        .await
    }

    /// Every outsourcing contract with its supervisions.
    pub async fn list_outsourcing(&self) -> Result<Vec<Outsourcing>, PipelineError> {
        Ok(self.duties().outsourcing().await?)
    }

    /// `kiban books report --year Y`: the annual business report's figures for fiscal year
    /// `year` (1 April `year` to 31 March `year + 1`), audited `books.report` (a read).
    /// Records purged by the retention job are no longer counted.
    pub async fn annual_report(&self, year: i32) -> Result<AnnualReport, PipelineError> {
        let object = format!("fiscal_year:{year}");
        self.audited(
            "books.report",
            &object,
            self.annual_report_inner(year),
            |_r: &AnnualReport| Vec::new(),
        )
        .await
    }

    async fn annual_report_inner(&self, year: i32) -> Result<AnnualReport, PipelineError> {
        let (Some(from), Some(to)) = (
            NaiveDate::from_ymd_opt(year, 4, 1),
            NaiveDate::from_ymd_opt(year.saturating_add(1), 3, 31),
        ) else {
            return Err(Refusal::Duty(kiban_workflow::DutyRefusal::YearOutOfRange { year }).into());
        };
        let f = from.format("%Y-%m-%d").to_string();
        let t = to.format("%Y-%m-%d").to_string();
        let mut conn = self.db.pool().acquire().await?;
        let inside = |d: &str| {
            d.get(..10)
                .is_some_and(|d| d >= f.as_str() && d <= t.as_str())
        };
        let by_end = |d: &str| d.get(..10).is_some_and(|d| d <= t.as_str());

        // Releases.
        let mut releases = ReleaseFigures {
            made_by_level: BTreeMap::new(),
            internal_evaluation: 0,
            approved_by_level: BTreeMap::new(),
            erased: 0,
        };
        for r in sqlx::query(
            "SELECT level, internal_evaluation, created_at, status, approved_at, erased_date \
             FROM releases",
        )
        .fetch_all(&mut *conn)
        .await?
        {
            let level: String = r.try_get(0)?;
            let internal: i64 = r.try_get(1)?;
            let created: String = r.try_get(2)?;
            let status: String = r.try_get(3)?;
            let approved: Option<String> = r.try_get(4)?;
            let erased: Option<String> = r.try_get(5)?;
            if inside(&created) {
                *releases.made_by_level.entry(level.clone()).or_default() += 1;
                releases.internal_evaluation += u64::from(internal != 0);
            }
            if status == "approved" && approved.as_deref().is_some_and(inside) {
                *releases.approved_by_level.entry(level).or_default() += 1;
            }
            if erased.as_deref().is_some_and(inside) {
                releases.erased += 1;
            }
        }

        // Users: the first version's record date is when the user was recorded.
        let mut users = UserFigures {
            at_year_end_by_kind: BTreeMap::new(),
            new_by_kind: BTreeMap::new(),
        };
        for r in
            sqlx::query("SELECT kind, MIN(recorded_at) FROM workflow_users GROUP BY user_id, kind")
                .fetch_all(&mut *conn)
                .await?
        {
            let kind: String = r.try_get(0)?;
            let first: String = r.try_get(1)?;
            if by_end(&first) {
                *users.at_year_end_by_kind.entry(kind.clone()).or_default() += 1;
            }
            if inside(&first) {
                *users.new_by_kind.entry(kind).or_default() += 1;
            }
        }

        // Handlers.
        let mut handlers = HandlerFigures {
            filed: 0,
            contract_ended: 0,
            active_at_year_end: 0,
        };
        for r in sqlx::query("SELECT filed_date, contract_end_date FROM handlers")
            .fetch_all(&mut *conn)
            .await?
        {
            let filed: Option<String> = r.try_get(0)?;
            let ended: Option<String> = r.try_get(1)?;
            handlers.filed += u64::from(filed.as_deref().is_some_and(inside));
            handlers.contract_ended += u64::from(ended.as_deref().is_some_and(inside));
            let active =
                filed.as_deref().is_some_and(by_end) && !ended.as_deref().is_some_and(by_end);
            handlers.active_at_year_end += u64::from(active);
        }

        // Receipts.
        let r = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(patient_count), 0) AS BIGINT) FROM receipt_records \
             WHERE received_date >= $1 AND received_date <= $2",
        )
        .bind(&f)
        .bind(&t)
        .fetch_one(&mut *conn)
        .await?;
        let records: i64 = r.try_get(0)?;
        let patients: i64 = r.try_get(1)?;
        let distinct: i64 = sqlx::query(
            "SELECT COUNT(*) FROM (SELECT DISTINCT r.handler_code, p.patient_key \
             FROM receipt_records r JOIN receipt_record_patients p ON p.record_id = r.record_id \
             WHERE r.received_date >= $1 AND r.received_date <= $2) x",
        )
        .bind(&f)
        .bind(&t)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        let receipts = ReceiptFigures {
            records: records.max(0) as u64,
            patients: patients.max(0) as u64,
            distinct_patients: distinct.max(0) as u64,
        };

        // Stops and deletions.
        let mut events: BTreeMap<String, u64> = BTreeMap::new();
        for r in sqlx::query(
            "SELECT kind, COUNT(*) FROM consent_events WHERE event_date >= $1 \
             AND event_date <= $2 AND kind IN ('stop', 'delete') GROUP BY kind",
        )
        .bind(&f)
        .bind(&t)
        .fetch_all(&mut *conn)
        .await?
        {
            let kind: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            events.insert(kind, n.max(0) as u64);
        }

        // Complaints: the receipt is version 1, the resolution the version that resolved.
        let mut complaints = ComplaintFigures {
            received: 0,
            resolved: 0,
            open_at_year_end: 0,
            received_by_party: BTreeMap::new(),
        };
        let mut c_state: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
        for r in sqlx::query(
            "SELECT complaint_id, received_on, from_kind, resolved_on FROM duty_complaints \
             ORDER BY complaint_id, version",
        )
        .fetch_all(&mut *conn)
        .await?
        {
            let id: String = r.try_get(0)?;
            let received: String = r.try_get(1)?;
            let kind: String = r.try_get(2)?;
            let resolved: Option<String> = r.try_get(3)?;
            let e = c_state.entry(id).or_insert_with(|| {
                if inside(&received) {
                    complaints.received += 1;
                    *complaints.received_by_party.entry(kind).or_default() += 1;
                }
                (received.clone(), None)
            });
            if resolved.is_some() {
                e.1 = resolved;
            }
        }
        for (received, resolved) in c_state.values() {
            complaints.resolved += u64::from(resolved.as_deref().is_some_and(inside));
            let open = by_end(received) && !resolved.as_deref().is_some_and(by_end);
            complaints.open_at_year_end += u64::from(open);
        }

        // Inquiries.
        let mut inquiries = InquiryFigures {
            received: 0,
            answered: 0,
            escalated: 0,
            received_by_party: BTreeMap::new(),
        };
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for r in sqlx::query(
            "SELECT inquiry_id, received_on, from_kind, answered_on, escalated_to \
             FROM duty_inquiries ORDER BY inquiry_id, version",
        )
        .fetch_all(&mut *conn)
        .await?
        {
            let id: String = r.try_get(0)?;
            let received: String = r.try_get(1)?;
            let kind: String = r.try_get(2)?;
            let answered: Option<String> = r.try_get(3)?;
            let escalated: Option<String> = r.try_get(4)?;
            if seen.insert(id) && inside(&received) {
                inquiries.received += 1;
                *inquiries.received_by_party.entry(kind).or_default() += 1;
            }
            if answered.as_deref().is_some_and(inside) {
                inquiries.answered += 1;
                inquiries.escalated += u64::from(escalated.is_some());
            }
        }

        // Outsourcing.
        let mut outsourcing = OutsourcingFigures {
            in_force: 0,
            signed: 0,
            supervisions: 0,
        };
        for r in sqlx::query(
            "SELECT signed_on, valid_until FROM duty_outsourcing c WHERE version = \
             (SELECT MAX(version) FROM duty_outsourcing d WHERE d.contract_id = c.contract_id)",
        )
        .fetch_all(&mut *conn)
        .await?
        {
            let signed: String = r.try_get(0)?;
            let until: String = r.try_get(1)?;
            outsourcing.signed += u64::from(inside(&signed));
            outsourcing.in_force += u64::from(signed <= t && until >= f);
        }
        let sup: i64 = sqlx::query(
            "SELECT COUNT(*) FROM duty_supervisions WHERE supervised_on >= $1 \
             AND supervised_on <= $2",
        )
        .bind(&f)
        .bind(&t)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        outsourcing.supervisions = sup.max(0) as u64;

        // Book entries.
        let mut book_entries = BTreeMap::new();
        for r in sqlx::query(
            "SELECT kind, COUNT(*) FROM book_entries WHERE entry_date >= $1 \
             AND entry_date <= $2 GROUP BY kind",
        )
        .bind(&f)
        .bind(&t)
        .fetch_all(&mut *conn)
        .await?
        {
            let kind: String = r.try_get(0)?;
            let n: i64 = r.try_get(1)?;
            book_entries.insert(kind, n.max(0) as u64);
        }

        let incidents = crate::incidents::incident_figures(&mut conn, &f, &t).await?;

        Ok(AnnualReport {
            fiscal_year: from.year(),
            from,
            to,
            releases,
            users,
            handlers,
            receipts,
            stops: events.get("stop").copied().unwrap_or(0),
            deletions: events.get("delete").copied().unwrap_or(0),
            complaints,
            inquiries,
            outsourcing,
            book_entries,
            incidents,
        })
    }

    /// The workflow's records past their retention as of `cutoff` (see
    /// `kiban_workflow::duties::plan_purge` for each kind's rule), purged in one transaction
    /// with a purge record per kind under the run `report` (the statutory records' purge of
    /// the same run) — or, with `report` `None` (a dry run), only listed. Requests, and book
    /// entries, under a release whose copy is still held (not erased) are kept.
    pub(crate) async fn workflow_retention(
        &self,
        cutoff: NaiveDate,
        report: Option<&PurgeReport>,
    ) -> Result<WorkflowPurge, PipelineError> {
        let mut holds = Holds::default();
        for r in
            sqlx::query("SELECT release_id, request_id FROM releases WHERE erased_date IS NULL")
                .fetch_all(self.db.pool())
                .await?
        {
            let release: String = r.try_get(0)?;
            let request: Option<String> = r.try_get(1)?;
            if let Some(q) = request {
                holds.requests.entry(q).or_default().push(release.clone());
            }
            holds.releases.insert(release);
        }
        let mut tx = self.db.pool().begin().await?;
        let plan = plan_purge(&mut tx, cutoff, &holds).await?;
        let Some(report) = report else {
            return Ok(WorkflowPurge {
                plan,
                rows: BTreeMap::new(),
            });
        };
        let rows = purge_in(&mut tx, &plan).await?;
        for kind in PURGE_KINDS {
            kiban_records::retention::record_purge_in(
                &mut tx,
                report,
                kind.purge_kind(),
                rows.get(&kind).copied().unwrap_or(0),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(WorkflowPurge { plan, rows })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Days;
    use kiban_workflow::PartyKind;
    use kiban_workflow::duties::Party;

    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    /// R-REC-8: the purge of workflow records is on record — one purge record per workflow
    /// kind under the purge ID of the statutory records' purge of the same run, the rows
    /// counted — and a refusal is audited as refused with its code, never with the text.
    #[tokio::test]
    async fn workflow_purge_leaves_its_purge_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ws = Workspace::init(&dir.path().join("ws")).await.expect("init");
        ws.set_actor("desk");
        ws.add_complaint(NewComplaint {
            id: "CMP-1".into(),
            received_on: d("2026-01-05"),
            from: Party {
                kind: PartyKind::Other,
                reference: None,
            },
            channel: "書面".into(),
            content: "苦情の内容".into(),
        })
        .await
        .expect("add");
        let resolution = |on: &str| NewResolution {
            complaint: "CMP-1".into(),
            resolved_on: d(on),
            cause: "原因の記述".into(),
            improvement: "改善の記述".into(),
            resolved_by: None,
        };
        ws.resolve_complaint(resolution("2026-01-20"))
            .await
            .expect("resolve");
        let err = ws
            .resolve_complaint(resolution("2026-01-21"))
            .await
            .expect_err("second resolution");
        assert_eq!(
            err.refusal_code().as_deref(),
            Some("duty.complaint_resolved")
        );

        let later = chrono::Local::now().date_naive() + Days::new(3 * 366 + 2);
        let r = ws.retention(later, 3, false).await.expect("retention");
        assert_eq!(r.workflow.due(RecordKindW::Complaint), 1);
        let purges = kiban_records::retention::list_purges(&ws.db)
            .await
            .expect("purges");
        let ours: Vec<_> = purges
            .iter()
            .filter(|p| p.purge_id == r.records.purge_id)
            .collect();
        for kind in PURGE_KINDS {
            let row = ours
                .iter()
                .find(|p| p.record_kind == kind.purge_kind())
                .unwrap_or_else(|| panic!("no purge record for {kind:?}"));
            let want = if kind == RecordKindW::Complaint { 2 } else { 0 };
            assert_eq!(row.rows_purged, want, "{kind:?}");
        }
        assert!(ws.list_complaints().await.expect("list").is_empty());

        let mut audit = String::new();
        for e in std::fs::read_dir(dir.path().join("ws/audit")).expect("audit") {
            let p = e.expect("entry").path();
            if p.is_file() {
                audit.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
        assert!(audit.contains("refused:duty.complaint_resolved"), "{audit}");
        for text in ["苦情の内容", "原因の記述", "改善の記述"] {
            assert!(!audit.contains(text), "{text} in the audit log");
        }
    }
}
