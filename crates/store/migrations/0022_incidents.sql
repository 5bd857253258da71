-- Incidents (R-SEC-5, 規則第6条一ニ; issue 17, item 7): leaks (漏えい), loss (滅失), damage
-- (毀損) of the data kiban holds, and other security incidents. Owned by kiban-workflow
-- (`incidents`). Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.
--
-- Append-only like 0017: an update (scope, persons affected, the report to the minister, the
-- notice to the persons concerned) or the closing is a new row with the next version (who
-- recorded it and when); the latest version is in force and every earlier one is kept.
-- Measures taken are their own rows, numbered per incident, never changed. Every row takes
-- the next number of `workflow_seq`. A closed incident is kept 3 years from its closing
-- (`kiban retention run`, with a purge record `incident`).
--
-- No personal data of a patient: what happened, the scope and the measures are the
-- producer's own description; persons affected are a count; handlers and releases are named
-- by their codes and IDs in kiban.

-- status: open | closed. kind: leak | loss | damage | other.
-- occurred_on NULL: not known. persons_affected NULL: not known yet.
-- handlers, releases: the codes / IDs the incident reaches, comma-separated, sorted.
-- The report to the minister: minister_reported_on, or minister_not_required (why not).
-- The notice to the persons concerned: persons_notified_on with persons_notice_method, or
-- persons_not_notified (why not).
CREATE TABLE incidents (
    incident_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    discovered_on TEXT NOT NULL,
    occurred_on TEXT,
    summary TEXT NOT NULL,
    scope TEXT NOT NULL,
    persons_affected BIGINT,
    handlers TEXT NOT NULL,
    releases TEXT NOT NULL,
    minister_reported_on TEXT,
    minister_not_required TEXT,
    persons_notified_on TEXT,
    persons_notice_method TEXT,
    persons_not_notified TEXT,
    status TEXT NOT NULL,
    cause TEXT,
    prevention TEXT,
    closed_on TEXT,
    closed_by TEXT,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (incident_id, version)
);

-- Measures taken (what was done and when), appended by `kiban incident update --measure`.
CREATE TABLE incident_measures (
    incident_id TEXT NOT NULL,
    measure_no BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    taken_on TEXT NOT NULL,
    measure TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (incident_id, measure_no)
);
