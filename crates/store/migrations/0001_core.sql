-- kiban control plane, core tables (owned by kiban-store).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- Key/value settings of the workspace (schema facts, counters).
CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
