//! `kiban optout import` never stores a requester's name in clear (issue 16, item 6; issue
//! 14, item 7): the name is sealed under the patient's subject key in the import's own
//! transaction. Read as an adversary with a copy of the workspace's files: after an import
//! of requests with names spread over several write chunks, no byte sequence of any name is
//! in the database file, its write-ahead log or anywhere else in the workspace — and neither
//! after an import that fails half-way (before, the first chunks were committed with the
//! names in clear and sealed only after the whole file). The sealed names open again.
//! Requirements: R-OPT-4, R-OPT-8.

use std::path::Path;

use chrono::NaiveDate;
use kiban_consent::HandlerInfo;
use kiban_model::Identity;
use kiban_pipeline::Workspace;
use sqlx::Row;

const H: &str = "1310000001";

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

async fn workspace(dir: &Path) -> Workspace {
    let ws = Workspace::init(&dir.join("ws")).await.unwrap();
    let mut h = HandlerInfo::new(H, "さくら総合病院", "東京都千代田区霞が関1-2-3");
    h.filed_date = Some(d("2020-01-06"));
    h.minister_published_date = Some(d("2020-02-03"));
    h.own_published_date = Some(d("2020-02-10"));
    ws.add_handler(&h).await.unwrap();
    ws
}

/// A name no other text of the workspace contains.
fn name(i: usize) -> String {
    format!("申出人{i:05}号")
}

/// Every file under `dir`, read raw.
fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p.display().to_string(), b));
            }
        }
    }
    out
}

/// Where any of the names (all `申出人NNNNN号`) is in a workspace file: the prefix anywhere,
/// or a tail of five digits and `号` (a partial overwrite could leave one) that is a name's.
fn leaks(dir: &Path, names: &[String]) -> Vec<String> {
    let tails: std::collections::HashSet<&[u8]> =
        names.iter().map(|n| &n.as_bytes()[9..]).collect();
    let prefix = "申出人".as_bytes();
    let go = "号".as_bytes();
    let mut found = Vec::new();
    for (f, b) in all_bytes(dir) {
        if b.windows(prefix.len()).any(|w| w == prefix) {
            found.push(format!("a name in {f}"));
        }
        for (i, w) in b.windows(go.len()).enumerate() {
            if w == go && i >= 5 && tails.contains(&b[i - 5..i + go.len()]) {
                found.push(format!("a name's tail in {f}"));
                break;
            }
        }
    }
    found
}

#[tokio::test]
async fn an_import_leaves_no_requester_name_in_any_workspace_file() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path()).await;
    // 9,000 patients: a notice each, a stop by the patient with a name for every 9th
    // (1,000 names across three write chunks), 50 repeated rows.
    let mut csv = String::from("handler_code,patient_id,event,date,channel,requester,relation\n");
    let mut names = Vec::new();
    for i in 0..9000 {
        csv.push_str(&format!("{H},P{i},notice,2024-02-01,,,\n"));
        if i % 9 == 0 {
            let n = name(i);
            csv.push_str(&format!("{H},P{i},stop,2024-03-01,desk,{n},self\n"));
            names.push(n);
        }
    }
    for i in 0..50 {
        csv.push_str(&format!("{H},P{i},notice,2024-02-01,,,\n"));
    }
    let file = tmp.path().join("optout.csv");
    std::fs::write(&file, &csv).unwrap();
    let rep = ws.import_optout(&file).await.unwrap();
    assert_eq!(rep.imported, 9000 + names.len() as u64);
    assert_eq!(rep.duplicates, 50);
    // The CSV itself is the operator's file, outside the workspace.
    assert_eq!(leaks(&ws.root().join("."), &names), Vec::<String>::new());
    // Sealed, and each opens to its own name under its event.
    let rows = sqlx::query(
        "SELECT event_id, patient_key FROM consent_events WHERE kind = 'stop' ORDER BY event_id",
    )
    .fetch_all(ws.db().pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), names.len());
    for i in [0usize, 4500, 8991] {
        let key = ws.patient_key_of(H, &format!("P{i}")).await.unwrap();
        let row = rows
            .iter()
            .find(|r| r.try_get::<String, _>(1).unwrap() == key)
            .unwrap();
        let id: String = row.try_get(0).unwrap();
        assert_eq!(ws.requester_of(&id).await.unwrap(), Some(name(i)));
    }
    drop(ws);
    // Closed and reopened: still nothing in clear.
    let ws = Workspace::open(&tmp.path().join("ws")).await.unwrap();
    assert_eq!(leaks(&ws.root().join("."), &names), Vec::<String>::new());
}

#[tokio::test]
async fn an_import_that_fails_half_way_leaves_nothing_and_no_name() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path()).await;
    // One ingested patient whose vault identity is damaged: the guardian check of the last
    // row reads it and fails (an internal fault, not a bad row).
    let regs = kiban_store::registry::Registry::new(ws.db().clone());
    let key = ws.patient_key_of(H, "BROKEN").await.unwrap();
    let (reg, _) = regs.get_or_create(H, &key).await.unwrap();
    let mut id = Identity::new("BROKEN");
    id.birth_date = Some("2012-06-01".into());
    ws.vault().put(&reg, &id).await.unwrap();
    sqlx::query("UPDATE vault_identities SET ciphertext = $1 WHERE registration_id = $2")
        .bind(vec![0u8; 48])
        .bind(&reg)
        .execute(ws.db().pool())
        .await
        .unwrap();
    let mut csv = String::from("handler_code,patient_id,event,date,channel,requester,relation\n");
    let mut names = Vec::new();
    for i in 0..3000 {
        let n = name(i);
        csv.push_str(&format!("{H},P{i},stop,2024-03-01,desk,{n},self\n"));
        names.push(n);
    }
    csv.push_str(&format!(
        "{H},BROKEN,stop,2024-03-01,desk,{},guardian\n",
        name(99999)
    ));
    names.push(name(99999));
    let file = tmp.path().join("optout.csv");
    std::fs::write(&file, &csv).unwrap();
    assert!(ws.import_optout(&file).await.is_err());
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM consent_events")
        .fetch_one(ws.db().pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(n, 0, "a failed import keeps nothing");
    assert_eq!(leaks(&ws.root().join("."), &names), Vec::<String>::new());
}
