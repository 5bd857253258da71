//! Ingest throughput per format: `cargo bench -p kiban-pipeline --bench ingest [-- PERSONS [FORMATS]]`.
//!
//! For each format, a child process generates `PERSONS` synthetic persons (one hospital,
//! that format only), ingests them into a fresh workspace through the whole pipeline (gate,
//! vault, lake, records, audit) and reports its own peak RSS during the ingest (the
//! high-water mark is reset when the ingest starts, so generation and the opt-out import
//! before it do not count; what they left resident does). The parent prints a table:
//! input MB, files, units, facts, seconds (and the part of them spent discovering and hashing
//! the files), MB/s, facts/s, peak RSS.
//!
//! Defaults: 20,000 persons; formats ssmix2,fhir,uke,csv (formats the readers do not know yet
//! are reported as such). The reference size is 100,000 persons.
//!
//! Generating the input takes about as long as ingesting it, and only the ingest is timed. With
//! `KIBAN_BENCH_CACHE=DIR` the generated input is kept in `DIR/{format}-{persons}` and reused
//! by later runs (a `complete` marker is written last, so an interrupted generation is redone),
//! which also lets a profiler attach to an ingest without the generator in the profile.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use std::sync::Mutex;

use kiban_pipeline::ingest::IngestOptions;
use kiban_pipeline::{Progress, Workspace};

/// Times the ingest's stages (`scan` = discovery and hashing, `ingest` = the rest).
#[derive(Default)]
struct StageTimes {
    current: Mutex<Option<(String, Instant)>>,
    done: Mutex<Vec<(String, f64)>>,
}

impl StageTimes {
    fn end(&self) {
        let cur = self.current.lock().ok().and_then(|mut c| c.take());
        if let (Some((name, t)), Ok(mut done)) = (cur, self.done.lock()) {
            done.push((name, t.elapsed().as_secs_f64()));
        }
    }

    fn seconds(&self, stage: &str) -> f64 {
        self.done.lock().map_or(0.0, |d| {
            d.iter().filter(|(n, _)| n == stage).map(|(_, s)| s).sum()
        })
    }
}

impl Progress for StageTimes {
    fn stage(&self, name: &str, _total: Option<u64>) {
        self.end();
        if let Ok(mut c) = self.current.lock() {
            *c = Some((name.to_string(), Instant::now()));
        }
    }
    fn advance(&self, _n: u64) {}
    fn finish_stage(&self) {
        self.end();
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--child") {
        let persons: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20_000);
        let format = args.get(2).cloned().unwrap_or_else(|| "ssmix2".into());
        match child(persons, &format) {
            Ok(line) => println!("{line}"),
            Err(e) => println!("ERR {e}"),
        }
        return;
    }
    let persons: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let formats: Vec<String> = args
        .get(1)
        .map(|f| f.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| vec!["ssmix2".into(), "fhir".into(), "uke".into(), "csv".into()]);
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot find the bench binary: {e}");
            return;
        }
    };
    println!("ingest benchmark: {persons} persons per format, one hospital, release build");
    println!(
        "{:<8} {:>9} {:>8} {:>9} {:>10} {:>8} {:>8} {:>8} {:>11} {:>9}",
        "format",
        "input MB",
        "files",
        "units",
        "facts",
        "seconds",
        "(scan)",
        "MB/s",
        "facts/s",
        "peak RSS"
    );
    for f in formats {
        let out = Command::new(&exe)
            .args(["--child", &persons.to_string(), &f])
            .output();
        let line = match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
            Err(e) => format!("ERR {e}"),
        };
        if let Some(err) = line.strip_prefix("ERR ") {
            println!("{f:<8} {err}");
            continue;
        }
        let v: Vec<f64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 7 {
            println!("{f:<8} unexpected output: {line}");
            continue;
        }
        let (mb, files, units, facts, secs, rss, scan) = (v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
        println!(
            "{f:<8} {mb:>9.1} {files:>8} {units:>9} {facts:>10} {secs:>8.2} {scan:>8.2} {:>8.1} {:>11.0} {:>6.0} MB",
            mb / secs.max(1e-9),
            facts / secs.max(1e-9),
            rss
        );
    }
}

fn child(persons: u64, format: &str) -> Result<String, String> {
    let f = kiban_synth::SynthFormat::parse(format)
        .ok_or_else(|| format!("unknown format {format}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let cfg = kiban_synth::SynthConfig {
        persons,
        hospitals: 1,
        seed: 1,
        formats: vec![f],
        ..Default::default()
    };
    let synth = match std::env::var_os("KIBAN_BENCH_CACHE") {
        Some(cache) => {
            let synth = Path::new(&cache).join(format!("{format}-{persons}"));
            let marker = synth.join("complete");
            if !marker.exists() {
                if synth.exists() {
                    std::fs::remove_dir_all(&synth).map_err(|e| e.to_string())?;
                }
                kiban_synth::generate(&cfg, &synth, &mut |_, _| {}).map_err(|e| e.to_string())?;
                std::fs::write(&marker, b"").map_err(|e| e.to_string())?;
            }
            synth
        }
        None => {
            let synth = dir.path().join("synth");
            kiban_synth::generate(&cfg, &synth, &mut |_, _| {}).map_err(|e| e.to_string())?;
            synth
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let ws = Workspace::init(&dir.path().join("ws"))
            .await
            .map_err(|e| e.to_string())?;
        let handlers = kiban_pipeline::handlers::read_handlers_csv(&synth.join("handlers.csv"))
            .map_err(|e| e.to_string())?;
        let h = handlers.first().ok_or("no handler")?;
        ws.add_handler(h).await.map_err(|e| e.to_string())?;
        ws.import_optout(&synth.join("optout.csv"))
            .await
            .map_err(|e| e.to_string())?;
        let src = synth.join("hospitals").join(&h.code);
        let bytes = dir_bytes(&src);
        let opts = IngestOptions {
            handler: h.code.clone(),
            format: None,
            received_on: cfg.effective_provision_date(),
        };
        let stages = StageTimes::default();
        // Peak RSS from here on: what the generator and the opt-out import used before does
        // not count (Linux resets the high-water mark on writing 5 to clear_refs).
        let _ = std::fs::write("/proc/self/clear_refs", b"5");
        let t = Instant::now();
        let r = ws
            .ingest(&[src], &opts, &stages)
            .await
            .map_err(|e| e.to_string())?;
        let secs = t.elapsed().as_secs_f64();
        if r.by_format.contains_key("unknown") {
            return Err(format!("{format}: no reader recognizes these files yet"));
        }
        Ok(format!(
            "{:.3} {} {} {} {:.3} {:.1} {:.3}",
            bytes as f64 / 1e6,
            r.files,
            r.units_accepted + r.units_rejected + r.units_quarantined,
            r.total_facts(),
            secs,
            peak_rss_mb(),
            stages.seconds("scan")
        ))
    })
}

fn dir_bytes(p: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let path = e.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(m) = e.metadata() {
                    n += m.len();
                }
            }
        }
    }
    n
}

/// Peak resident set size of this process (Linux `VmHWM`), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
