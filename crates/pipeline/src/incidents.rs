//! Incidents on the workspace (R-SEC-5; issue 17, item 7): `kiban incident add|update|close|
//! list|show` over `kiban_workflow::incidents`, and their figures in the annual business
//! report ([`incident_figures`]). Kept with the books: the same control plane, the same
//! retention (3 years from closing, `kiban retention run`, purge record `incident`).
//!
//! Every change is audited with the workspace's actor: the event names the incident by ID
//! and carries counts only (version, measures, persons affected) — never what happened, the
//! scope, a measure or a reason.

use std::collections::BTreeMap;

use kiban_workflow::Stamp;
use kiban_workflow::incidents::{
    Incident, IncidentClosing, IncidentError, IncidentHistory, IncidentKind, IncidentUpdate,
    Incidents, NewIncident,
};
use serde::Serialize;
use sqlx::Row;

use crate::{PipelineError, Refusal, Workspace};

impl From<IncidentError> for PipelineError {
    fn from(e: IncidentError) -> PipelineError {
        match e {
            IncidentError::Refused(r) => PipelineError::Refusal(Refusal::Incident(r)),
            IncidentError::Sql(e) => PipelineError::Sql(e),
            corrupt @ IncidentError::Corrupt { .. } => PipelineError::Internal(corrupt.to_string()),
        }
    }
}

/// The annual report's incident figures (counts only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IncidentFigures {
    /// Discovered in the year, by kind (leak, loss, damage, other).
    pub discovered_by_kind: BTreeMap<String, u64>,
    /// Closed in the year.
    pub closed: u64,
    /// Discovered by the year's end and not closed by then.
    pub open_at_year_end: u64,
    /// Reports to the minister made in the year.
    pub reported_to_minister: u64,
    /// Persons affected, summed over the incidents discovered in the year (as last recorded).
    pub persons_affected: u64,
}

/// One incident over its versions: kind, discovery, the last persons count, the closing and
/// the minister report dates.
type YearState = (String, String, Option<i64>, Option<String>, Option<String>);

fn counts(i: &Incident) -> Vec<(&'static str, u64)> {
    vec![
        ("version", u64::try_from(i.version).unwrap_or(0)),
        ("measures", i.measures.len() as u64),
        ("persons_affected", i.persons_affected.unwrap_or(0)),
    ]
}

impl Workspace {
    /// The incidents on this workspace's control plane.
    pub fn incidents(&self) -> Incidents {
        Incidents::new(self.db.clone())
    }

    fn incident_stamp(&self) -> Stamp {
        Stamp {
            actor: self.actor().to_string(),
            at: chrono::Utc::now(),
            today: chrono::Local::now().date_naive(),
        }
    }

    /// `kiban incident add`, audited `incident.add`.
    pub async fn add_incident(&self, n: NewIncident) -> Result<Incident, PipelineError> {
        let object = format!("incident:{}", kiban_workflow::shown_id(&n.id));
        self.audited(
            "incident.add",
            &object,
            async { Ok(self.incidents().add(n, &self.incident_stamp()).await?) },
            counts,
        )
        .await
    }

    /// `kiban incident update`, audited `incident.update`.
    pub async fn update_incident(&self, u: IncidentUpdate) -> Result<Incident, PipelineError> {
        let object = format!("incident:{}", kiban_workflow::shown_id(&u.incident));
        self.audited(
            "incident.update",
            &object,
            async { Ok(self.incidents().update(u, &self.incident_stamp()).await?) },
            counts,
        )
        .await
    }

    /// `kiban incident close`, audited `incident.close`.
    pub async fn close_incident(&self, c: IncidentClosing) -> Result<Incident, PipelineError> {
        let object = format!("incident:{}", kiban_workflow::shown_id(&c.incident));
        self.audited(
            "incident.close",
            &object,
            async { Ok(self.incidents().close(c, &self.incident_stamp()).await?) },
            counts,
        )
        .await
    }

    /// Every incident's version in force with its measures.
    pub async fn list_incidents(&self) -> Result<Vec<Incident>, PipelineError> {
        Ok(self.incidents().list().await?)
    }

    /// Every version of one incident with its measures (refused when unknown).
    pub async fn incident_history(&self, id: &str) -> Result<IncidentHistory, PipelineError> {
        self.incidents().show(id).await?.ok_or_else(|| {
            Refusal::Incident(kiban_workflow::IncidentRefusal::IncidentUnknown {
                incident: kiban_workflow::shown_id(id),
            })
            .into()
        })
    }
}

/// The incident figures of fiscal year `from..=to` (dates as `YYYY-MM-DD`).
pub(crate) async fn incident_figures(
    conn: &mut sqlx::AnyConnection,
    from: &str,
    to: &str,
) -> Result<IncidentFigures, PipelineError> {
    let inside = |d: &str| d.get(..10).is_some_and(|d| d >= from && d <= to);
    let by_end = |d: &str| d.get(..10).is_some_and(|d| d <= to);
    let mut f = IncidentFigures::default();
    // One state per incident: its first version's discovery and kind, the last persons
    // count, the closing and the minister report dates of any version.
    let mut state: BTreeMap<String, YearState> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT incident_id, kind, discovered_on, persons_affected, closed_on, \
         minister_reported_on FROM incidents ORDER BY incident_id, version",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        let id: String = r.try_get(0)?;
        let kind: String = r.try_get(1)?;
        let discovered: String = r.try_get(2)?;
        let persons: Option<i64> = r.try_get(3)?;
        let closed: Option<String> = r.try_get(4)?;
        let reported: Option<String> = r.try_get(5)?;
        let e = state
            .entry(id)
            .or_insert_with(|| (kind, discovered, None, None, None));
        if persons.is_some() {
            e.2 = persons;
        }
        if closed.is_some() {
            e.3 = closed;
        }
        if reported.is_some() {
            e.4 = reported;
        }
    }
    for (kind, discovered, persons, closed, reported) in state.values() {
        if IncidentKind::parse(kind).is_none() {
            return Err(PipelineError::Internal("incident kind unreadable".into()));
        }
        if inside(discovered) {
            *f.discovered_by_kind.entry(kind.clone()).or_default() += 1;
            f.persons_affected += persons.map_or(0, |n| u64::try_from(n).unwrap_or(0));
        }
        f.closed += u64::from(closed.as_deref().is_some_and(inside));
        f.reported_to_minister += u64::from(reported.as_deref().is_some_and(inside));
        let open = by_end(discovered) && !closed.as_deref().is_some_and(by_end);
        f.open_at_year_end += u64::from(open);
    }
    Ok(f)
}
