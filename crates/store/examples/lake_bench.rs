//! Measures lake write/scan/count/compact throughput and lets `/usr/bin/time -v` show that peak
//! memory stays bounded whatever the row count.
//!
//! `cargo run -p kiban-store --example lake_bench -- [ROWS]` (default 2,000,000 measurements).

use std::time::Instant;

use chrono::NaiveDate;
use kiban_model::{Fact, FactBatchBuilder, Measurement, Provenance, Table};
use kiban_store::Lake;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(2_000_000);
    let dir = tempfile::tempdir()?;
    let lake = Lake::open(dir.path())?;
    let date = NaiveDate::from_ymd_opt(2024, 1, 1).ok_or("date")?;
    let t0 = Instant::now();
    let mut w = lake.writer(Table::Measurement, "BENCH")?;
    let mut b = FactBatchBuilder::new("BENCH");
    for i in 0..rows {
        let f = Fact::Measurement(Measurement {
            date,
            code: Some(format!("3D0{:02}", i % 97)),
            value_number: Some((i % 1000) as f64 / 10.0),
            unit: Some("mg/dL".into()),
            ..Default::default()
        });
        let prov = Provenance {
            handler_code: "H1".into(),
            source_file: "labs.csv".into(),
            source_record: format!("line {i}"),
        };
        b.push(&format!("r{:024x}", i % 50_000), &f, &prov);
        if b.len() >= 8192 {
            for (_, rb) in b.finish()? {
                w.write(&rb)?;
            }
        }
    }
    for (_, rb) in b.finish()? {
        w.write(&rb)?;
    }
    let part = w.finish()?;
    let write_s = t0.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&part.path)?.len();
    let t1 = Instant::now();
    let mut scanned = 0;
    for rb in lake.scan(Table::Measurement)? {
        scanned += rb?.num_rows();
    }
    let scan_s = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let counted = lake.count_rows(Table::Measurement)?;
    let count_s = t2.elapsed().as_secs_f64();
    let t3 = Instant::now();
    let removed = lake.compact(Table::Measurement, &|id: &str| !id.ends_with('7'))?;
    let compact_s = t3.elapsed().as_secs_f64();
    println!(
        "rows={rows} file={:.1}MB write={write_s:.2}s ({:.0} rows/s) scan={scan_s:.2}s \
         count={counted} in {count_s:.4}s compact removed={removed} in {compact_s:.2}s scanned={scanned}",
        bytes as f64 / 1e6,
        rows as f64 / write_s
    );
    Ok(())
}
