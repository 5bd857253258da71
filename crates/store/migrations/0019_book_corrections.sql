-- Corrections of the books (issue 15, item 7; R-REC-4).
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- Owned by kiban-workflow. A book entry is never changed: a correction is a new entry of the
-- same kind whose `corrects` (0016) names the entry it corrects — always the entry then in
-- force, so the corrections of an entry form one chain (original ← 1st ← 2nd …) and the
-- entry in force is the one of its chain that nothing corrects. The unique index keeps the
-- chain one line: two corrections of the same entry (two people correcting at once) cannot
-- both be written, the second fails and is retried against the new entry in force. NULLs
-- (entries that correct nothing) are distinct on both backends. The correction's reason is
-- kept beside it (NULL on an entry that is not a correction). Nothing is updated or deleted.
ALTER TABLE book_entries ADD COLUMN correction_reason TEXT;
CREATE UNIQUE INDEX book_entries_one_correction ON book_entries (corrects);
