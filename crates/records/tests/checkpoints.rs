//! Signed audit checkpoints in the control plane, against SQLite (and PostgreSQL when
//! KIBAN_TEST_POSTGRES_URL is set): issue 17, item 3 (R-SEC-2).

use ed25519_dalek::SigningKey;
use kiban_records::checkpoint::{
    latest_checkpoint, list_checkpoints, store_checkpoint, workspace_identity,
};
use kiban_records::{AuditHead, Checkpoint};
mod common;

fn head(seq: u64, c: char) -> AuditHead {
    AuditHead {
        seq,
        hash: std::iter::repeat_n(c, 64).collect(),
    }
}

#[tokio::test]
async fn checkpoints_are_kept_one_per_count_and_the_first_stays() {
    for t in common::backends().await {
        let db = &t.db;
        let id = workspace_identity(db).await.unwrap();
        assert!(id.starts_with("ws-"), "{}", t.backend);
        assert_eq!(workspace_identity(db).await.unwrap(), id, "stable");
        let k = SigningKey::from_bytes(&[3; 32]);
        assert!(latest_checkpoint(db).await.unwrap().is_none());
        let a = Checkpoint::sign(&k, &id, &head(4, 'a'));
        let b = Checkpoint::sign(&k, &id, &head(9, 'b'));
        assert!(store_checkpoint(db, &b).await.unwrap());
        assert!(store_checkpoint(db, &a).await.unwrap());
        // A rewriter's checkpoint of a count already vouched for does not replace it.
        let forged = Checkpoint::sign(&k, &id, &head(9, 'c'));
        assert!(!store_checkpoint(db, &forged).await.unwrap());
        let all = list_checkpoints(db).await.unwrap();
        assert_eq!(all, vec![a, b.clone()], "{}", t.backend);
        assert!(all.iter().all(Checkpoint::signature_ok));
        assert_eq!(latest_checkpoint(db).await.unwrap(), Some(b));
        t.cleanup().await;
    }
}
