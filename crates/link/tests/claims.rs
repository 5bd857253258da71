//! Linkage on claims (issue 16): a claims-only population written by `kiban synth` — ten
//! hospitals' レセプト電算 files, no address and no phone, insurance that changes with life
//! events (a new job, 後期高齢者医療 at 75, a dependant leaving the family card), rare and
//! common names, twins and namesakes — read back by ingest and linked as `kiban link` does.
//! The generator is kiban-synth's, not the linker's own test generator, and decides who
//! changes cards and who shares a name by rules the linker does not know.

mod common;

use std::collections::HashMap;

use common::claims;
use kiban_link::{LinkConfig, evaluate};
use kiban_synth::SynthConfig;

#[test]
fn claims_only_insurance_changers_link_and_twins_and_namesakes_stay_apart() {
    let cfg = SynthConfig::claims(10_000, 10, 16);
    let pop = claims::generate(&cfg);
    // claims carry no address and no phone: a link can rest on neither
    assert!(pop.records.iter().all(|r| r.identity.address.is_none()
        && r.identity.phone.is_none()
        && r.identity.postal_code.is_none()));
    assert!(
        pop.hard_negatives.len() >= 50,
        "{}",
        pop.hard_negatives.len()
    );
    // eligibility groups: every 25th registration is ineligible (a stop request)
    let mut link_cfg = LinkConfig::default();
    for (i, r) in pop.records.iter().enumerate() {
        let g = if i % 25 == 0 {
            "ineligible"
        } else {
            "eligible"
        };
        link_cfg
            .groups
            .insert(r.registration_id.clone(), g.to_string());
    }
    let res = kiban_link::link(&pop.records, &link_cfg).expect("link");
    let m = evaluate(&res.clusters, &pop.truth);
    let merged = claims::merged_hard_negatives(&pop, &res.clusters);
    assert!(merged.is_empty(), "merged twins or namesakes: {merged:?}");
    // no cluster spans two eligibility groups
    let mut group_of: HashMap<&str, &str> = HashMap::new();
    for (reg, key) in &res.clusters {
        let g = link_cfg.groups[reg].as_str();
        assert_eq!(
            *group_of.entry(key.as_str()).or_insert(g),
            g,
            "cluster {key} mixes groups"
        );
    }
    // the measured quality of the groups' own pairs: a true pair split by the group
    // constraint is not the linker's miss
    let grouped: HashMap<String, String> = pop
        .truth
        .iter()
        .map(|(r, p)| (r.clone(), format!("{p}/{}", link_cfg.groups[r])))
        .collect();
    let m_grouped = evaluate(&res.clusters, &grouped);
    assert!(
        m_grouped.precision >= 0.999 && m_grouped.f1 >= 0.99,
        "P {:.4} R {:.4} F1 {:.4} (over all true pairs: P {:.4} R {:.4} F1 {:.4})",
        m_grouped.precision,
        m_grouped.recall,
        m_grouped.f1,
        m.precision,
        m.recall,
        m.f1
    );
}
