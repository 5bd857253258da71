-- Owned by kiban-workflow (issue 15): release recipients (users), requests, the review
-- committee's decisions and contracts (R-REL-1..3, R-SEC-6, R-PSEUDO-2).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.
--
-- Nothing is updated or deleted: a change of a user, a request or a contract is a new row
-- with the next version, who recorded it and when; the latest version is in force. Every
-- row also takes the next number of `workflow_seq`, so a request's history reads in the
-- order it was recorded. Purging after the retention period (R-REC-8) is the retention
-- job's, not this schema's.

-- The one counter that orders every workflow row (a single row, bumped in the writer's
-- transaction).
CREATE TABLE workflow_seq (
    id BIGINT PRIMARY KEY,
    n BIGINT NOT NULL
);
INSERT INTO workflow_seq (id, n) VALUES (1, 0);

-- Recipients (利用者). kind: anonymized | pseudonymized-type1 | pseudonymized-type2;
-- certified kinds carry their certification number and its last valid day. recipient: the
-- user's age X25519 public key (age1…), to which a package is encrypted.
CREATE TABLE workflow_users (
    user_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    representative TEXT NOT NULL,
    kind TEXT NOT NULL,
    cert_no TEXT,
    cert_valid_until TEXT,
    recipient TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (user_id, version)
);

-- Requests (提供依頼). level: anonymized | pseudonymized; tables: comma-separated clinical
-- table names, sorted; spec_sha256: the digest of the release spec the request came with;
-- period: the data period asked for; fee_yen and requested_on (with the answering review's
-- date) make unequal treatment of users visible (R-REL-3).
CREATE TABLE workflow_requests (
    request_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    level TEXT NOT NULL,
    tables TEXT NOT NULL,
    spec_sha256 TEXT,
    period_from TEXT,
    period_to TEXT,
    fee_yen BIGINT,
    requested_on TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (request_id, version)
);
CREATE INDEX workflow_requests_user ON workflow_requests (user_id);

-- The review committee's decisions (R-REL-1), each about one version of a request: a
-- change of the request is not approved until a review of the new version. decision:
-- approved | rejected; members: JSON array; approved_level/approved_tables: the approved
-- scope (NULL when rejected). The latest review of a version is in force.
CREATE TABLE workflow_reviews (
    request_id TEXT NOT NULL,
    review_no BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    request_version BIGINT NOT NULL,
    decision TEXT NOT NULL,
    members TEXT NOT NULL,
    review_date TEXT NOT NULL,
    reasons TEXT NOT NULL,
    conditions TEXT,
    approved_level TEXT,
    approved_tables TEXT,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (request_id, review_no)
);

-- Contracts with the user (R-REL-2, R-SEC-6): the purpose, the sharing scope and the
-- user's security measures, signed on, valid until, data kept until.
CREATE TABLE workflow_contracts (
    contract_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    request_id TEXT NOT NULL,
    signed_on TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    retention_until TEXT NOT NULL,
    purpose TEXT NOT NULL,
    sharing_scope TEXT NOT NULL,
    security TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (contract_id, version)
);
CREATE INDEX workflow_contracts_request ON workflow_contracts (request_id);
