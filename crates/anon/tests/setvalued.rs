//! Properties of the (k, k^m) search, checked with the independent brute-force checker:
//! the output never has a violation, stays violation-free under further global climbs, is
//! deterministic, and input that already satisfies the model comes back unchanged.
use kiban_anon::setvalued::{ItemForest, ItemSets, KmCost, KmInput, km_anonymize, km_violations};
use kiban_anon::{AnonError, Hierarchy};
use proptest::prelude::*;

/// One random kind: `leaves` codes in `groups` groups; with `top`, a single "*" last level,
/// else the forest adds a synthetic top; with `deep`, an extra level of pairs of groups.
fn hierarchy(kind: usize, leaves: usize, groups: usize, top: bool, deep: bool) -> Hierarchy {
    let rows = (0..leaves)
        .map(|i| {
            let g = i % groups;
            let mut r = vec![format!("k{kind}-{i}"), format!("k{kind}g{g}")];
            if deep {
                r.push(format!("k{kind}G{}", g / 2));
            }
            if top {
                r.push("*".into());
            }
            r
        })
        .collect();
    Hierarchy::from_rows(&format!("kind{kind}"), rows).unwrap()
}

#[derive(Debug, Clone)]
struct Case {
    kinds: Vec<(usize, usize, bool, bool)>,
    persons: Vec<(u32, Vec<usize>)>,
    k: usize,
    m: usize,
    occurrences_cost: bool,
    weight: f64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((1usize..9, 1usize..4, any::<bool>(), any::<bool>()), 1..3),
        2usize..6,
        1usize..4,
        1u32..5,
        any::<bool>(),
        prop::sample::select(vec![0.0, 0.5, 1.0, 3.0]),
    )
        .prop_flat_map(|(kinds, k, m, classes, occ, weight)| {
            let n_leaves: usize = kinds.iter().map(|k| k.0).sum();
            let person = (0..classes, prop::collection::vec(0..n_leaves, 0..6));
            prop::collection::vec(person, 0..40).prop_map(move |persons| Case {
                kinds: kinds.clone(),
                persons,
                k,
                m,
                occurrences_cost: occ,
                weight,
            })
        })
}

fn forest(c: &Case) -> ItemForest {
    ItemForest::from_hierarchies(
        c.kinds
            .iter()
            .enumerate()
            .map(|(i, (l, g, t, d))| hierarchy(i, *l, *g, *t, *d))
            .collect(),
    )
    .unwrap()
}

fn run(c: &Case) -> Result<(ItemForest, ItemSets, Vec<u32>), AnonError> {
    let f = forest(c);
    let sets = ItemSets::from_lists(
        c.persons
            .iter()
            .map(|(_, items)| items.iter().map(|i| *i as u32).collect()),
    );
    let qi = c.persons.iter().map(|(q, _)| *q).collect();
    Ok((f, sets, qi))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn output_has_no_violation(c in case()) {
        let (f, sets, qi) = run(&c).unwrap();
        let input = KmInput {
            cost: if c.occurrences_cost { KmCost::OccurrencesAffected } else { KmCost::InformationLoss },
            suppression_weight: c.weight,
            ..KmInput::new(c.k, c.m, &f, &qi, &sets)
        };
        let before = km_violations(c.k, c.m, &qi, &(0..sets.len()).map(|p| sets.get(p).to_vec()).collect::<Vec<_>>()).unwrap();
        let mut sol = km_anonymize(&input).unwrap();
        let released = sol.released_sets(&sets);
        let v = km_violations(c.k, c.m, &qi, &released).unwrap();
        prop_assert_eq!(v.count, 0, "{:?}", v);
        prop_assert_eq!(v.persons_in_small_classes, before.persons_in_small_classes);
        // the recoding only climbs, within the item's own kind
        for (leaf, node) in sol.recode.iter().enumerate() {
            prop_assert!(f.is_ancestor_or_self(*node, leaf as u32));
        }
        // utility figures add up
        let u = &sol.utility.total;
        prop_assert_eq!(u.occurrences, sets.items().len());
        prop_assert_eq!(u.occurrences_suppressed, sol.suppressed.len());
        // trivial case: already (k, k^m)-anonymous → unchanged
        if before.count == 0 {
            prop_assert!(sol.suppressed.is_empty());
            prop_assert!(sol.recode.iter().enumerate().all(|(l, n)| *n == l as u32));
        }
        // deterministic
        prop_assert_eq!(&km_anonymize(&input).unwrap(), &sol);
        // further global climbs keep the guarantee
        let nodes: Vec<u32> = released.iter().flatten().copied().step_by(3).collect();
        sol.climb(&input, &nodes).unwrap();
        let v = km_violations(c.k, c.m, &qi, &sol.released_sets(&sets)).unwrap();
        prop_assert_eq!(v.count, 0);
        sol.climb_implied(&input, 0.8, 3).unwrap();
        let v = km_violations(c.k, c.m, &qi, &sol.released_sets(&sets)).unwrap();
        prop_assert_eq!(v.count, 0);
    }

    /// Data made of k copies of every (class, item set) is (k, k^m)-anonymous for every m.
    #[test]
    fn k_copies_are_left_alone(c in case()) {
        let (f, sets, qi) = run(&c).unwrap();
        let mut lists = Vec::new();
        let mut qi2 = Vec::new();
        for (p, q) in qi.iter().enumerate() {
            for _ in 0..c.k {
                lists.push(sets.get(p).to_vec());
                qi2.push(*q);
            }
        }
        let sets2 = ItemSets::from_lists(lists);
        let input = KmInput::new(c.k, c.m, &f, &qi2, &sets2);
        let sol = km_anonymize(&input).unwrap();
        prop_assert!(sol.suppressed.is_empty());
        prop_assert!(sol.recode.iter().enumerate().all(|(l, n)| *n == l as u32));
        prop_assert_eq!(sol.rounds, 1);
    }

    /// The checker finds a planted unique person: one extra person whose item is held by
    /// nobody else in a fresh class of k persons.
    #[test]
    fn checker_catches_a_planted_violation(c in case()) {
        let (_, sets, qi) = run(&c).unwrap();
        let mut rel: Vec<Vec<u32>> = (0..sets.len()).map(|p| sets.get(p).to_vec()).collect();
        let mut qi = qi;
        for i in 0..c.k {
            rel.push(if i == 0 { vec![10_000, 10_001] } else { vec![10_001] });
            qi.push(999);
        }
        let base = km_violations(c.k, c.m, &qi[..sets.len()], &rel[..sets.len()]).unwrap();
        let v = km_violations(c.k, c.m, &qi, &rel).unwrap();
        // {10000} and, for m ≥ 2, {10000, 10001}
        prop_assert_eq!(v.count, base.count + if c.m >= 2 { 2 } else { 1 });
        prop_assert_eq!(v.persons_affected, base.persons_affected + 1);
    }
}
