//! Runs the ARX adult benchmark (k=5, 4 % suppression, Loss) and prints the JSON report.
//! `cargo run --release -p kiban-anon --example adult`
use kiban_anon::{AnonymizeOptions, anonymize_csv};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/anonymization");
    let opts = AnonymizeOptions::new(format!("{dir}/adult.csv"), dir, 5, 0.04);
    let runs = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5usize);
    for _ in 0..runs {
        let r = anonymize_csv(&opts)?;
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}
