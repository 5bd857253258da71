-- The opt-out import at a million notices (issue 16, item 6).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- Every index of consent_events is written by every imported event. Two of them served
-- nothing the UNIQUE index on (handler_code, patient_key, kind, event_date) cannot:
-- * consent_events_patient (handler_code, patient_key) is a prefix of it;
-- * consent_events_handler (handler_code, event_id) was for the gate snapshot's paging,
--   which now pages along the unique key instead.
-- Dropping them takes two of five B-trees off each insert (and about a third of the
-- table's size on disk).
DROP INDEX consent_events_patient;
DROP INDEX consent_events_handler;
