-- Owned by kiban-link (person clusters, clerical review decisions).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.
-- No identity value is stored here: registrations are the control plane's random IDs.

-- One row per linkage run, with the fitted model (m/u/λ as JSON) reused by incremental runs.
CREATE TABLE IF NOT EXISTS link_runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    mode TEXT NOT NULL,
    registrations BIGINT NOT NULL,
    persons BIGINT NOT NULL,
    review_pairs BIGINT NOT NULL,
    blocked_merges BIGINT NOT NULL,
    model_json TEXT NOT NULL
);

-- The clerical review queue of the latest run (R-LINK-2): probability and field-level
-- agreement levels (labels only), never identity values. reg_a < reg_b.
CREATE TABLE IF NOT EXISTS link_review (
    run_id TEXT NOT NULL,
    reg_a TEXT NOT NULL,
    reg_b TEXT NOT NULL,
    probability DOUBLE PRECISION NOT NULL,
    match_weight_bits DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL,
    levels_json TEXT NOT NULL,
    PRIMARY KEY (run_id, reg_a, reg_b)
);

-- Clerical decisions, respected by every later run. reg_a < reg_b; same_person 0/1.
CREATE TABLE IF NOT EXISTS link_decisions (
    reg_a TEXT NOT NULL,
    reg_b TEXT NOT NULL,
    same_person BIGINT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    PRIMARY KEY (reg_a, reg_b)
);
