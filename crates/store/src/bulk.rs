//! Multi-row statements for the control plane.
//!
//! Bulk ingest writes thousands of ledger rows, registrations and identities per chunk; one
//! statement per row dominated its time. These helpers write a few hundred parameters per
//! statement, in the `$N` placeholder style that [`crate::db`] uses for both backends.

/// Bind parameters per statement at most. Fewer than one might think: sqlx binds SQLite's
/// `$N` parameters by name, and SQLite finds each name by a linear scan, so binding costs
/// grow with the square of the parameters per statement; a couple of hundred already make
/// the per-statement cost small (and stay far below SQLite's oldest limit of 999).
pub const MAX_PARAMS: usize = 240;

/// `($1, $2, …), (…), …`: `rows` groups of `cols` placeholders numbered from 1 (the
/// numbering rule of [`crate::db`]: in order of appearance).
pub fn row_placeholders(rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&(r * cols + c + 1).to_string());
        }
        s.push(')');
    }
    s
}

/// The rows of `select`, a query that ends in `… IN ` (the placeholder list is appended),
/// for every key of `keys`, [`MAX_PARAMS`] keys per statement at most.
pub async fn fetch_in(
    conn: &mut sqlx::AnyConnection,
    select: &str,
    keys: &[&str],
) -> Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
    let mut out = Vec::with_capacity(keys.len());
    for part in keys.chunks(MAX_PARAMS) {
        let sql = format!("{select}{}", row_placeholders(1, part.len()));
        let mut q = sqlx::query(&sql);
        for k in part {
            q = q.bind(*k);
        }
        out.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(out)
}

/// One value of a multi-row insert.
#[derive(Debug, Clone)]
pub enum Val {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Real(f64),
    Bytes(Vec<u8>),
    OptBytes(Option<Vec<u8>>),
}

/// Inserts `rows` (each the same number of values) with `head` (`INSERT INTO t (a, b, …)`)
/// and `tail` (e.g. an `ON CONFLICT` clause), [`MAX_PARAMS`] parameters per statement at
/// most: thousands of rows cost tens of statements, not thousands. Rows are made as they
/// are written, a statement's worth at a time. Returns the rows affected.
pub async fn insert_rows(
    conn: &mut sqlx::AnyConnection,
    head: &str,
    tail: &str,
    rows: impl Iterator<Item = Vec<Val>>,
) -> Result<u64, sqlx::Error> {
    let mut rows = rows.peekable();
    let Some(cols) = rows.peek().map(Vec::len) else {
        return Ok(0);
    };
    let per = (MAX_PARAMS / cols.max(1)).max(1);
    let mut affected = 0;
    while rows.peek().is_some() {
        let part: Vec<Vec<Val>> = rows.by_ref().take(per).collect();
        let sql = format!("{head} VALUES {}{tail}", row_placeholders(part.len(), cols));
        let mut q = sqlx::query(&sql);
        for row in part {
            if row.len() != cols {
                return Err(sqlx::Error::Protocol(format!(
                    "multi-row insert: a row of {} values among rows of {cols}",
                    row.len()
                )));
            }
            for v in row {
                q = match v {
                    Val::Text(t) => q.bind(t),
                    Val::OptText(t) => q.bind(t),
                    Val::Int(i) => q.bind(i),
                    Val::OptInt(i) => q.bind(i),
                    Val::Real(x) => q.bind(x),
                    Val::OptBytes(b) => q.bind(b),
                    Val::Bytes(b) => q.bind(b),
                };
            }
        }
        affected += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_placeholders_number_in_order() {
        assert_eq!(row_placeholders(1, 1), "($1)");
        assert_eq!(row_placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}
