//! The CLI's 1 M path (issue 16, item 6): `cargo run --release -p kiban-pipeline --example
//! cli_1m -- PERSONS [HOSPITALS] [FORMAT]` (defaults 1,000,000 persons, 20 hospitals, `csv`).
//!
//! Generates (kiban-synth, seed 16) PERSONS persons' exports across the hospitals and their
//! opt-out CSV (a notice for every registration, plus kiban-synth's stop and deletion
//! requests with their requesters), then times each stage through the library calls the
//! `kiban` commands make — `optout import` (`Workspace::import_optout`), `ingest` (one call
//! per hospital, as `kiban ingest --handler`), `link` (`Workspace::link`), `link export`
//! (`Workspace::link_export`) — and the library linker alone (`kiban_link::link`) on the same
//! records and configuration, and prints the seconds and the peak RSS (VmHWM, reset before
//! each stage) of each. With `KIBAN_BENCH_CACHE=DIR` the generated input is kept in
//! `DIR/cli_1m-{persons}-{hospitals}-{format}` and reused (a `complete` marker is written
//! last; `KIBAN_BENCH_ONLY=import` times the import alone). The workspace lives in a
//! temporary folder (or `KIBAN_BENCH_WS=DIR`, emptied first). With `KIBAN_BENCH_WS=DIR` and
//! `KIBAN_BENCH_REUSE=1` the workspace is copied aside to `DIR-ingested` once imported and
//! ingested, and a later run with the same settings starts from a copy of it and times only
//! `link`, the linker alone and `link export` (delete `DIR-ingested` to start over).

use std::path::{Path, PathBuf};
use std::time::Instant;

use kiban_pipeline::ingest::IngestOptions;
use kiban_pipeline::{NoProgress, Workspace};

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

fn reset_peak() {
    // Linux resets the high-water mark on writing 5 to clear_refs.
    let _ = std::fs::write("/proc/self/clear_refs", b"5");
}

struct Stages(Vec<(String, String, f64, f64)>);

impl Stages {
    fn push(&mut self, name: &str, what: String, secs: f64) {
        let rss = peak_rss_mb();
        eprintln!("  {name}: {secs:.2} s, {rss:.0} MB ({what})");
        self.0.push((name.to_string(), what, secs, rss));
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("cli_1m: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let persons: u64 = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let hospitals: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let format = args.get(2).cloned().unwrap_or_else(|| "csv".into());
    let f = kiban_synth::SynthFormat::parse(&format)
        .ok_or_else(|| format!("unknown format {format}"))?;
    let cfg = kiban_synth::SynthConfig {
        persons,
        hospitals,
        seed: 16,
        formats: vec![f],
        notice_rate: 1.0,
        ..Default::default()
    };
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let t = Instant::now();
    let synth = match std::env::var_os("KIBAN_BENCH_CACHE") {
        Some(cache) => {
            let synth = Path::new(&cache).join(format!("cli_1m-{persons}-{hospitals}-{format}"));
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
            let synth = tmp.path().join("synth");
            kiban_synth::generate(&cfg, &synth, &mut |_, _| {}).map_err(|e| e.to_string())?;
            synth
        }
    };
    let gen_secs = t.elapsed().as_secs_f64();
    let ws_dir = match std::env::var_os("KIBAN_BENCH_WS") {
        Some(d) => {
            let d = PathBuf::from(d);
            if d.exists() {
                std::fs::remove_dir_all(&d).map_err(|e| e.to_string())?;
            }
            d
        }
        None => tmp.path().join("ws"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut stages = Stages(Vec::new());
    eprintln!("cli_1m: {persons} persons, {hospitals} hospitals, {format} (input {gen_secs:.1} s)");
    // `KIBAN_BENCH_REUSE=1`: the ingested workspace kept aside (see the module doc).
    let saved = match std::env::var_os("KIBAN_BENCH_WS") {
        Some(d) if std::env::var("KIBAN_BENCH_REUSE").is_ok_and(|v| v == "1") => {
            let mut s = d.clone();
            s.push("-ingested");
            Some(PathBuf::from(s))
        }
        _ => None,
    };
    let (registrations, notices) = rt.block_on(async {
        if let Some(saved) = saved.as_ref().filter(|s| s.join("bench-notices").exists()) {
            copy_dir(saved, &ws_dir)?;
            let notices: u64 = std::fs::read_to_string(saved.join("bench-notices"))
                .map_err(|e| e.to_string())?
                .trim()
                .parse()
                .map_err(|_| "bench-notices does not parse".to_string())?;
            let ws = Workspace::open(&ws_dir).await.map_err(|e| e.to_string())?;
            let registrations = ws.vault().count().await.map_err(|e| e.to_string())?;
            eprintln!("  (reusing the workspace ingested in {})", saved.display());
            link_stages(&ws, &mut stages, tmp.path()).await?;
            return Ok::<_, String>((registrations, notices));
        }
        let ws = Workspace::init(&ws_dir).await.map_err(|e| e.to_string())?;
        let handlers = kiban_pipeline::handlers::read_handlers_csv(&synth.join("handlers.csv"))
            .map_err(|e| e.to_string())?;
        for h in &handlers {
            ws.add_handler(h).await.map_err(|e| e.to_string())?;
        }

        reset_peak();
        let t = Instant::now();
        let r = ws
            .import_optout(&synth.join("optout.csv"))
            .await
            .map_err(|e| e.to_string())?;
        stages.push(
            "optout import",
            format!("{} rows, {} imported", r.rows, r.imported),
            t.elapsed().as_secs_f64(),
        );
        let notices = r.rows;
        // `KIBAN_BENCH_ONLY=import` stops here: the import alone, e.g. on a larger opt-out
        // file put into the cache by hand.
        if std::env::var("KIBAN_BENCH_ONLY").is_ok_and(|v| v == "import") {
            // And the gate snapshots over what was imported, as `link`, ingest and release
            // load them.
            reset_peak();
            let t = Instant::now();
            let handlers_n = handlers.len();
            let _gates = kiban_consent::Gate::load_all(ws.db())
                .await
                .map_err(|e| e.to_string())?;
            stages.push(
                "  gate snapshots",
                format!("{handlers_n} handlers"),
                t.elapsed().as_secs_f64(),
            );
            return Ok::<_, String>((0, notices));
        }

        reset_peak();
        let t = Instant::now();
        let mut units = 0;
        for h in &handlers {
            let opts = IngestOptions {
                handler: h.code.clone(),
                format: None,
                received_on: cfg.effective_provision_date(),
            };
            let src = synth.join("hospitals").join(&h.code);
            let r = ws
                .ingest(&[src], &opts, &NoProgress)
                .await
                .map_err(|e| e.to_string())?;
            units += r.units_accepted;
        }
        let registrations = ws.vault().count().await.map_err(|e| e.to_string())?;
        stages.push(
            "ingest",
            format!("{units} units accepted, {registrations} registrations"),
            t.elapsed().as_secs_f64(),
        );
        let ws = match &saved {
            Some(saved) => {
                // Closed first (the pool's connections awaited), so that the copy holds
                // every committed write and no file vanishes under `cp`.
                ws.db().pool().close().await;
                drop(ws);
                if saved.exists() {
                    std::fs::remove_dir_all(saved).map_err(|e| e.to_string())?;
                }
                copy_dir(&ws_dir, saved)?;
                std::fs::write(saved.join("bench-notices"), notices.to_string())
                    .map_err(|e| e.to_string())?;
                Workspace::open(&ws_dir).await.map_err(|e| e.to_string())?
            }
            None => ws,
        };
        link_stages(&ws, &mut stages, tmp.path()).await?;
        Ok::<_, String>((registrations, notices))
    })?;
    report(&stages, persons, registrations, notices, hospitals, &format);
    Ok(())
}

/// `cp -a FROM TO` (TO emptied first).
fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    if to.exists() {
        std::fs::remove_dir_all(to).map_err(|e| e.to_string())?;
    }
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .map_err(|e| e.to_string())?;
    // Written back before anything is timed, so the copy's writeback does not land in a
    // stage.
    let _ = std::process::Command::new("sync").status();
    if st.success() {
        Ok(())
    } else {
        Err(format!("cp -a {} {} failed", from.display(), to.display()))
    }
}

/// Times `link`, the library linker alone and `link export` on `ws`.
async fn link_stages(ws: &Workspace, stages: &mut Stages, tmp: &Path) -> Result<(), String> {
    reset_peak();
    let t = Instant::now();
    let r = ws.link(None).await.map_err(|e| e.to_string())?;
    stages.push(
        "link",
        format!("{} persons, {} review", r.persons, r.review_pairs),
        t.elapsed().as_secs_f64(),
    );

    // Where `link`'s time goes besides the linker: its reads, each alone.
    reset_peak();
    let t = Instant::now();
    let regs = kiban_store::registry::Registry::new(ws.db().clone())
        .all()
        .await
        .map_err(|e| e.to_string())?;
    stages.push(
        "  registry read",
        format!("{} registrations", regs.len()),
        t.elapsed().as_secs_f64(),
    );
    drop(regs);
    reset_peak();
    let t = Instant::now();
    let ids = ws.vault().list().await.map_err(|e| e.to_string())?;
    stages.push(
        "  vault read (decrypted)",
        format!("{} identities", ids.len()),
        t.elapsed().as_secs_f64(),
    );
    drop(ids);
    reset_peak();
    let t = Instant::now();
    let (records, cfg) = ws
        .linkage_input(chrono::Local::now().date_naive())
        .await
        .map_err(|e| e.to_string())?;
    stages.push(
        "  linkage input",
        format!("{} records", records.len()),
        t.elapsed().as_secs_f64(),
    );
    reset_peak();
    let t = Instant::now();
    let r = kiban_link::link(&records, &cfg).map_err(|e| e.to_string())?;
    let persons_lib = r
        .clusters
        .values()
        .collect::<std::collections::HashSet<_>>()
        .len();
    stages.push(
        "  linker alone (library)",
        format!("{persons_lib} persons, {} review", r.review.len()),
        t.elapsed().as_secs_f64(),
    );
    drop((records, cfg, r));

    reset_peak();
    let t = Instant::now();
    let out = tmp.join("links.csv");
    let n = ws.link_export(&out).await.map_err(|e| e.to_string())?;
    stages.push(
        "link export",
        format!("{n} rows"),
        t.elapsed().as_secs_f64(),
    );
    Ok(())
}

fn report(
    stages: &Stages,
    persons: u64,
    registrations: u64,
    notices: u64,
    hospitals: u32,
    format: &str,
) {
    let cli_total: f64 = stages
        .0
        .iter()
        .filter(|(n, ..)| !n.starts_with(' '))
        .map(|(_, _, s, _)| s)
        .sum();
    println!();
    println!(
        "cli_1m: {persons} persons, {registrations} registrations, {notices} opt-out rows, \
         {hospitals} hospitals, {format}; {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| {:<26} | {:>9} | {:>13} | {:<40} |",
        "stage", "seconds", "peak RSS (MB)", ""
    );
    println!("|{:-<28}|{:-<11}|{:-<15}|{:-<42}|", "", "", "", "");
    for (name, what, secs, rss) in &stages.0 {
        println!("| {name:<26} | {secs:>9.2} | {rss:>13.0} | {what:<40} |");
    }
    println!(
        "| {:<26} | {:>9.2} | {:>13} | {:<40} |",
        "CLI path total", cli_total, "", "optout import + ingest + link + export"
    );
}
