-- The producer's duties besides releases (issue 15, item 7 in part; R-REC-6, 第5条第八号,
-- 第21条・第22条, 第24条・第25条). Owned by kiban-workflow (`duties`).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.
--
-- Append-only like 0014: a resolution, an answer or an escalation is a new row with the next
-- version (who recorded it and when); the latest version is in force. Every row takes the
-- next number of `workflow_seq`. Purging after the retention period (R-REC-8) is the
-- retention job's (`kiban retention run`), which leaves a purge record.
--
-- No personal data of a patient is stored: a complaint or an inquiry names who it came from
-- by kind (patient | handler | user | other) and, for an organisation only, its code in
-- kiban (a handler's code, a user's ID); never a patient's name, ID or contact.

-- Complaints (苦情, 第24条: content, the cause found, the improvement made; 3 years).
-- status: open | resolved. escalated_from: the inquiry it was escalated from.
CREATE TABLE duty_complaints (
    complaint_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    received_on TEXT NOT NULL,
    from_kind TEXT NOT NULL,
    from_ref TEXT,
    channel TEXT NOT NULL,
    content TEXT NOT NULL,
    escalated_from TEXT,
    status TEXT NOT NULL,
    cause TEXT,
    improvement TEXT,
    resolved_on TEXT,
    resolved_by TEXT,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (complaint_id, version)
);

-- Inquiries (相談, 第5条第八号: from patients, handlers and users), kept apart from
-- complaints. escalated_to: the complaint it became.
CREATE TABLE duty_inquiries (
    inquiry_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    received_on TEXT NOT NULL,
    from_kind TEXT NOT NULL,
    from_ref TEXT,
    channel TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT,
    answered_on TEXT,
    answered_by TEXT,
    escalated_to TEXT,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (inquiry_id, version)
);

-- Outsourcing contracts with certified contractors (認定医療情報等取扱受託事業者, 第21条第1項
-- 各号: the seven items a contract must state). contractor_cert_no: the contractor's
-- certification.
CREATE TABLE duty_outsourcing (
    contract_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    contractor TEXT NOT NULL,
    contractor_cert_no TEXT NOT NULL,
    signed_on TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    work_scope TEXT NOT NULL,
    procedures TEXT NOT NULL,
    verification TEXT NOT NULL,
    instructions TEXT NOT NULL,
    instruction_check TEXT NOT NULL,
    reporting TEXT NOT NULL,
    other_matters TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (contract_id, version)
);

-- Supervision of a contractor (第22条: audits of its safety management): date, what was
-- checked, findings, by whom.
CREATE TABLE duty_supervisions (
    contract_id TEXT NOT NULL,
    supervision_no BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    supervised_on TEXT NOT NULL,
    checked TEXT NOT NULL,
    findings TEXT NOT NULL,
    supervisor TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (contract_id, supervision_no)
);
