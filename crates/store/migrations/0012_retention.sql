-- The erasure duty (issue 14, item 5; R-REC-5, R-SEC-4).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- Owned by kiban-pipeline: a release erased (`kiban erase release`, the retention policy,
-- or a deletion that could not re-write the package) keeps its row as the trace of what was
-- made, with the date and reason of its erasure; its wrapped key (key_nonce, key_wrapped)
-- is overwritten with empty values in the same statement, so the release's pseudonyms can
-- no longer be derived.
ALTER TABLE releases ADD COLUMN erased_date TEXT;
ALTER TABLE releases ADD COLUMN erased_reason TEXT;

-- Owned by kiban-consent: the end of the handler's contract with the producer (ISO date,
-- NULL while in force). The retention policy erases the handler's data a set number of days
-- after it (`[retention] handler_data_after_contract_end_days`).
ALTER TABLE handlers ADD COLUMN contract_end_date TEXT;
