-- Owned by kiban-consent: each handler's declared patient-ID format (issue 13).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.
--
-- Every patient ID is normalized (Unicode NFKC, trimmed, then this format) before it is
-- keyed into a patient_key, so that a stop filed as 16241 applies to the patient ingested as
-- 0016241. 'as-is' (NFKC and trimming only) or 'digits:N' (digits only, zero-padded to N).
-- Handlers registered before this migration keep 'as-is'.
ALTER TABLE handlers ADD COLUMN patient_id_format TEXT NOT NULL DEFAULT 'as-is';

-- Owned by kiban-pipeline: `kiban stats` and each ingest count the opt-out requests whose
-- patient matches no data received (no registration, no gate rejection, no erasure); a gate
-- rejection and an erasure record are looked up by handler and patient key.
CREATE INDEX gate_rejections_patient ON gate_rejections (handler_code, patient_key);
CREATE INDEX erasure_records_patient ON erasure_records (handler_code, patient_key);
