//! The desk's identity search (issue 14, item 4): `kiban optout find --name NAME
//! [--kana KANA] --birth DATE --sex M|F`.
//!
//! A patient who calls the producer knows their name, birth date and sex, not the
//! hospital's patient ID. [`Workspace::find_registrations`] decrypts the vault page by page
//! (at most [`PAGE`] identities in memory at once), keeps the registrations whose birth date
//! and sex are equal and whose name or kana is equal under the linkage normalization
//! (`kiban_link::normalize`: full/half width, hiragana/katakana, variant kanji, spaces), and
//! lists them with their handler, the handler's patient ID, the person (link cluster) the
//! last linkage run put them in and the gate's decision today. A stop or deletion can then
//! name a registration found this way (`--registration`).
//!
//! Identities of registrations that do not match never leave this module: not in the
//! result, not in errors, not in the audit event (`optout.find`, counts only).

use std::collections::HashMap;
use std::fmt;

use chrono::NaiveDate;
use kiban_link::normalize;
use kiban_model::{Identity, Sex};
use serde::Serialize;
use sqlx::Row;

use crate::{PipelineError, Refusal, Workspace};

/// Identities decrypted at once while searching.
pub const PAGE: u32 = 256;

/// What the desk was told (personal data: `Debug` shows none of it).
#[derive(Clone, PartialEq, Eq)]
pub struct FindQuery {
    /// The name as the caller spells it (kanji, kana or Latin letters; spaces anywhere).
    pub name: String,
    /// The name in kana, when the desk has it.
    pub kana: Option<String>,
    pub birth: NaiveDate,
    /// [`Sex::Male`] or [`Sex::Female`].
    pub sex: Sex,
}

impl fmt::Debug for FindQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FindQuery(..)")
    }
}

/// Which of the registration's names matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchedOn {
    /// The name (kanji, or Latin letters) only.
    Name,
    /// The kana name only.
    Kana,
    /// Both.
    Both,
}

impl MatchedOn {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchedOn::Name => "name",
            MatchedOn::Kana => "kana",
            MatchedOn::Both => "both",
        }
    }
}

/// One registration that matches (the patient ID is personal data: `Debug` hides it).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct FoundRegistration {
    pub registration_id: String,
    pub handler_code: String,
    pub handler_name: String,
    /// The handler's patient ID, as its data carried it.
    pub patient_id: String,
    /// The person (link cluster) of the last linkage run; `None` when the registration was
    /// not in it (received since, or no run yet).
    pub person_key: Option<String>,
    pub matched_on: MatchedOn,
    /// The gate's decision today: `eligible` or the reason code (`stopped`, `deleted`, …).
    pub status: String,
}

impl fmt::Debug for FoundRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FoundRegistration")
            .field("registration_id", &self.registration_id)
            .field("handler_code", &self.handler_code)
            .field("person_key", &self.person_key)
            .field("matched_on", &self.matched_on)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// What a search found.
#[derive(Debug, Clone, Serialize)]
pub struct FindReport {
    /// Identities compared.
    pub scanned: u64,
    /// Whether a linkage run exists (person keys, and `--scope person`, need one).
    pub linkage_run: bool,
    /// Matches, by handler then registration.
    pub matches: Vec<FoundRegistration>,
}

/// The query's comparison keys, normalized once.
struct Keys {
    /// The name as a kanji name: NFKC, variant kanji folded, spaces dropped, hiragana as
    /// katakana.
    name: String,
    /// The name as a Latin-letter name, when it is written in Latin letters.
    alpha: Option<String>,
    /// The kana keys to compare with a registration's kana name: `--kana`, and `--name` when
    /// it is written in kana.
    kana: Vec<String>,
}

fn kanji_key(s: &str) -> String {
    normalize::hiragana_to_katakana(&normalize::normalize_kanji_name(s).joined())
}

fn kana_key(s: &str) -> String {
    normalize::normalize_kana_name(s).joined()
}

fn alpha_key(s: &str) -> String {
    normalize::normalize_alpha_name(s).joined()
}

/// Written in kana only (either script, either width), with spaces and marks.
fn is_kana(s: &str) -> bool {
    let s = normalize::hiragana_to_katakana(&normalize::nfkc(s));
    s.chars().any(|c| ('\u{30A1}'..='\u{30FA}').contains(&c))
        && s.chars().all(|c| {
            ('\u{30A0}'..='\u{30FF}').contains(&c) || c.is_whitespace() || matches!(c, '-' | '‐')
        })
}

/// Written in Latin letters only.
fn is_alpha(s: &str) -> bool {
    let s = normalize::nfkc(s);
    s.chars().any(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphabetic() || c.is_whitespace() || matches!(c, '^' | ',' | '-'))
}

impl Keys {
    fn of(q: &FindQuery) -> Result<Keys, PipelineError> {
        let name = kanji_key(&q.name);
        if name.is_empty() {
            return Err(Refusal::NameEmpty.into());
        }
        let mut kana = Vec::new();
        if let Some(k) = &q.kana {
            let k = kana_key(k);
            if k.is_empty() || !is_kana(q.kana.as_deref().unwrap_or_default()) {
                return Err(Refusal::KanaNotKana.into());
            }
            kana.push(k);
        }
        if is_kana(&q.name) {
            kana.push(kana_key(&q.name));
        }
        let alpha = is_alpha(&q.name).then(|| alpha_key(&q.name));
        Ok(Keys { name, alpha, kana })
    }

    /// Which of the identity's names match, if any (birth date and sex checked by the
    /// caller).
    fn matches(&self, id: &Identity) -> Option<MatchedOn> {
        let name = id
            .name_kanji
            .as_deref()
            .is_some_and(|n| kanji_key(n) == self.name)
            || match (&self.alpha, id.name_alpha.as_deref()) {
                (Some(a), Some(n)) => alpha_key(n) == *a,
                _ => false,
            };
        let kana = !self.kana.is_empty()
            && id.name_kana.as_deref().is_some_and(|n| {
                let k = kana_key(n);
                !k.is_empty() && self.kana.contains(&k)
            });
        match (name, kana) {
            (true, true) => Some(MatchedOn::Both),
            (true, false) => Some(MatchedOn::Name),
            (false, true) => Some(MatchedOn::Kana),
            (false, false) => None,
        }
    }
}

fn born_on(id: &Identity, birth: NaiveDate) -> bool {
    id.birth_date
        .as_deref()
        .and_then(|b| NaiveDate::parse_from_str(b.trim(), "%Y-%m-%d").ok())
        == Some(birth)
}

impl Workspace {
    /// The registrations of the person the desk describes (see the module documentation).
    /// A read: works on [`Workspace::open_read`]; audited as `optout.find` with counts only.
    pub async fn find_registrations(&self, q: &FindQuery) -> Result<FindReport, PipelineError> {
        self.audited(
            "optout.find",
            "vault",
            self.find_inner(q),
            |r: &FindReport| vec![("scanned", r.scanned), ("matches", r.matches.len() as u64)],
        )
        .await
    }

    async fn find_inner(&self, q: &FindQuery) -> Result<FindReport, PipelineError> {
        if !matches!(q.sex, Sex::Male | Sex::Female) {
            return Err(Refusal::SexInvalid.into());
        }
        let keys = Keys::of(q)?;
        let mut scanned = 0u64;
        // (registration, patient ID, matched on): the matches only.
        let mut found: Vec<(String, String, MatchedOn)> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.vault.list_page(after.as_deref(), PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (reg, id) in page {
                scanned += 1;
                if id.sex != q.sex || !born_on(&id, q.birth) {
                    continue;
                }
                if let Some(on) = keys.matches(&id) {
                    found.push((reg, id.patient_id.clone(), on));
                }
            }
        }

        let today = chrono::Local::now().date_naive();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut matches = Vec::with_capacity(found.len());
        for (registration_id, patient_id, matched_on) in found {
            // A vault entry without its registration is being erased: nothing to act on.
            let Some(reg) = self.registry.get(&registration_id).await? else {
                continue;
            };
            if !names.contains_key(&reg.handler_code) {
                let name = kiban_consent::get_handler(&self.db, &reg.handler_code)
                    .await?
                    .map(|h| h.name)
                    .unwrap_or_default();
                names.insert(reg.handler_code.clone(), name);
            }
            let status =
                kiban_consent::eligibility(&self.db, &reg.handler_code, &reg.patient_key, today)
                    .await?
                    .eligibility
                    .reason_code()
                    .to_string();
            matches.push(FoundRegistration {
                person_key: self.person_of(&registration_id).await?,
                handler_name: names.get(&reg.handler_code).cloned().unwrap_or_default(),
                handler_code: reg.handler_code,
                registration_id,
                patient_id,
                matched_on,
                status,
            });
        }
        matches.sort_by(|a, b| {
            (&a.handler_code, &a.registration_id).cmp(&(&b.handler_code, &b.registration_id))
        });
        Ok(FindReport {
            scanned,
            linkage_run: self.linkage_runs().await? > 0,
            matches,
        })
    }

    /// The person (link cluster) of one registration in the last linkage run.
    pub(crate) async fn person_of(
        &self,
        registration_id: &str,
    ) -> Result<Option<String>, PipelineError> {
        let row = sqlx::query("SELECT person_key FROM person_links WHERE registration_id = $1")
            .bind(registration_id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get(0)?),
            None => None,
        })
    }

    /// The registrations the last linkage run put in `person_key`'s cluster.
    pub(crate) async fn registrations_of_person(
        &self,
        person_key: &str,
    ) -> Result<Vec<String>, PipelineError> {
        let rows = sqlx::query(
            "SELECT registration_id FROM person_links WHERE person_key = $1 \
             ORDER BY registration_id",
        )
        .bind(person_key)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    /// How many linkage runs the workspace has recorded.
    pub(crate) async fn linkage_runs(&self) -> Result<u64, PipelineError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM link_runs")
            .fetch_one(self.db.pool())
            .await?
            .try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(name: &str, kana: Option<&str>) -> FindQuery {
        FindQuery {
            name: name.into(),
            kana: kana.map(Into::into),
            birth: NaiveDate::from_ymd_opt(1960, 1, 2).unwrap(),
            sex: Sex::Male,
        }
    }

    fn id(kanji: Option<&str>, kana: Option<&str>) -> Identity {
        let mut id = Identity::new("P1");
        id.name_kanji = kanji.map(Into::into);
        id.name_kana = kana.map(Into::into);
        id
    }

    #[test]
    fn spellings_the_hospital_did_not_use_match() {
        let k = Keys::of(&q("高橋　太郎", Some("たかはし たろう"))).unwrap();
        // variant kanji, no space
        assert_eq!(
            k.matches(&id(Some("髙橋太郎"), None)),
            Some(MatchedOn::Name)
        );
        // half-width katakana kana only
        assert_eq!(
            k.matches(&id(None, Some("ﾀｶﾊｼ ﾀﾛｳ"))),
            Some(MatchedOn::Kana)
        );
        assert_eq!(
            k.matches(&id(Some("高橋 太郎"), Some("タカハシ　タロウ"))),
            Some(MatchedOn::Both)
        );
        // a name given in kana compares with the kana name
        let k = Keys::of(&q("ｻｲﾄｳ ﾊﾅｺ", None)).unwrap();
        assert_eq!(
            k.matches(&id(Some("齋藤 花子"), Some("さいとう はなこ"))),
            Some(MatchedOn::Kana)
        );
        let k = Keys::of(&q("斎藤花子", None)).unwrap();
        assert_eq!(
            k.matches(&id(Some("齋藤　花子"), None)),
            Some(MatchedOn::Name)
        );
        let k = Keys::of(&q("Saito Hanako", None)).unwrap();
        let mut latin = id(None, None);
        latin.name_alpha = Some("SAITO^HANAKO".into());
        assert_eq!(k.matches(&latin), Some(MatchedOn::Name));
    }

    #[test]
    fn other_names_do_not_match() {
        let k = Keys::of(&q("高橋 太郎", Some("タカハシ タロウ"))).unwrap();
        assert_eq!(
            k.matches(&id(Some("高橋 次郎"), Some("タカハシ ジロウ"))),
            None
        );
        assert_eq!(k.matches(&id(None, None)), None);
        assert_eq!(k.matches(&id(Some(""), Some(""))), None);
    }

    #[test]
    fn empty_or_non_kana_queries_are_refused_without_echoing_them() {
        assert!(Keys::of(&q("　 ", None)).is_err());
        let e = Keys::of(&q("高橋 太郎", Some("高橋")))
            .err()
            .unwrap()
            .to_string();
        assert!(!e.contains("高橋"), "{e}");
        assert!(!format!("{:?}", q("高橋 太郎", None)).contains("高橋"));
    }
}
