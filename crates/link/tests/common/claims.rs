//! Populations written by `kiban synth` (the generator kiban ships, not the linker's test
//! generator) and read back with kiban-ingest's format readers, each registration's identity
//! merged unit by unit as ingest does before the vault (`Identity::merge_missing`, the
//! card's service window from the unit's dated services): what `kiban link` sees.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use kiban_link::LinkRecord;
use kiban_model::{Fact, Identity};
use kiban_synth::SynthConfig;

pub struct Population {
    pub records: Vec<LinkRecord>,
    /// registration id → true person id.
    pub truth: HashMap<String, String>,
    /// Pairs of different true persons that share a birth date and a family name (twins)
    /// or a whole name (namesakes) in the generator's output: they must never be merged.
    pub hard_negatives: Vec<(String, String)>,
}

/// Generates `cfg` into a temporary folder and reads every file back.
pub fn generate(cfg: &SynthConfig) -> Population {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path();
    kiban_synth::generate(cfg, out, &mut |_, _| {}).expect("synth");
    read(out)
}

fn read(out: &Path) -> Population {
    let files = kiban_ingest::discover(&[out.join("hospitals")], None).expect("discover");
    // (handler, patient id) → identity as the vault holds it
    let mut ids: BTreeMap<(String, String), Identity> = BTreeMap::new();
    for f in &files {
        if f.refused.is_some() || f.format.is_none() {
            continue;
        }
        let label = f.label.clone();
        let Some((handler, _)) = label.split_once('/') else {
            continue;
        };
        if !handler.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let handler = handler.to_string();
        kiban_ingest::read_file(f, &handler, &mut |item| {
            let kiban_ingest::Item::Facts(unit) = item else {
                return;
            };
            let served = unit.facts.iter().filter_map(|(f, _)| match f {
                Fact::Person(_) | Fact::Condition(_) => None,
                f => f.date(),
            });
            let window = served.clone().min().zip(served.max());
            let mut identity = match (&unit.identity, window) {
                (Some(i), _) => i.clone(),
                (None, Some(_)) => Identity::new(unit.patient_id.clone()),
                (None, None) => return,
            };
            if let Some((first, last)) = window {
                identity.saw_card_on(&first.to_string());
                identity.saw_card_on(&last.to_string());
            }
            let key = (handler.clone(), unit.patient_id.clone());
            match ids.get_mut(&key) {
                Some(known) => {
                    let mut newer = identity;
                    newer.merge_missing(known);
                    *known = newer;
                }
                None => {
                    ids.insert(key, identity);
                }
            }
        })
        .expect("read");
    }
    let mut truth_of: HashMap<(String, String), String> = HashMap::new();
    let mut rdr = csv::Reader::from_path(out.join("truth.csv")).expect("truth.csv");
    for r in rdr.records() {
        let r = r.expect("truth row");
        truth_of.insert((r[0].to_string(), r[1].to_string()), r[2].to_string());
    }
    let mut records = Vec::new();
    let mut truth = HashMap::new();
    for ((handler, pid), identity) in ids {
        let reg = format!("{handler}:{pid}");
        if let Some(p) = truth_of.get(&(handler.clone(), pid.clone())) {
            truth.insert(reg.clone(), p.clone());
        }
        records.push(LinkRecord {
            registration_id: reg,
            source: handler,
            identity,
        });
    }
    let hard_negatives = hard_negatives(&records, &truth);
    Population {
        records,
        truth,
        hard_negatives,
    }
}

fn family(kanji: &str) -> &str {
    kanji.split(['　', ' ']).next().unwrap_or(kanji)
}

/// Persons (not registrations) of different truth that share birth date and family name
/// (twins, siblings born the same day) or the whole kanji name (namesakes).
fn hard_negatives(
    records: &[LinkRecord],
    truth: &HashMap<String, String>,
) -> Vec<(String, String)> {
    let mut by_key: HashMap<(String, String), Vec<&str>> = HashMap::new();
    for r in records {
        let (Some(name), Some(dob)) = (&r.identity.name_kanji, &r.identity.birth_date) else {
            continue;
        };
        let Some(p) = truth.get(&r.registration_id) else {
            continue;
        };
        by_key
            .entry((family(name).to_string(), dob.clone()))
            .or_default()
            .push(p);
    }
    let mut out = HashSet::new();
    for persons in by_key.values() {
        for (i, a) in persons.iter().enumerate() {
            for b in &persons[i + 1..] {
                if a != b {
                    out.insert(((*a).min(*b).to_string(), (*a).max(*b).to_string()));
                }
            }
        }
    }
    let mut v: Vec<_> = out.into_iter().collect();
    v.sort();
    v
}

/// Hard-negative person pairs the clusters merged.
pub fn merged_hard_negatives(
    pop: &Population,
    clusters: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut clusters_of: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (reg, key) in clusters {
        if let Some(p) = pop.truth.get(reg) {
            clusters_of
                .entry(p.as_str())
                .or_default()
                .insert(key.as_str());
        }
    }
    pop.hard_negatives
        .iter()
        .filter(
            |(a, b)| match (clusters_of.get(a.as_str()), clusters_of.get(b.as_str())) {
                (Some(x), Some(y)) => !x.is_disjoint(y),
                _ => false,
            },
        )
        .cloned()
        .collect()
}
