//! Incremental linkage (issue 5 §7): new registrations of one handler linked against
//! existing clusters with the persisted model give (almost) the full run's result, and a
//! deletion removes the registration from its person.

mod common;

use std::collections::BTreeMap;

use kiban_link::{
    FittedModel, LinkConfig, LinkRecord, evaluate, link, link_incremental, remove_registrations,
};

#[test]
fn r_link_1_incremental_matches_full_run_within_0_005_f1() {
    let w = common::japanese::world(424242, 400);
    let cfg = LinkConfig::default();
    let full = evaluate(&link(&w.records, &cfg).unwrap().clusters, &w.truth());
    // split: hospital H07's registrations arrive later
    let (new, old): (Vec<LinkRecord>, Vec<LinkRecord>) =
        w.records.iter().cloned().partition(|r| r.source == "H07");
    assert!(!new.is_empty() && !old.is_empty());
    let first = link(&old, &cfg).unwrap();
    // the model survives a round trip through JSON (it is persisted in the control plane)
    let json = serde_json::to_string(&first.fitted).unwrap();
    let model: FittedModel = serde_json::from_str(&json).unwrap();
    let inc = link_incremental(&old, &first.clusters, &new, &model, &cfg).unwrap();
    assert_eq!(inc.clusters.len(), w.records.len());
    // only pairs involving a new record were compared
    assert!(inc.stats.candidate_pairs < first.stats.candidate_pairs);
    let m = evaluate(&inc.clusters, &w.truth());
    assert!(
        (m.f1 - full.f1).abs() <= 0.005,
        "incremental F1 {:.4} vs full {:.4}",
        m.f1,
        full.f1
    );
    assert_eq!(m.merged_clusters, 0, "{m:?}");
    // existing clusters are kept as they were
    for r in &old {
        let k = &first.clusters[&r.registration_id];
        for s in &old {
            if &first.clusters[&s.registration_id] == k {
                assert_eq!(
                    inc.clusters[&r.registration_id],
                    inc.clusters[&s.registration_id]
                );
            }
        }
    }
}

#[test]
fn r_opt_6_deletion_removes_the_registration_from_its_person() {
    let w = common::japanese::world(99, 200);
    let cfg = LinkConfig::default();
    let res = link(&w.records, &cfg).unwrap();
    // a cluster of at least two registrations whose key is the deleted one
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (reg, key) in &res.clusters {
        by_key.entry(key).or_default().push(reg);
    }
    let (key, members) = by_key.iter().find(|(_, m)| m.len() >= 2).unwrap();
    let mut clusters = res.clusters.clone();
    assert_eq!(remove_registrations(&mut clusters, &[key]), 1);
    assert!(!clusters.contains_key(*key));
    assert!(
        clusters.values().all(|k| k != key),
        "no key names a deleted registration"
    );
    let rest: Vec<&str> = members.iter().copied().filter(|m| m != key).collect();
    let new_key = &clusters[rest[0]];
    assert!(rest.iter().all(|m| &clusters[*m] == new_key));
    // an incremental run without the deleted registration keeps it out
    let existing: Vec<LinkRecord> = w
        .records
        .iter()
        .filter(|r| r.registration_id != *key)
        .cloned()
        .collect();
    let inc = link_incremental(&existing, &clusters, &[], &res.fitted, &cfg).unwrap();
    assert!(!inc.clusters.contains_key(*key));
    assert_eq!(inc.clusters.len(), w.records.len() - 1);
}

#[test]
fn a_foreign_model_is_refused() {
    let w = common::japanese::world(5, 50);
    let mut bad = link(&w.records, &LinkConfig::default()).unwrap().fitted;
    bad.m.pop();
    let err = link_incremental(
        &w.records,
        &BTreeMap::new(),
        &[],
        &bad,
        &LinkConfig::default(),
    );
    assert!(matches!(err, Err(kiban_link::LinkError::InvalidModel)));
}
