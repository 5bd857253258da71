//! Measures what a deletion run costs the vault: shredding one registration and rotating
//! the key epoch, which re-wraps every surviving data key under a new epoch key.
//!
//! `cargo run --release -p kiban-store --example vault_rotate -- [KEYS …]`
//! (default 10000 100000); prints one row per size.

use std::time::Instant;

use kiban_model::Identity;
use kiban_store::Db;
use kiban_store::keys::SecretKey;
use kiban_store::vault::Vault;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<usize> = {
        let v: Vec<usize> = std::env::args()
            .skip(1)
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?;
        if v.is_empty() {
            vec![10_000, 100_000]
        } else {
            v
        }
    };
    println!("| keys | fill (s) | shred 1 + rotate (s) | µs per key |");
    println!("|---:|---:|---:|---:|");
    for n in sizes {
        let dir = tempfile::tempdir()?;
        let db = Db::open_sqlite(&dir.path().join("v.db")).await?;
        db.migrate().await?;
        let v = Vault::with_epochs(db.clone(), SecretKey::generate(), &dir.path().join("keys"));
        v.prepare_epochs().await?;
        let t0 = Instant::now();
        let ids: Vec<String> = (0..n).map(|i| format!("r{i:09}")).collect();
        for part in ids.chunks(512) {
            let people: Vec<Identity> = part
                .iter()
                .map(|id| {
                    let mut p = Identity::new(id.clone());
                    p.name_kanji = Some("架空 太郎".into());
                    p.birth_date = Some("1960-01-02".into());
                    p
                })
                .collect();
            let entries: Vec<(&str, &Identity)> =
                part.iter().map(String::as_str).zip(people.iter()).collect();
            let mut tx = db.pool().begin().await?;
            v.put_many(&mut tx, &entries).await?;
            tx.commit().await?;
        }
        let fill = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        v.shred(&ids[0]).await?;
        v.rotate_epoch().await?;
        let rotate = t1.elapsed().as_secs_f64();
        println!(
            "| {n} | {fill:.2} | {rotate:.2} | {:.1} |",
            rotate * 1e6 / n as f64
        );
    }
    Ok(())
}
