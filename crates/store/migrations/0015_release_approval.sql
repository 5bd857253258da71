-- A release under a request (issue 15, items 4 and 5; R-SEC-7).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- Owned by kiban-pipeline. A release under a request is prepared (status
-- 'awaiting-approval': the package written to a staging folder inside the workspace, out_dir,
-- nothing deliverable) and sealed by a second actor (status 'approved': the package encrypted
-- to the user's age key with the signed manifest in deliver_dir). Releases without a request
-- (internal evaluation) are 'written'. The actors are operators, never patients.
ALTER TABLE releases ADD COLUMN status TEXT NOT NULL DEFAULT 'written';
ALTER TABLE releases ADD COLUMN request_id TEXT;
-- The spec the release was prepared with (JSON), so that the approval prepares it again.
ALTER TABLE releases ADD COLUMN spec_json TEXT;
-- Where the sealed package goes (--out of the preparation).
ALTER TABLE releases ADD COLUMN deliver_dir TEXT;
ALTER TABLE releases ADD COLUMN prepared_by TEXT;
ALTER TABLE releases ADD COLUMN approved_by TEXT;
ALTER TABLE releases ADD COLUMN approved_at TEXT;
-- The SHA-256 of the signed delivery manifest (manifest.json in deliver_dir).
ALTER TABLE releases ADD COLUMN delivery_sha256 TEXT;
