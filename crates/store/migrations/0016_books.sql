-- Owned by kiban-workflow (issue 15, item 7): the books (帳簿, 法13条, 第12条; R-REC-4),
-- other certified producers and inter-producer contracts (第23条; R-REC-7).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.
--
-- Nothing is updated or deleted: a book entry is never changed (a correction is a new entry
-- whose `corrects` names the entry it corrects), a change of a producer is a new version.
-- Every row takes the next number of `workflow_seq` (0014), so the books read in the order
-- they were written. Purging after three years from the entry (第12条3項, R-REC-8) is the
-- retention job's, not this schema's.

-- Other certified producers (認定匿名加工医療情報作成事業者), versioned like users. own: 1 for
-- this producer's own record (the other party of every inter-producer contract).
CREATE TABLE producers (
    producer_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    representative TEXT NOT NULL,
    cert_no TEXT NOT NULL,
    own BIGINT NOT NULL DEFAULT 0,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (producer_id, version)
);

-- Inter-producer contracts (第23条): both parties' names, addresses and representatives as
-- they were when the contract was recorded, the items (JSON: table -> columns) and the
-- method. direction: out (we provide medical data) | in (we receive it).
CREATE TABLE transfer_contracts (
    contract_id TEXT NOT NULL PRIMARY KEY,
    seq BIGINT NOT NULL UNIQUE,
    producer_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    signed_on TEXT NOT NULL,
    provider_name TEXT NOT NULL,
    provider_address TEXT NOT NULL,
    provider_representative TEXT NOT NULL,
    recipient_name TEXT NOT NULL,
    recipient_address TEXT NOT NULL,
    recipient_representative TEXT NOT NULL,
    items TEXT NOT NULL,
    method TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL
);

-- Book entries (第12条1項). kind: delivery (anonymized/pseudonymized data provided to a user,
-- written in the approval's transaction) | onward (a user's report of provision to another
-- user: the counter-party is the providing user, to_* the receiving one) | user_erasure (a
-- user's report that delivered data was erased) | transfer_out | transfer_in (medical data
-- provided to / received from another certified producer, 法25条). counterparty_name and
-- counterparty_address are copied as they were on the entry's day (a user or producer may
-- change later). items: JSON object, table -> columns. persons: how many persons the
-- delivered data covers (never who).
CREATE TABLE book_entries (
    entry_no BIGINT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    entry_date TEXT NOT NULL,
    counterparty_kind TEXT NOT NULL,
    counterparty_id TEXT NOT NULL,
    counterparty_version BIGINT NOT NULL,
    counterparty_name TEXT NOT NULL,
    counterparty_address TEXT NOT NULL,
    to_name TEXT,
    to_address TEXT,
    items TEXT NOT NULL,
    release_id TEXT,
    request_id TEXT,
    contract_id TEXT,
    level TEXT,
    persons BIGINT,
    method TEXT,
    corrects BIGINT,
    recorded_at TEXT NOT NULL,
    recorded_by TEXT NOT NULL
);
CREATE INDEX book_entries_date ON book_entries (entry_date);
CREATE INDEX book_entries_release ON book_entries (release_id);
-- One delivery entry per release: a second approval can never write a second one.
CREATE UNIQUE INDEX book_entries_one_delivery ON book_entries (release_id) WHERE kind = 'delivery' AND corrects IS NULL;
