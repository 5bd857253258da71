-- The key a release under a request was prepared for (issue 15; R-SEC-7).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- Owned by kiban-pipeline. The user's age recipient (age1…, a public key) and user version in
-- force when the release was prepared: the approval seals to that key only. A key changed
-- in between (`kiban user update --recipient`) refuses the approval — the package would
-- otherwise go to a key neither of the two actors saw — until the release is prepared again.
ALTER TABLE releases ADD COLUMN prepared_recipient TEXT;
