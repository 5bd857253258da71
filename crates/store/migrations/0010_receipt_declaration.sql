-- Owned by kiban-records (issue 14): the handler's declaration confirmed on receipt
-- (R-REC-2, 法33条, 第36条) and kept in the receipt record (R-REC-3, 第37条). Every receipt
-- record keeps the declaration it confirmed (name, address, representative: the columns of
-- 0003; 取得の経緯 in `acquisition`, with the notice version it came from) and its hash, so
-- that a repeated confirmation is a check that nothing changed since an earlier one.
-- Portable SQL for SQLite and PostgreSQL: see crates/store/src/db.rs.

-- The handler's notice version whose acquisition method was confirmed (NULL: none).
ALTER TABLE receipt_records ADD COLUMN notice_version TEXT;
-- Hex SHA-256 of the declaration (handler code, name, address, representative, acquisition,
-- notice version). NULL for records written before this migration.
ALTER TABLE receipt_records ADD COLUMN declaration_sha256 TEXT;
-- 'first' (no earlier declaration of the handler), 'changed' or 'unchanged' (equal to the
-- handler's previous receipt record's).
ALTER TABLE receipt_records ADD COLUMN declaration_check TEXT;
-- The date received of the first receipt since which the declaration is unchanged.
ALTER TABLE receipt_records ADD COLUMN declaration_since TEXT;
CREATE INDEX receipt_records_handler ON receipt_records (handler_code, recorded_at);
