//! kiban-synth: the synthetic Japanese population generator behind `kiban synth`.
//!
//! It owns the making of test data that looks like what hospitals really send a certified
//! producer: persons with kanji/kana names, birth dates, addresses and insurance numbers,
//! each registered at 1–3 hospitals under that hospital's own patient ID and with the
//! identity drift real desks produce (variant kanji, half-width kana, spacing, typos, marriage
//! name changes, moves, insurance changes), plus twins and namesakes as hard negatives for
//! linkage; diagnoses, prescriptions and lab results; written as SS-MIX2 trees
//! (ISO-2022-JP), FHIR R4 bundles, UKE claims (Shift_JIS) and CSV, with the ground truth
//! (`truth.csv`), an opt-out event file (`optout.csv`), the handler list (`handlers.csv`) and
//! the generator's own counts (`summary.json`).
//!
//! Why it exists: ingest, linkage and release can only be *measured* against data whose truth
//! is known, and real patient data must never be used for that.
//!
//! What it must never do: hold the population in memory (it streams one person at a time, so
//! a million persons run in flat memory), depend on anything but the seed for its output (same
//! config → identical bytes), print, exit or panic, or put any generated identity into an
//! error message. It reads nothing but its configuration.

pub mod config;
pub mod population;
pub mod summary;
pub mod tables;
pub mod text;
pub mod write;

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;

use chrono::{Duration, NaiveDate};
use rand::distributions::{Distribution, WeightedIndex};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use config::{NoiseConfig, SynthConfig, SynthFormat};
pub use population::NoiseCounts;
pub use summary::{
    Counts, CsvCounts, FhirCounts, HospitalSummary, OptoutCounts, Ssmix2Counts, SynthSummary,
    UkeCounts,
};

use population::{
    Clinic, PersonSource, Registration, check_digit, registration_identity, weighted,
};
use tables::{FAMILY_NAMES, GIVEN_FEMALE, GIVEN_MALE, HOSPITAL_STEMS, PLACES};
use write::{Hospital, HospitalWriters};

/// Errors of the generator. Messages name the output part and the reason, never a
/// generated identity (paths below the hospital folder contain patient IDs, so they are not
/// included).
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("invalid synth configuration: {field}: {reason}")]
    Config { field: &'static str, reason: String },
    #[error("cannot write {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {what}: {source}")]
    Csv {
        what: String,
        #[source]
        source: csv::Error,
    },
    #[error("cannot write {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("hospital {hospital} ran out of patient IDs (too many registrations)")]
    TooManyPatients { hospital: String },
}

impl SynthError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        SynthError::Io {
            what: what.into(),
            source,
        }
    }
}

/// How often `progress` is called (in persons), besides the final call.
const PROGRESS_EVERY: u64 = 1000;

/// Generates the population described by `cfg` into `out` (created if missing; existing files
/// of the same names are overwritten) and returns what was written. `progress(done, total)`
/// is called every 1,000 persons and once at the end.
pub fn generate(
    cfg: &SynthConfig,
    out: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SynthSummary, SynthError> {
    cfg.validate()?;
    fs::create_dir_all(out).map_err(|e| SynthError::io("output folder", e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let provision = cfg.effective_provision_date();

    let mut hospitals = make_hospitals(&mut rng, cfg);
    write_handlers(out, &hospitals)?;
    let mut writers = Vec::with_capacity(hospitals.len());
    for h in &hospitals {
        writers.push(HospitalWriters::open(out, h, cfg)?);
    }
    let hospital_dist: WeightedIndex<u32> = weighted(hospitals.iter().map(|h| h.weight));

    let mut truth = csv::Writer::from_writer(BufWriter::new(
        File::create(out.join("truth.csv")).map_err(|e| SynthError::io("truth.csv", e))?,
    ));
    let csv_err = |what: &'static str| {
        move |e: csv::Error| SynthError::Csv {
            what: what.into(),
            source: e,
        }
    };
    truth
        .write_record(["facility_code", "patient_id", "person_id"])
        .map_err(csv_err("truth.csv"))?;
    let mut optout = csv::Writer::from_writer(BufWriter::new(
        File::create(out.join("optout.csv")).map_err(|e| SynthError::io("optout.csv", e))?,
    ));
    optout
        .write_record([
            "handler_code",
            "patient_id",
            "event",
            "date",
            "channel",
            "requester",
            "relation",
            "patient_birth",
        ])
        .map_err(csv_err("optout.csv"))?;

    let mut source = PersonSource::new(cfg);
    let clinic = Clinic::new();
    let mut noise = NoiseCounts::default();
    let mut opt_counts = OptoutCounts::default();
    let mut truth_rows = 0u64;
    let mut chosen: Vec<usize> = Vec::with_capacity(3);

    for done in 0..cfg.persons {
        let person = source.next(&mut rng, cfg, &mut noise);
        let k = match rng.gen_range(0..100) {
            0..=54 => 1,
            55..=84 => 2,
            _ => 3,
        }
        .min(hospitals.len());
        chosen.clear();
        let mut guard = 0;
        while chosen.len() < k && guard < 100 {
            let h = hospital_dist.sample(&mut rng);
            if !chosen.contains(&h) {
                chosen.push(h);
            }
            guard += 1;
        }
        chosen.sort_unstable();
        for &hi in &chosen {
            let h = &mut hospitals[hi];
            let patient_id = h.next_patient_id()?;
            // Visits first: the card a registration carries depends on their dates.
            let visits = clinic.visits(&mut rng, cfg, &mut h.orders);
            let identity =
                registration_identity(&mut rng, &person, &visits, &cfg.noise, &mut noise);
            let reg = Registration {
                hospital: h.index,
                patient_id,
                identity,
                visits,
            };
            writers[hi].write(h, &reg)?;
            truth
                .write_record([
                    h.code.as_str(),
                    reg.patient_id.as_str(),
                    person.person_id().as_str(),
                ])
                .map_err(csv_err("truth.csv"))?;
            truth_rows += 1;
            write_optout(
                &mut rng,
                cfg,
                h,
                &reg,
                provision,
                &mut optout,
                &mut opt_counts,
            )?;
        }
        if (done + 1) % PROGRESS_EVERY == 0 {
            progress(done + 1, cfg.persons);
        }
    }
    truth.flush().map_err(|e| SynthError::io("truth.csv", e))?;
    optout
        .flush()
        .map_err(|e| SynthError::io("optout.csv", e))?;

    let mut summary = SynthSummary {
        generator: format!("kiban-synth {}", env!("CARGO_PKG_VERSION")),
        seed: cfg.seed,
        persons: cfg.persons,
        hospitals: cfg.hospitals,
        formats: cfg.formats.clone(),
        all_formats_per_hospital: cfg.all_formats_per_hospital,
        start_date: cfg.start_date.to_string(),
        end_date: cfg.end_date.to_string(),
        provision_date: provision.to_string(),
        truth_rows,
        noise,
        optout: opt_counts,
        ..Default::default()
    };
    for f in &cfg.formats {
        summary
            .per_format
            .insert(f.name().to_string(), Counts::default());
    }
    for w in writers {
        let (hs, per_format) = w.finish()?;
        summary.totals.add(&hs.counts);
        for (f, c) in per_format {
            summary
                .per_format
                .entry(f.name().to_string())
                .or_default()
                .add(&c);
        }
        summary.per_hospital.push(hs);
    }
    let json = serde_json::to_vec_pretty(&summary).map_err(|e| SynthError::Json {
        what: "summary.json".into(),
        source: e,
    })?;
    fs::write(out.join("summary.json"), json).map_err(|e| SynthError::io("summary.json", e))?;
    progress(cfg.persons, cfg.persons);
    Ok(summary)
}

fn make_hospitals(rng: &mut ChaCha8Rng, cfg: &SynthConfig) -> Vec<Hospital> {
    let place_dist = weighted(PLACES.iter().map(|p| p.weight));
    let family = weighted(FAMILY_NAMES.iter().map(|f| f.2));
    let mut names: Vec<String> = Vec::new();
    let filed = cfg.start_date - Duration::days(400);
    (0..cfg.hospitals)
        .map(|i| {
            let p = &PLACES[place_dist.sample(rng)];
            let body = format!("{:02}1{:02}{:04}", p.pref_code, rng.gen_range(1..30), i + 1);
            let code = format!("{body}{}", check_digit(&body));
            let mut name = format!(
                "{}{}",
                p.city,
                HOSPITAL_STEMS[i as usize % HOSPITAL_STEMS.len()]
            );
            let mut n = 1;
            while names.contains(&name) {
                n += 1;
                name = format!(
                    "{}{}第{}",
                    p.city,
                    HOSPITAL_STEMS[i as usize % HOSPITAL_STEMS.len()],
                    n
                );
            }
            names.push(name.clone());
            let town = p.towns[rng.gen_range(0..p.towns.len())];
            let address = format!(
                "{}{}{}{}丁目{}番{}号",
                p.prefecture,
                p.city,
                town,
                rng.gen_range(1..5),
                rng.gen_range(1..30),
                rng.gen_range(1..20)
            );
            let phone = format!(
                "{}-{}-{:04}",
                p.area_code,
                rng.gen_range(200..1000),
                rng.gen_range(0..10000)
            );
            let rep_family = FAMILY_NAMES[family.sample(rng)].0;
            let rep_given = if rng.gen_bool(0.7) {
                GIVEN_MALE[rng.gen_range(0..GIVEN_MALE.len())].0
            } else {
                GIVEN_FEMALE[rng.gen_range(0..GIVEN_FEMALE.len())].0
            };
            let mut mult = rng.gen_range(1_000_003..9_999_999u64);
            while mult % 2 == 0 || mult % 5 == 0 {
                mult += 1;
            }
            let pid_digits = 7 + (i % 4);
            Hospital {
                index: i,
                code,
                name,
                address,
                phone,
                representative: format!("院長　{rep_family}　{rep_given}"),
                filed: filed + Duration::days(i64::from(i % 30)),
                published: filed + Duration::days(14 + i64::from(i % 30)),
                own_published: filed + Duration::days(7 + i64::from(i % 30)),
                formats: cfg.formats_of_hospital(i),
                weight: rng.gen_range(1..=6),
                pid_digits,
                pid_mult: mult,
                pid_offset: rng.gen_range(0..10u64.pow(pid_digits)),
                next_patient: 0,
                orders: Default::default(),
            }
        })
        .collect()
}

fn write_handlers(out: &Path, hospitals: &[Hospital]) -> Result<(), SynthError> {
    let mut w = csv::Writer::from_writer(BufWriter::new(
        File::create(out.join("handlers.csv")).map_err(|e| SynthError::io("handlers.csv", e))?,
    ));
    let err = |e: csv::Error| SynthError::Csv {
        what: "handlers.csv".into(),
        source: e,
    };
    w.write_record([
        "code",
        "name",
        "address",
        "representative",
        "filed",
        "published",
        "own_published",
    ])
    .map_err(err)?;
    for h in hospitals {
        w.write_record([
            h.code.as_str(),
            h.name.as_str(),
            h.address.as_str(),
            h.representative.as_str(),
            &h.filed.to_string(),
            &h.published.to_string(),
            &h.own_published.to_string(),
        ])
        .map_err(err)?;
    }
    w.flush().map_err(|e| SynthError::io("handlers.csv", e))
}

fn random_day(rng: &mut ChaCha8Rng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = (to - from).num_days();
    if span <= 0 {
        from
    } else {
        from + Duration::days(rng.gen_range(0..=span))
    }
}

/// Opt-out events of one registration: a notice for `notice_rate` of registrations (most
/// dated well before the provision date, a few inside the 30-day waiting period), and a stop
/// or delete request for `stop_rate` / `delete_rate`.
fn write_optout(
    rng: &mut ChaCha8Rng,
    cfg: &SynthConfig,
    h: &Hospital,
    reg: &Registration,
    provision: NaiveDate,
    w: &mut csv::Writer<BufWriter<File>>,
    counts: &mut OptoutCounts,
) -> Result<(), SynthError> {
    let err = |e: csv::Error| SynthError::Csv {
        what: "optout.csv".into(),
        source: e,
    };
    let first_visit = reg.visits.first().map(|v| v.date).unwrap_or(cfg.start_date);
    let mut last = first_visit;
    if rng.gen_bool(cfg.notice_rate) {
        let date = if rng.gen_bool(0.95) {
            random_day(
                rng,
                (first_visit - Duration::days(30)).max(h.published),
                first_visit,
            )
        } else {
            counts.notices_within_waiting_period += 1;
            random_day(
                rng,
                provision - Duration::days(29),
                provision - Duration::days(1),
            )
        };
        // Notices are handed over in writing (R-OPT-1 basic form); for minors the guardian
        // is notified as well.
        let relation = if date.years_since(reg.identity.birth).unwrap_or(0) < 16 {
            "guardian"
        } else {
            ""
        };
        w.write_record([
            h.code.as_str(),
            reg.patient_id.as_str(),
            "notice",
            &date.to_string(),
            "written",
            "",
            relation,
            "",
        ])
        .map_err(err)?;
        counts.notices += 1;
        counts.rows += 1;
        last = last.max(date);
    } else {
        counts.never_notified += 1;
    }
    let u: f64 = rng.gen_range(0.0..1.0);
    let event = if u < cfg.stop_rate {
        "stop"
    } else if u < cfg.stop_rate + cfg.delete_rate {
        "delete"
    } else {
        return Ok(());
    };
    let date = random_day(rng, last, provision - Duration::days(1));
    let channel = if rng.gen_bool(0.7) {
        "desk"
    } else {
        "producer"
    };
    let id = &reg.identity;
    // R-OPT-8: the patient acts, or a guardian for a minor (under 16 on the request date),
    // who gives the patient's birth date so that the desk's rule can check the age (the
    // import reads `patient_birth`). A guardian of an adult without capacity (some of the very
    // old) needs a recorded guardianship, which the import does not carry: such a request is
    // written as the patient's own here (the random draws stay, so that every seed's data is
    // unchanged). The generator models no deaths, so no bereaved-family requests. Relation
    // words are the consent engine's vocabulary.
    let age = date.years_since(id.birth).unwrap_or(0);
    let guardian = age < 16;
    let without_capacity = !guardian && age >= 85 && rng.gen_bool(0.3);
    let (requester, relation) = if guardian || without_capacity {
        let g = if rng.gen_bool(0.5) {
            GIVEN_FEMALE[rng.gen_range(0..GIVEN_FEMALE.len())].0
        } else {
            GIVEN_MALE[rng.gen_range(0..GIVEN_MALE.len())].0
        };
        if guardian {
            (format!("{}　{}", id.family_kanji, g), "guardian")
        } else {
            (format!("{}　{}", id.family_kanji, id.given_kanji), "self")
        }
    } else {
        (format!("{}　{}", id.family_kanji, id.given_kanji), "self")
    };
    w.write_record([
        h.code.as_str(),
        reg.patient_id.as_str(),
        event,
        &date.to_string(),
        channel,
        &requester,
        relation,
        &if guardian {
            id.birth.to_string()
        } else {
            String::new()
        },
    ])
    .map_err(err)?;
    counts.rows += 1;
    if event == "stop" {
        counts.stops += 1;
    } else {
        counts.deletes += 1;
    }
    Ok(())
}
