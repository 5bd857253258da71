-- Owned by kiban-records (legal records, books, audit index).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.
-- Dates are ISO 'YYYY-MM-DD' TEXT (so string order is date order); timestamps RFC 3339 UTC.
-- No plaintext patient ID anywhere: patients are the control plane's keyed patient_key.

-- Producer's receipt record (R-REC-3, 第37条), one per received batch. 3 years.
CREATE TABLE receipt_records (
    record_id TEXT PRIMARY KEY,
    received_date TEXT NOT NULL,
    handler_code TEXT NOT NULL,
    handler_name TEXT NOT NULL,
    handler_address TEXT NOT NULL,
    handler_representative TEXT,
    acquisition TEXT,
    minister_published_date TEXT,
    handler_published_date TEXT,
    filing_published BIGINT NOT NULL,
    patient_count BIGINT NOT NULL,
    items TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX receipt_records_date ON receipt_records (received_date);

-- The patients of a receipt record.
CREATE TABLE receipt_record_patients (
    record_id TEXT NOT NULL REFERENCES receipt_records (record_id) ON DELETE CASCADE,
    patient_key TEXT NOT NULL,
    PRIMARY KEY (record_id, patient_key)
);

-- Erasure record (R-REC-5, 第19条): date and items. 3 years.
CREATE TABLE erasure_records (
    record_id TEXT PRIMARY KEY,
    erased_date TEXT NOT NULL,
    items TEXT NOT NULL,
    handler_code TEXT,
    patient_key TEXT,
    registration_id TEXT,
    reason TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX erasure_records_date ON erasure_records (erased_date);

-- Handler's provision record (R-REC-1, 第33〜35条); a batch record for continuous provision
-- is kept 3 years from its last provision date.
CREATE TABLE provision_records (
    record_id TEXT PRIMARY KEY,
    provided_date TEXT NOT NULL,
    last_provided_date TEXT NOT NULL,
    handler_code TEXT NOT NULL,
    producer_name TEXT NOT NULL,
    producer_address TEXT NOT NULL,
    patient_count BIGINT NOT NULL,
    items TEXT NOT NULL,
    batch_id TEXT,
    recorded_at TEXT NOT NULL
);
CREATE INDEX provision_records_date ON provision_records (last_provided_date);

CREATE TABLE provision_record_patients (
    record_id TEXT NOT NULL REFERENCES provision_records (record_id) ON DELETE CASCADE,
    patient_key TEXT NOT NULL,
    PRIMARY KEY (record_id, patient_key)
);

-- What the retention job purged (R-REC-8): kept, never purged itself.
CREATE TABLE purge_records (
    purge_id TEXT NOT NULL,
    purged_at TEXT NOT NULL,
    run_date TEXT NOT NULL,
    cutoff_date TEXT NOT NULL,
    years BIGINT NOT NULL,
    record_kind TEXT NOT NULL,
    rows_purged BIGINT NOT NULL,
    PRIMARY KEY (purge_id, record_kind)
);
