//! Small driver for manual inspection and throughput measurement:
//! `cargo run --release -p kiban-synth --example synth -- PERSONS HOSPITALS OUT [all|one] [FORMATS]`
//! (FORMATS like `csv,fhir`).

use std::time::Instant;

use kiban_synth::{SynthConfig, SynthFormat, generate};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let persons = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let hospitals = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);
    let out = args.get(3).cloned().unwrap_or_else(|| "synth-out".into());
    let all = args.get(4).is_some_and(|s| s == "all");
    let mut cfg = SynthConfig {
        persons,
        hospitals,
        all_formats_per_hospital: all,
        ..Default::default()
    };
    if let Some(list) = args.get(5) {
        cfg.formats = list.split(',').filter_map(SynthFormat::parse).collect();
    }
    let t = Instant::now();
    let s = generate(&cfg, std::path::Path::new(&out), &mut |_, _| {})?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{} persons, {} registrations, {} visits in {:.2}s = {:.0} persons/s",
        s.persons,
        s.totals.registrations,
        s.totals.visits,
        secs,
        s.persons as f64 / secs
    );
    Ok(())
}
