-- Owned by kiban-consent (handlers, notices, opt-out events).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.
-- Dates are ISO 'YYYY-MM-DD' TEXT; timestamps RFC 3339 UTC TEXT.
-- Patients are keyed by patient_key (keyed HMAC of handler code + patient ID): no plaintext
-- patient ID is ever stored here.

-- Medical-information handlers (医療情報取扱事業者) and their filing/publication (R-OPT-3).
CREATE TABLE handlers (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    representative TEXT,
    filed_date TEXT,
    minister_published_date TEXT,
    own_published_date TEXT,
    waiting_days BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

-- Versions of the handler's notice to patients (R-OPT-1).
CREATE TABLE notice_versions (
    handler_code TEXT NOT NULL REFERENCES handlers (code),
    version TEXT NOT NULL,
    items TEXT NOT NULL,
    acquisition_method TEXT NOT NULL,
    provision_method TEXT NOT NULL,
    update_method TEXT NOT NULL,
    stop_method TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (handler_code, version)
);

-- Per-patient opt-out timeline: notice | stop | delete | withdraw (R-OPT-1/4/6/8).
-- requester is personal data (the receipt of R-OPT-5 needs it): never logged.
CREATE TABLE consent_events (
    event_id TEXT PRIMARY KEY,
    handler_code TEXT NOT NULL REFERENCES handlers (code),
    patient_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    event_date TEXT NOT NULL,
    method TEXT,
    notice_version TEXT,
    guardian_notified BIGINT NOT NULL,
    channel TEXT,
    requester TEXT,
    relation TEXT,
    receipt_number TEXT,
    receipt_issued_date TEXT,
    source TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    UNIQUE (handler_code, patient_key, kind, event_date)
);
CREATE INDEX consent_events_patient ON consent_events (handler_code, patient_key);
-- The gate snapshot pages through a handler's events by event_id.
CREATE INDEX consent_events_handler ON consent_events (handler_code, event_id);
