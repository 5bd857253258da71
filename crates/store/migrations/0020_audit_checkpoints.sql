-- Signed checkpoints over the audit chain (issue 17, item 3; R-SEC-2).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- Owned by kiban-records (`checkpoint`). One row per event count: the workspace's Ed25519
-- signature (hex) over (format, workspace, events, hash, time, public_key), where `hash` is
-- the hash of the audit log's event number `events`. Written after every audited command
-- that changed state and by `kiban audit checkpoint`; never updated (a second checkpoint of
-- the same count is not stored) and never deleted by kiban. The workspace identity it names
-- is kept in `kv` under `audit.workspace_id`. Nothing personal.
CREATE TABLE audit_checkpoints (
    events BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    time TEXT NOT NULL,
    workspace TEXT NOT NULL,
    public_key TEXT NOT NULL,
    signature TEXT NOT NULL,
    format TEXT NOT NULL
);

-- Owned by kiban-pipeline (`audit_check`). An audited command that changes state writes its
-- row here before it starts and removes it once its audit event is appended; a row left by a
-- crash is turned into the command's audit event (`failed`, `interrupted`, with its start) by
-- the next writer, so that what the cut command committed (an ingest's first chunks) still
-- has its event. Nothing personal: the action and object are the audit event's own.
CREATE TABLE audit_ops_in_progress (
    op_id TEXT PRIMARY KEY,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    started_ms BIGINT NOT NULL
);
