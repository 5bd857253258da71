-- kiban control plane, core tables (owned by kiban-store).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- Key/value settings of the workspace (schema facts, counters).
CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Registrations: one handler's patient. `patient_key` is the keyed hash of the handler's
-- patient ID (keys::patient_key), never the ID itself. IDs are random ("r" + 24 hex).
CREATE TABLE registrations (
    registration_id TEXT PRIMARY KEY,
    handler_code TEXT NOT NULL,
    patient_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (handler_code, patient_key)
);

-- Identity vault (R-SEC-4): one random data key per registration, wrapped (AES-256-GCM) by a
-- key derived from the workspace master key; `key_id` is the master key's public fingerprint.
-- Deleting the row destroys the key: the identity ciphertext can never be read again.
CREATE TABLE vault_keys (
    registration_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    wrapped_key ${blob} NOT NULL,
    nonce ${blob} NOT NULL,
    created_at TEXT NOT NULL
);

-- The identity record, serialized and sealed (AES-256-GCM) under the registration's data key,
-- the registration id bound as associated data.
CREATE TABLE vault_identities (
    registration_id TEXT PRIMARY KEY,
    nonce ${blob} NOT NULL,
    ciphertext ${blob} NOT NULL,
    updated_at TEXT NOT NULL
);
