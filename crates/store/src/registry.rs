//! Registrations: one handler's patient, known to the control plane only by an opaque random
//! `registration_id` and the keyed hash `patient_key` (see [`crate::keys::patient_key`]).
//!
//! The plaintext patient ID never reaches this table: [`Registry`] refuses any key that is not
//! the 64-hex-digit HMAC that `patient_key` produces, so a caller cannot store a raw ID by
//! mistake. Clinical rows carry the `registration_id`; linkage maps registrations to persons.

use rand::RngCore;
use sqlx::Row;

use crate::db::Db;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("handler code must be non-empty")]
    EmptyHandler,
    #[error(
        "patient_key must be the 64 lowercase hex digits of keys::patient_key (never a plaintext patient ID)"
    )]
    NotAPatientKey,
    #[error("registration of handler {handler_code} vanished while being created")]
    Vanished { handler_code: String },
    #[error(
        "{conflicts} of the patient keys of handler {handler_code} were registered by someone \
         else meanwhile (a concurrent ingest of the same handler?)"
    )]
    Conflict {
        handler_code: String,
        conflicts: u64,
    },
}

/// One registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub registration_id: String,
    pub handler_code: String,
    pub patient_key: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// The registrations table.
#[derive(Debug, Clone)]
pub struct Registry {
    db: Db,
}

/// A fresh registration id: "r" and 24 hex digits (96 random bits from the OS).
pub fn new_registration_id() -> String {
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!("r{}", hex::encode(b))
}

fn check(handler: &str, patient_key: &str) -> Result<(), RegistryError> {
    if handler.trim().is_empty() {
        return Err(RegistryError::EmptyHandler);
    }
    if patient_key.len() != 64
        || !patient_key
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(RegistryError::NotAPatientKey);
    }
    Ok(())
}

fn registration(row: &sqlx::any::AnyRow) -> Result<Registration, sqlx::Error> {
    Ok(Registration {
        registration_id: row.try_get(0)?,
        handler_code: row.try_get(1)?,
        patient_key: row.try_get(2)?,
        created_at: row.try_get(3)?,
    })
}

use crate::bulk::{Val, insert_rows};

/// Page size of [`Registry::for_each_of_handler`].
const PAGE: i64 = 10_000;

const SELECT: &str =
    "SELECT registration_id, handler_code, patient_key, created_at FROM registrations";

impl Registry {
    pub fn new(db: Db) -> Registry {
        Registry { db }
    }

    /// The registration id of (`handler`, `patient_key`), created when missing; the flag says
    /// whether this call created it. Safe against concurrent callers (other tasks or
    /// processes): the row is inserted-or-ignored, then read back, so every caller gets the
    /// same id and exactly one sees `true`.
    pub async fn get_or_create(
        &self,
        handler: &str,
        patient_key: &str,
    ) -> Result<(String, bool), RegistryError> {
        check(handler, patient_key)?;
        if let Some(id) = self.lookup(handler, patient_key).await? {
            return Ok((id, false));
        }
        let fresh = new_registration_id();
        sqlx::query(
            "INSERT INTO registrations (registration_id, handler_code, patient_key, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&fresh)
        .bind(handler)
        .bind(patient_key)
        .bind(chrono::Utc::now().to_rfc3339())
        .execute(self.db.pool())
        .await?;
        let id =
            self.lookup(handler, patient_key)
                .await?
                .ok_or_else(|| RegistryError::Vanished {
                    handler_code: handler.to_string(),
                })?;
        let created = id == fresh;
        Ok((id, created))
    }

    /// [`Registry::get_or_create`] for many patient keys of one handler in one transaction
    /// (one commit instead of one per patient: what bulk ingest wants). Results are in input
    /// order; a key repeated in the input gets the same id, `created` only the first time.
    pub async fn get_or_create_many(
        &self,
        handler: &str,
        patient_keys: &[&str],
    ) -> Result<Vec<(String, bool)>, RegistryError> {
        for k in patient_keys {
            check(handler, k)?;
        }
        let now = chrono::Utc::now().to_rfc3339();
        let mut tx = self.db.pool().begin().await?;
        let mut out = Vec::with_capacity(patient_keys.len());
        for k in patient_keys {
            let fresh = new_registration_id();
            sqlx::query(
                "INSERT INTO registrations (registration_id, handler_code, patient_key, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(&fresh)
            .bind(handler)
            .bind(*k)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            let id: String = sqlx::query(
                "SELECT registration_id FROM registrations WHERE handler_code = $1 AND patient_key = $2",
            )
            .bind(handler)
            .bind(*k)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RegistryError::Vanished {
                handler_code: handler.to_string(),
            })?
            .try_get(0)?;
            let created = id == fresh;
            out.push((id, created));
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Calls `f(patient_key, registration_id)` for every registration of `handler`, in
    /// patient-key order, a page at a time (keyset paging over the `(handler_code,
    /// patient_key)` index), so a caller can build its own compact map of millions of
    /// registrations without the rows being held all at once. Returns how many there were.
    pub async fn for_each_of_handler(
        &self,
        handler: &str,
        mut f: impl FnMut(&str, &str),
    ) -> Result<u64, RegistryError> {
        let mut after = String::new();
        let mut n = 0u64;
        loop {
            let rows = sqlx::query(
                "SELECT patient_key, registration_id FROM registrations \
                 WHERE handler_code = $1 AND patient_key > $2 ORDER BY patient_key LIMIT $3",
            )
            .bind(handler)
            .bind(&after)
            .bind(PAGE)
            .fetch_all(self.db.pool())
            .await?;
            for r in &rows {
                let key: &str = r.try_get(0)?;
                let id: &str = r.try_get(1)?;
                f(key, id);
            }
            n += rows.len() as u64;
            match rows.last() {
                Some(last) if rows.len() as i64 == PAGE => after = last.try_get(0)?,
                _ => return Ok(n),
            }
        }
    }

    /// Registers `(patient_key, registration_id)` pairs of `handler` whose ids the caller
    /// chose ([`new_registration_id`]) on `conn`, which is normally a transaction the caller
    /// commits together with the rows that use the ids (bulk ingest: a chunk's facts refer to
    /// registrations that exist exactly when the chunk commits). Multi-row statements, no
    /// read-back. Every key must be new: a key registered meanwhile (a concurrent ingest of
    /// the same handler) fails with [`RegistryError::Conflict`], and the caller rolls back.
    pub async fn register_many(
        &self,
        conn: &mut sqlx::AnyConnection,
        handler: &str,
        entries: &[(&str, &str)],
    ) -> Result<(), RegistryError> {
        for (k, _) in entries {
            check(handler, k)?;
        }
        let now = chrono::Utc::now().to_rfc3339();
        let rows = entries.iter().map(|(k, id)| {
            vec![
                Val::Text((*id).to_string()),
                Val::Text(handler.to_string()),
                Val::Text((*k).to_string()),
                Val::Text(now.clone()),
            ]
        });
        let inserted = insert_rows(
            conn,
            "INSERT INTO registrations (registration_id, handler_code, patient_key, created_at)",
            " ON CONFLICT DO NOTHING",
            rows,
        )
        .await?;
        let expected = entries.len() as u64;
        if inserted != expected {
            return Err(RegistryError::Conflict {
                handler_code: handler.to_string(),
                conflicts: expected.saturating_sub(inserted),
            });
        }
        Ok(())
    }

    /// The registration id of (`handler`, `patient_key`), if registered.
    pub async fn lookup(
        &self,
        handler: &str,
        patient_key: &str,
    ) -> Result<Option<String>, RegistryError> {
        check(handler, patient_key)?;
        let row = sqlx::query(
            "SELECT registration_id FROM registrations WHERE handler_code = $1 AND patient_key = $2",
        )
        .bind(handler)
        .bind(patient_key)
        .fetch_optional(self.db.pool())
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// One registration by id.
    pub async fn get(&self, registration_id: &str) -> Result<Option<Registration>, RegistryError> {
        let row = sqlx::query(&format!("{SELECT} WHERE registration_id = $1"))
            .bind(registration_id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(match row {
            Some(r) => Some(registration(&r)?),
            None => None,
        })
    }

    /// Every registration, in registration-id order (sorted in memory: ordering in SQL
    /// walks the table through its id index, a jump per row, since ids are random).
    pub async fn all(&self) -> Result<Vec<Registration>, RegistryError> {
        let mut all = self.all_unordered().await?;
        all.sort_unstable_by(|a, b| a.registration_id.cmp(&b.registration_id));
        Ok(all)
    }

    /// Every registration, in no particular order (the table's own: a sequential read), for
    /// callers that build a map of them.
    pub async fn all_unordered(&self) -> Result<Vec<Registration>, RegistryError> {
        let rows = sqlx::query(SELECT).fetch_all(self.db.pool()).await?;
        Ok(rows
            .iter()
            .map(registration)
            .collect::<Result<Vec<_>, _>>()?)
    }

    pub async fn count(&self) -> Result<u64, RegistryError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM registrations")
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Deletes a registration (after a deletion request, together with
    /// [`crate::vault::Vault::shred`] and [`crate::lake::Lake::compact`]); returns whether it
    /// existed. A later ingest of the same patient would create a new, unrelated id.
    pub async fn remove(&self, registration_id: &str) -> Result<bool, RegistryError> {
        let n = sqlx::query("DELETE FROM registrations WHERE registration_id = $1")
            .bind(registration_id)
            .execute(self.db.pool())
            .await?
            .rows_affected();
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_ids_are_r_plus_24_hex() {
        let a = new_registration_id();
        assert_eq!(a.len(), 25);
        assert!(a.starts_with('r'));
        assert!(a[1..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_registration_id());
    }

    #[test]
    fn plaintext_patient_ids_are_refused() {
        assert!(matches!(
            check("H1", "0001234"),
            Err(RegistryError::NotAPatientKey)
        ));
        assert!(matches!(
            check("H1", &"A".repeat(64)),
            Err(RegistryError::NotAPatientKey)
        ));
        assert!(matches!(
            check(" ", &"a".repeat(64)),
            Err(RegistryError::EmptyHandler)
        ));
        assert!(check("H1", &"a".repeat(64)).is_ok());
    }
}
