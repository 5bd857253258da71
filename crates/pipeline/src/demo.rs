//! `kiban demo`: the whole pipeline on synthetic data and the bundled real samples.
//!
//! 1. a fresh workspace;
//! 2. a synthetic population (kiban-synth) with its handlers and opt-out events, each
//!    hospital exporting one format in turn (SS-MIX2, FHIR, UKE, CSV);
//! 3. every hospital's export ingested through the gate, plus the bundled real SS-MIX2
//!    sample (two of its files are deliberately broken and end in quarantine);
//! 4. linkage;
//! 5. an anonymized and a pseudonymized internal evaluation release;
//! 6. the audit log verified.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kiban_consent::HandlerInfo;
use serde::Serialize;

use crate::ingest::{IngestOptions, IngestReport};
use crate::link::LinkReport;
use crate::release::{ReleaseOptions, ReleaseReport};
use crate::stats::Stats;
use crate::{PipelineError, Progress, Workspace};

/// Marks a folder as made by `kiban demo`, so that a rerun may replace it.
const MARKER: &str = ".kiban-demo";

/// The bundled real SS-MIX2 sample (National Hospital Organization, Apache-2.0), present in a
/// source checkout.
const SAMPLE_SSMIX2: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/ss-mix2/nhoHQ-SSMIX2DataTestingTool/sampleData"
);
/// A handler code for the sample's hospital (the sample names none).
const SAMPLE_HANDLER: &str = "9999999999";
/// The sample's patients, notified so that the gate lets them through.
const SAMPLE_PATIENTS: [&str; 2] = ["9999013", "0000001"];

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub out: PathBuf,
    pub persons: u64,
    pub hospitals: u32,
    pub seed: u64,
    pub today: NaiveDate,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub workspace: PathBuf,
    pub synth_persons: u64,
    pub synth_registrations: u64,
    pub handlers: u64,
    pub optout_imported: u64,
    pub ingests: Vec<IngestReport>,
    pub link: Option<LinkReport>,
    pub releases: Vec<ReleaseReport>,
    pub audit_ok: bool,
    pub audit_events: u64,
    pub stats: Stats,
}

pub async fn run(opts: &DemoOptions, progress: &dyn Progress) -> Result<DemoReport, PipelineError> {
    prepare_out(&opts.out)?;
    let ws_dir = opts.out.join("workspace");
    let ws = Workspace::init(&ws_dir).await?;

    // 2. Synthetic population.
    let synth_dir = opts.out.join("synth");
    let cfg = kiban_synth::SynthConfig {
        persons: opts.persons,
        hospitals: opts.hospitals,
        seed: opts.seed,
        // Hospitals take turns: SS-MIX2, FHIR, UKE claims, mapped CSV.
        formats: kiban_synth::SynthFormat::ALL.to_vec(),
        ..Default::default()
    };
    progress.stage("synth", Some(opts.persons));
    let mut last = 0u64;
    let summary = kiban_synth::generate(&cfg, &synth_dir, &mut |done, _| {
        progress.advance(done.saturating_sub(last));
        last = done;
    })?;
    progress.finish_stage();
    let provision = cfg.effective_provision_date();

    // Handlers from the generator, plus the sample's hospital.
    let mut handlers = crate::handlers::read_handlers_csv(&synth_dir.join("handlers.csv"))?;
    let sample = Path::new(SAMPLE_SSMIX2);
    if sample.is_dir() {
        let mut h = HandlerInfo::new(SAMPLE_HANDLER, "SS-MIX2 サンプル病院", "東京都目黒区");
        h.filed_date = NaiveDate::from_ymd_opt(2020, 1, 6);
        h.minister_published_date = NaiveDate::from_ymd_opt(2020, 2, 3);
        h.own_published_date = NaiveDate::from_ymd_opt(2020, 2, 10);
        handlers.push(h);
    }
    for h in &handlers {
        ws.add_handler(h).await?;
    }
    let mut optout_imported = 0u64;
    let r = ws.import_optout(&synth_dir.join("optout.csv")).await?;
    optout_imported += r.imported;
    if sample.is_dir() {
        let p = opts.out.join("sample-optout.csv");
        let mut text = String::from("handler_code,patient_id,event,date\n");
        for pid in SAMPLE_PATIENTS {
            text.push_str(&format!("{SAMPLE_HANDLER},{pid},notice,2020-03-02\n"));
        }
        std::fs::write(&p, text).map_err(|e| PipelineError::io(&p, e))?;
        optout_imported += ws.import_optout(&p).await?.imported;
    }

    // 3. Ingest every hospital's export as of the provision date.
    let mut ingests = Vec::new();
    for h in &handlers {
        let dir = if h.code == SAMPLE_HANDLER {
            sample.to_path_buf()
        } else {
            synth_dir.join("hospitals").join(&h.code)
        };
        if !dir.is_dir() {
            continue;
        }
        let io = IngestOptions {
            handler: h.code.clone(),
            format: None,
            received_on: if h.code == SAMPLE_HANDLER {
                opts.today
            } else {
                provision
            },
        };
        ingests.push(ws.ingest(&[dir], &io, progress).await?);
    }

    // 4. Linkage.
    progress.stage("link", None);
    let link = Some(ws.link(None).await?);
    progress.finish_stage();

    // 5. Releases, gate re-checked as of today.
    let mut releases = Vec::new();
    for profile in kiban_release::PROFILES {
        let spec = kiban_release::Spec::profile(profile)?;
        let ro = ReleaseOptions {
            spec,
            out: opts.out.join("releases").join(profile),
            on: opts.today,
            request: None,
            // The demo's date is today's unless a test fixes it: then it is a labelled
            // re-run as of that date.
            rerun_of: (opts.today != chrono::Local::now().date_naive()).then(|| "demo".into()),
        };
        releases.push(ws.release(&ro, progress).await?);
    }

    // 6. The audit log.
    let (audit_ok, audit_events) = match kiban_records::verify(&ws_dir.join("audit")) {
        Ok(r) => (true, r.events),
        Err(_) => (false, 0),
    };
    let stats = ws.stats().await?;
    Ok(DemoReport {
        workspace: ws_dir,
        synth_persons: summary.persons,
        synth_registrations: summary.totals.registrations,
        handlers: handlers.len() as u64,
        optout_imported,
        ingests,
        link,
        releases,
        audit_ok,
        audit_events,
        stats,
    })
}

/// Makes `out` an empty folder: a previous demo there is removed; anything else is refused.
fn prepare_out(out: &Path) -> Result<(), PipelineError> {
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map_err(|e| PipelineError::io(out, e))?
            .next()
            .is_none();
        if !empty {
            if !out.join(MARKER).exists() {
                return Err(crate::Refusal::NotADemoFolder {
                    path: out.to_path_buf(),
                }
                .into());
            }
            std::fs::remove_dir_all(out).map_err(|e| PipelineError::io(out, e))?;
        }
    }
    std::fs::create_dir_all(out).map_err(|e| PipelineError::io(out, e))?;
    let m = out.join(MARKER);
    std::fs::write(
        &m,
        "made by kiban demo; rerunning kiban demo replaces this folder\n",
    )
    .map_err(|e| PipelineError::io(&m, e))?;
    Ok(())
}
