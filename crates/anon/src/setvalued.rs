//! Longitudinal privacy: (k, k^m)-anonymity of relational + set-valued data (issue 13,
//! Deliver 4–6).
//!
//! A longitudinal release gives each person quasi-identifiers (birth year, sex, prefecture —
//! already generalized to k-anonymity by [`crate::persons`], so each person has a QI
//! *equivalence class*) and *sets of items*: the codes of their diagnoses, drugs, procedures…
//! An attacker who knows someone's demographics and a few of their diagnoses can single them
//! out even when the QIs alone are k-anonymous (an attack found 92 % of persons unique on QIs +
//! ICD-10 set). The guarantee here is the one of
//!
//! * M. Terrovitis, N. Mamoulis, P. Kalnis, *Privacy-preserving anonymization of set-valued
//!   data*, PVLDB 1(1), 2008 — **k^m-anonymity**: every combination of m (or fewer) released
//!   items is held by at least k records; and
//! * G. Poulis, G. Loukides, A. Gkoulalas-Divanis, S. Skiadopoulos, *Anonymizing data with
//!   relational and transaction attributes*, ECML PKDD 2013 (the RT-datasets of the SECRETA
//!   system) — **(k, k^m)-anonymity**: the relational part is k-anonymous and, *within each
//!   relational equivalence class*, the transaction part is k^m-anonymous.
//!
//! So: every combination of a person's released QI values with any m or fewer of their
//! released items is held by at least k persons (persons of the same QI class whose released
//! item set contains all those items).
//!
//! **Model.** Items are leaves of an [`ItemForest`] — one generalization hierarchy per item
//! *kind* (item table: ICD-10, YJ, …), every label of every level a node, one top node per
//! kind (released as `*`/「その他」 by the caller). A solution is a *global recoding* given as a
//! cut of each hierarchy (Terrovitis's generalization model: climbing an item to its parent
//! takes its whole sibling subtree along, so the released parent really hides which child it
//! came from, and the same code is released the same way for everyone, which analyses need),
//! plus *local suppression* of single (person, item) occurrences where recoding to the top
//! would still leave a violation or costs more.
//!
//! **Search** ([`km_anonymize`]), to a fixpoint, in rounds:
//! 1. each person's released set = the distinct nodes of their unsuppressed items;
//! 2. per QI class (in parallel), supports of the i-itemsets are counted for i = 1, 2, …, m and
//!    the class reports its violations (support in 1..k) of the *smallest* violating size only:
//!    an i-itemset is only counted once every (i−1)-itemset of the class is violation-free,
//!    which is the apriori principle used soundly (a superset of a violating itemset violates
//!    too, so nothing is missed: the round that finds no violation has counted every size);
//! 3. each violation names its cheapest generalization — climbing one of its non-top items one
//!    level, costed as the information lost by every occurrence it moves (NCP) or the
//!    occurrences affected ([`KmCost`]) — and credits it with what suppressing the violation
//!    would cost; a climb is taken when its cost does not exceed the credit summed over all
//!    classes (a climb repairs many violations at once, a suppression one);
//! 4. violations that no climb touches are suppressed locally: from each holder one item of
//!    the itemset (the one whose removal creates no new singleton violation, else the rarest in
//!    the class);
//! 5. classes whose released sets changed, or that had violations, are recounted.
//!
//! Global climbing never creates a violation (every released itemset after a climb is the
//! image of one before, so its holders are a superset), suppression can: the loop continues
//! until a full count finds none. It terminates because every round climbs at least one node
//! or suppresses at least one occurrence. Only classes that changed are recounted, so late
//! rounds are cheap.
//!
//! **Limits.** The QI classes are taken as given (no trade-off between coarser QIs and item
//! loss; a class smaller than k loses all its items and is reported by the checker as a
//! relational violation). The recoding is global across classes, unlike Poulis et al., who
//! recode per cluster: coarser but consistent labels. The search is greedy, not optimal. m is
//! at most [`MAX_M`]. Measured (`examples/km.rs`, 2 cores, 320 classes, ~18.5 Zipf items per
//! person, k = 5): 100,000 persons in 0.5 s for m = 1 and 3.4 s for m = 2.
//!
//! [`km_violations`] is an independent brute-force checker (it shares no code with the search)
//! for tests and for the release's risk report. [`implied_items`] is the cross-table rule of
//! issue 13 Deliver 4: a released code whose holders mostly hold a hidden rare code of another
//! table (a drug given almost only for a suppressed disease) must be generalized too.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use rayon::prelude::*;
use serde::Serialize;

use crate::AnonError;
use crate::hierarchy::Hierarchy;

/// The largest m the search supports: itemsets are packed into at most 128 bits, and the
/// number of m-subsets of a person's set (C(20, 4) = 4,845) makes larger m impractical anyway.
pub const MAX_M: usize = 4;

/// Default share for [`implied_items`]: a released code is implied by a hidden one when at
/// least 80 % of its holders hold the hidden code.
pub const DEFAULT_IMPLICATION_SHARE: f64 = 0.8;

const NONE: u32 = u32::MAX;

/// Violations per class kept between counting and suppression (beyond, the class is
/// recounted rather than holding them all in memory at once).
const KEEP_VIOLATIONS: usize = 1 << 16;

// ---------------------------------------------------------------------------------------
// Item forest
// ---------------------------------------------------------------------------------------

/// The generalization hierarchies of all item kinds as one forest of integer nodes.
///
/// Node ids: leaves (the original codes) first — kind 0's leaves, then kind 1's, … so a leaf
/// id is also an *item id* — then the labels of every higher level of every kind, then the
/// synthetic tops of kinds whose hierarchy does not end in a single label.
#[derive(Debug, Clone)]
pub struct ItemForest {
    hierarchies: Vec<Hierarchy>,
    /// `leaf_start[kind]`: first leaf id of the kind; `leaf_start[kinds]` = number of leaves.
    leaf_start: Vec<u32>,
    /// `level_start[kind][level]`: first node id of that level of that kind.
    level_start: Vec<Vec<u32>>,
    parent: Vec<u32>,
    kind: Vec<u32>,
    level: Vec<u8>,
    code: Vec<u32>,
    leaves_under: Vec<u32>,
    top: Vec<u32>,
    synthetic_top: Vec<bool>,
}

impl ItemForest {
    /// Builds the forest; kind `i` is `hierarchies[i]` (its leaves are the codes of that item
    /// table). A hierarchy whose last level has one label uses it as the kind's top; otherwise
    /// a top labelled `*` is added, so every kind can always be generalized to "some item".
    pub fn from_hierarchies(hierarchies: Vec<Hierarchy>) -> Result<ItemForest, AnonError> {
        if hierarchies.is_empty() {
            return Err(AnonError::Config(
                "an item forest needs at least one hierarchy".into(),
            ));
        }
        let too_big = || AnonError::Config("item forest exceeds 2^32 − 1 nodes".into());
        let mut leaf_start = Vec::with_capacity(hierarchies.len() + 1);
        let mut next: u64 = 0;
        for h in &hierarchies {
            if h.levels() > 250 {
                return Err(AnonError::Hierarchy {
                    name: h.name().to_string(),
                    line: 0,
                    reason: "more than 250 levels".into(),
                });
            }
            leaf_start.push(u32::try_from(next).map_err(|_| too_big())?);
            next += h.domain_size() as u64;
        }
        leaf_start.push(u32::try_from(next).map_err(|_| too_big())?);
        let mut level_start = Vec::with_capacity(hierarchies.len());
        let mut top = Vec::with_capacity(hierarchies.len());
        let mut synthetic = Vec::with_capacity(hierarchies.len());
        for (kind, h) in hierarchies.iter().enumerate() {
            let mut starts = vec![leaf_start[kind]];
            for l in 1..h.levels() {
                starts.push(u32::try_from(next).map_err(|_| too_big())?);
                next += h.cardinality(l) as u64;
            }
            level_start.push(starts);
            let height = h.height();
            synthetic.push(!(height >= 1 && h.cardinality(height) == 1));
        }
        for (kind, h) in hierarchies.iter().enumerate() {
            if synthetic[kind] {
                top.push(u32::try_from(next).map_err(|_| too_big())?);
                next += 1;
            } else {
                top.push(level_start[kind][h.height()]);
            }
        }
        if next >= u64::from(NONE) {
            return Err(too_big());
        }
        let n = next as usize;
        let mut f = ItemForest {
            parent: vec![NONE; n],
            kind: vec![0; n],
            level: vec![0; n],
            code: vec![0; n],
            leaves_under: vec![0; n],
            hierarchies,
            leaf_start,
            level_start,
            top,
            synthetic_top: vec![false; n],
        };
        for (kind, h) in f.hierarchies.iter().enumerate() {
            let kind32 = kind as u32;
            for l in 0..h.levels() {
                for c in 0..h.cardinality(l) {
                    let node = (f.level_start[kind][l] + c as u32) as usize;
                    f.kind[node] = kind32;
                    f.level[node] = l as u8;
                    f.code[node] = c as u32;
                    f.leaves_under[node] = h.code_group_size(l, c as u32);
                }
            }
            for leaf in 0..h.domain_size() as u32 {
                for l in 0..h.levels() - 1 {
                    let child = f.level_start[kind][l] + h.generalize(leaf, l);
                    let parent = f.level_start[kind][l + 1] + h.generalize(leaf, l + 1);
                    f.parent[child as usize] = parent;
                }
            }
            let t = f.top[kind];
            if synthetic[kind] {
                let ti = t as usize;
                f.synthetic_top[ti] = true;
                f.kind[ti] = kind32;
                f.level[ti] = h.levels() as u8;
                f.leaves_under[ti] = h.domain_size() as u32;
                let last = h.height();
                for c in 0..h.cardinality(last) as u32 {
                    f.parent[(f.level_start[kind][last] + c) as usize] = t;
                }
            }
        }
        Ok(f)
    }

    /// Number of item kinds (hierarchies).
    pub fn kinds(&self) -> usize {
        self.hierarchies.len()
    }
    /// Number of leaves (= item ids `0..leaves()`).
    pub fn leaves(&self) -> usize {
        self.leaf_start[self.hierarchies.len()] as usize
    }
    /// Number of nodes (leaves, inner labels, tops).
    pub fn nodes(&self) -> usize {
        self.parent.len()
    }
    /// The item id of an original code of `kind` (None if not in that kind's hierarchy).
    pub fn item(&self, kind: usize, code: &str) -> Option<u32> {
        let h = self.hierarchies.get(kind)?;
        h.leaf_code(code).map(|c| self.leaf_start[kind] + c)
    }
    /// The kind of a node.
    pub fn kind(&self, node: u32) -> u32 {
        self.kind[node as usize]
    }
    /// The hierarchy level of a node (0 = original code; a synthetic top is one above the
    /// hierarchy's last level).
    pub fn level(&self, node: u32) -> usize {
        usize::from(self.level[node as usize])
    }
    /// The parent node, None for a top.
    pub fn parent(&self, node: u32) -> Option<u32> {
        let p = self.parent[node as usize];
        (p != NONE).then_some(p)
    }
    /// The top node of a kind.
    pub fn top(&self, kind: usize) -> Option<u32> {
        self.top.get(kind).copied()
    }
    /// Whether the node is its kind's top.
    pub fn is_top(&self, node: u32) -> bool {
        self.parent[node as usize] == NONE
    }
    /// Whether `node` is a leaf (an original code).
    pub fn is_leaf(&self, node: u32) -> bool {
        node < self.leaf_start[self.hierarchies.len()]
    }
    /// Number of leaves of the kind's hierarchy under the node (1 for a leaf).
    pub fn leaves_under(&self, node: u32) -> u32 {
        self.leaves_under[node as usize]
    }
    /// Number of leaves of a kind.
    pub fn kind_leaves(&self, kind: usize) -> usize {
        self.hierarchies.get(kind).map_or(0, |h| h.domain_size())
    }
    /// The label of a node (`*` for a synthetic top). Only for output: the search never reads
    /// labels.
    pub fn label(&self, node: u32) -> &str {
        let i = node as usize;
        if self.synthetic_top[i] {
            return "*";
        }
        self.hierarchies[self.kind[i] as usize].label(self.level(node), self.code[i])
    }
    /// Whether `anc` is `node` or one of its ancestors.
    pub fn is_ancestor_or_self(&self, anc: u32, node: u32) -> bool {
        let mut n = node;
        loop {
            if n == anc {
                return true;
            }
            n = self.parent[n as usize];
            if n == NONE {
                return false;
            }
        }
    }
    /// For each leaf, whether `recode` releases it under a label that is not its own. A climb
    /// to an ancestor with the same label (a 3-character ICD-10 code `J00` to its category
    /// `J00`) hides nothing; the top (released as 「その他」 by the caller) always does.
    fn relabelled(&self, recode: &[u32]) -> Vec<bool> {
        (0..self.leaves() as u32)
            .map(|l| {
                recode.get(l as usize).is_some_and(|r| {
                    *r != l && (self.is_top(*r) || self.label(*r) != self.label(l))
                })
            })
            .collect()
    }
    /// NCP of releasing an item of the node's kind as `node`: (leaves under − 1) /
    /// (kind leaves − 1); 0 for a leaf, 1 for the top.
    fn ncp(&self, node: u32) -> f64 {
        let total = self.kind_leaves(self.kind(node) as usize);
        if total <= 1 {
            return if self.is_top(node) && !self.is_leaf(node) {
                1.0
            } else {
                0.0
            };
        }
        f64::from(self.leaves_under(node).saturating_sub(1)) / (total - 1) as f64
    }
}

// ---------------------------------------------------------------------------------------
// Per-person item sets
// ---------------------------------------------------------------------------------------

/// Per-person sorted distinct item ids, in CSR form (`items[offsets[p]..offsets[p+1]]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ItemSets {
    offsets: Vec<usize>,
    items: Vec<u32>,
}

impl ItemSets {
    /// From CSR arrays; each person's items must be strictly increasing (sorted, distinct).
    /// Errors name the person's position, never an item.
    pub fn new(offsets: Vec<usize>, items: Vec<u32>) -> Result<ItemSets, AnonError> {
        let bad = |line: usize, reason: &str| AnonError::Table {
            path: "<item sets>".into(),
            line,
            reason: reason.into(),
        };
        if offsets.first() != Some(&0) || offsets.last() != Some(&items.len()) {
            return Err(bad(
                0,
                "offsets must start at 0 and end at the number of items",
            ));
        }
        for (p, w) in offsets.windows(2).enumerate() {
            if w[0] > w[1] {
                return Err(bad(p + 1, "offsets decrease"));
            }
            if items[w[0]..w[1]].windows(2).any(|x| x[0] >= x[1]) {
                return Err(bad(p + 1, "items are not sorted and distinct"));
            }
        }
        Ok(ItemSets { offsets, items })
    }
    /// From one list per person (sorted and deduplicated here).
    pub fn from_lists<I: IntoIterator<Item = Vec<u32>>>(lists: I) -> ItemSets {
        let mut offsets = vec![0];
        let mut items = Vec::new();
        for mut l in lists {
            l.sort_unstable();
            l.dedup();
            items.extend_from_slice(&l);
            offsets.push(items.len());
        }
        ItemSets { offsets, items }
    }
    /// Number of persons.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }
    /// Whether there are no persons.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The items of person `p` (empty if out of range).
    pub fn get(&self, p: usize) -> &[u32] {
        match (self.offsets.get(p), self.offsets.get(p + 1)) {
            (Some(a), Some(b)) => &self.items[*a..*b],
            _ => &[],
        }
    }
    /// All items, person after person.
    pub fn items(&self) -> &[u32] {
        &self.items
    }
}

// ---------------------------------------------------------------------------------------
// Input and solution
// ---------------------------------------------------------------------------------------

/// How a climb is costed against a suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum KmCost {
    /// Information loss (NCP, Terrovitis et al.): moving an occurrence from node n to its
    /// ancestor a costs (leaves(a) − leaves(n)) / (kind leaves − 1); a suppressed occurrence
    /// costs 1 × `suppression_weight`. Generalizing a specific code to its 3-character
    /// category is cheap, to the top nearly as expensive as suppression.
    #[default]
    InformationLoss,
    /// Occurrences affected: a climb costs the number of released occurrences it changes, a
    /// suppression the number of occurrences removed × `suppression_weight`.
    OccurrencesAffected,
}

/// Input of [`km_anonymize`].
#[derive(Debug, Clone, Copy)]
pub struct KmInput<'a> {
    /// Minimum number of persons per (QI class, itemset).
    pub k: usize,
    /// Maximum number of items the attacker knows (1..=[`MAX_M`]).
    pub m: usize,
    /// How climbs are costed.
    pub cost: KmCost,
    /// Relative cost of suppressing one occurrence (≥ 0; default 1). Higher values prefer
    /// generalization.
    pub suppression_weight: f64,
    /// The QI equivalence class of each person (any u32 labels).
    pub qi_class: &'a [u32],
    /// Each person's leaf items.
    pub sets: &'a ItemSets,
    pub forest: &'a ItemForest,
}

impl<'a> KmInput<'a> {
    /// Input with the default cost ([`KmCost::InformationLoss`], suppression weight 1).
    pub fn new(
        k: usize,
        m: usize,
        forest: &'a ItemForest,
        qi_class: &'a [u32],
        sets: &'a ItemSets,
    ) -> KmInput<'a> {
        KmInput {
            k,
            m,
            cost: KmCost::default(),
            suppression_weight: 1.0,
            qi_class,
            sets,
            forest,
        }
    }
}

/// Utility cost of one item kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindUtility {
    /// Kind name (the hierarchy name).
    pub kind: String,
    /// Distinct items (codes) of this kind occurring in the input.
    pub items: usize,
    /// … released as an ancestor whose label is not the code's own (the same for every
    /// holder: the recoding is global). A climb to an ancestor with the same label (`J00` to
    /// its category `J00`) hides nothing and is not counted; the top always is.
    pub items_generalized: usize,
    /// … released as the kind's top.
    pub items_at_top: usize,
    /// … suppressed for *at least one* holder (one suppressed occurrence of a code held by
    /// thousands counts the code): with many QI classes this share can reach 100 % while
    /// few occurrences are suppressed — read it with `occurrences_suppressed`.
    pub items_suppressed: usize,
    /// Item occurrences (person, item).
    pub occurrences: usize,
    /// … released as an ancestor with another label (as `items_generalized`).
    pub occurrences_generalized: usize,
    /// … suppressed.
    pub occurrences_suppressed: usize,
    /// Mean NCP over occurrences (suppressed = 1).
    pub information_loss: f64,
}

impl KindUtility {
    /// Share of distinct items released as an ancestor with another label.
    pub fn share_items_generalized(&self) -> f64 {
        share(self.items_generalized, self.items)
    }
    /// Share of distinct items suppressed for at least one holder.
    pub fn share_items_suppressed(&self) -> f64 {
        share(self.items_suppressed, self.items)
    }
    /// Share of occurrences released as an ancestor.
    pub fn share_occurrences_generalized(&self) -> f64 {
        share(self.occurrences_generalized, self.occurrences)
    }
    /// Share of occurrences suppressed.
    pub fn share_occurrences_suppressed(&self) -> f64 {
        share(self.occurrences_suppressed, self.occurrences)
    }
}

fn share(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Utility cost of a solution.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KmUtility {
    pub persons: usize,
    /// Persons who lost at least one item occurrence.
    pub persons_with_suppression: usize,
    /// Persons with at least one item released as an ancestor with another label.
    pub persons_with_generalization: usize,
    pub per_kind: Vec<KindUtility>,
    /// All kinds together (`kind` = "*").
    pub total: KindUtility,
}

/// A solution of [`km_anonymize`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KmSolution {
    /// For each leaf item, the node it is released as (itself or an ancestor).
    pub recode: Vec<u32>,
    /// Suppressed occurrences (person index, leaf item), sorted.
    pub suppressed: Vec<(u32, u32)>,
    pub utility: KmUtility,
    /// Search rounds (counting passes).
    pub rounds: usize,
}

/// A released (or hidden) node and the persons holding it, for [`implied_items`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HolderSet {
    pub node: u32,
    pub kind: u32,
    /// Sorted distinct person indices.
    pub holders: Vec<u32>,
}

impl KmSolution {
    fn is_suppressed(&self, person: u32, leaf: u32) -> bool {
        self.suppressed.binary_search(&(person, leaf)).is_ok()
    }

    /// The released node set of person `p` (sorted, distinct): recoded items, suppressed
    /// occurrences left out. Two items recoded to the same node count once.
    pub fn released(&self, sets: &ItemSets, p: usize) -> Vec<u32> {
        let mut out: Vec<u32> = sets
            .get(p)
            .iter()
            .filter(|l| !self.is_suppressed(p as u32, **l))
            .filter_map(|l| self.recode.get(*l as usize).copied())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every person's released node set.
    pub fn released_sets(&self, sets: &ItemSets) -> Vec<Vec<u32>> {
        (0..sets.len()).map(|p| self.released(sets, p)).collect()
    }

    /// Climbs each given released node one level, globally (the whole subtree under its
    /// parent is released as the parent). Safe after [`km_anonymize`]: a global climb never
    /// creates a violation, because every itemset released afterwards is the image of one
    /// released before and has all its holders. Tops are left as they are. Recomputes the
    /// utility figures.
    pub fn climb(&mut self, input: &KmInput<'_>, nodes: &[u32]) -> Result<(), AnonError> {
        let f = input.forest;
        let mut target = vec![false; f.nodes()];
        for n in nodes {
            if (*n as usize) >= f.nodes() {
                return Err(AnonError::Config("node id outside the item forest".into()));
            }
            if let Some(p) = f.parent(*n) {
                target[p as usize] = true;
            }
        }
        apply_climbs(f, &mut self.recode, &target);
        self.utility = utility(input, &self.recode, &self.suppressed);
        Ok(())
    }

    /// Every released node with its holders (for [`implied_items`] and risk reports).
    pub fn released_holders(&self, input: &KmInput<'_>) -> Vec<HolderSet> {
        let mut by_node: HashMap<u32, Vec<u32>> = HashMap::new();
        for p in 0..input.sets.len() {
            for n in self.released(input.sets, p) {
                by_node.entry(n).or_default().push(p as u32);
            }
        }
        let mut out: Vec<HolderSet> = by_node
            .into_iter()
            .map(|(node, holders)| HolderSet {
                node,
                kind: input.forest.kind(node),
                holders,
            })
            .collect();
        out.sort_by_key(|h| h.node);
        out
    }

    /// Leaf items that are hidden for some holder — released under another label (an
    /// ancestor with the same label hides nothing), or suppressed — and held (hidden) by at
    /// most `max_holders` persons: the rare codes that another table's code must not reveal.
    /// `holders` are the persons for whom the leaf is hidden.
    pub fn hidden_items(&self, input: &KmInput<'_>, max_holders: usize) -> Vec<HolderSet> {
        let relabelled = input.forest.relabelled(&self.recode);
        let mut by_leaf: HashMap<u32, Vec<u32>> = HashMap::new();
        for p in 0..input.sets.len() {
            for l in input.sets.get(p) {
                let hidden = relabelled.get(*l as usize).copied().unwrap_or(false)
                    || self.is_suppressed(p as u32, *l);
                if hidden {
                    by_leaf.entry(*l).or_default().push(p as u32);
                }
            }
        }
        let mut out: Vec<HolderSet> = by_leaf
            .into_iter()
            .filter(|(_, h)| h.len() <= max_holders)
            .map(|(node, holders)| HolderSet {
                node,
                kind: input.forest.kind(node),
                holders,
            })
            .collect();
        out.sort_by_key(|h| h.node);
        out
    }

    /// Applies the cross-table rule until it no longer fires: every released non-top node
    /// implied (share ≥ `min_share`) by a hidden leaf of another kind held by at most
    /// `max_hidden_holders` persons climbs one level. Returns the number of climbs. Safe for
    /// the guarantee (climbs only).
    pub fn climb_implied(
        &mut self,
        input: &KmInput<'_>,
        min_share: f64,
        max_hidden_holders: usize,
    ) -> Result<usize, AnonError> {
        let mut climbs = 0;
        loop {
            let released = self.released_holders(input);
            let hidden = self.hidden_items(input, max_hidden_holders);
            let nodes: Vec<u32> = implied_items(&released, &hidden, min_share)?
                .into_iter()
                .map(|i| i.released)
                .filter(|n| !input.forest.is_top(*n))
                .collect();
            if nodes.is_empty() {
                return Ok(climbs);
            }
            climbs += nodes.len();
            // A node just under its kind's top does not climb: in a cut the top covers every
            // code of the kind, so one implied drug would send all drugs to 「その他」. Its
            // occurrences are suppressed instead, for everybody (removing a released label
            // everywhere creates no violation: the combinations holding it are gone).
            let (sweep, climb): (Vec<u32>, Vec<u32>) = nodes.into_iter().partition(|n| {
                input
                    .forest
                    .parent(*n)
                    .is_some_and(|p| input.forest.is_top(p))
            });
            if !sweep.is_empty() {
                self.suppress_everywhere(input, &sweep);
            }
            if !climb.is_empty() {
                self.climb(input, &climb)?;
            }
        }
    }

    /// Suppresses every occurrence of the leaves released as one of `nodes`.
    fn suppress_everywhere(&mut self, input: &KmInput<'_>, nodes: &[u32]) {
        for p in 0..input.sets.len() {
            for l in input.sets.get(p) {
                if self
                    .recode
                    .get(*l as usize)
                    .is_some_and(|r| nodes.contains(r))
                {
                    self.suppressed.push((p as u32, *l));
                }
            }
        }
        self.suppressed.sort_unstable();
        self.suppressed.dedup();
        self.utility = utility(input, &self.recode, &self.suppressed);
    }
}

/// Sets `recode[leaf]` to the highest target ancestor strictly above its current node.
fn apply_climbs(f: &ItemForest, recode: &mut [u32], target: &[bool]) {
    for r in recode.iter_mut() {
        let mut n = f.parent[*r as usize];
        let mut best = NONE;
        while n != NONE {
            if target[n as usize] {
                best = n;
            }
            n = f.parent[n as usize];
        }
        if best != NONE {
            *r = best;
        }
    }
}

fn utility(input: &KmInput<'_>, recode: &[u32], suppressed: &[(u32, u32)]) -> KmUtility {
    let f = input.forest;
    let mut per_kind: Vec<KindUtility> = (0..f.kinds())
        .map(|k| KindUtility {
            kind: f.hierarchies[k].name().to_string(),
            ..KindUtility::default()
        })
        .collect();
    // A leaf is generalized when its released label is not its own (see `relabelled`).
    let generalized = f.relabelled(recode);
    let mut seen = vec![false; f.leaves()];
    let mut leaf_supp = vec![false; f.leaves()];
    let mut loss = vec![0.0f64; f.kinds()];
    let mut persons_supp = 0;
    let mut persons_gen = 0;
    for p in 0..input.sets.len() {
        let (mut any_s, mut any_g) = (false, false);
        for l in input.sets.get(p) {
            let li = *l as usize;
            let Some(r) = recode.get(li).copied() else {
                continue;
            };
            let kind = f.kind(*l) as usize;
            let ku = &mut per_kind[kind];
            ku.occurrences += 1;
            seen[li] = true;
            if suppressed.binary_search(&(p as u32, *l)).is_ok() {
                ku.occurrences_suppressed += 1;
                leaf_supp[li] = true;
                loss[kind] += 1.0;
                any_s = true;
            } else if r != *l {
                loss[kind] += f.ncp(r);
                if generalized[li] {
                    ku.occurrences_generalized += 1;
                    any_g = true;
                }
            }
        }
        persons_supp += usize::from(any_s);
        persons_gen += usize::from(any_g);
    }
    for leaf in 0..f.leaves() {
        if !seen[leaf] {
            continue;
        }
        let l = leaf as u32;
        let ku = &mut per_kind[f.kind(l) as usize];
        ku.items += 1;
        let r = recode[leaf];
        if generalized[leaf] {
            ku.items_generalized += 1;
        }
        if f.is_top(r) && r != l {
            ku.items_at_top += 1;
        }
        if leaf_supp[leaf] {
            ku.items_suppressed += 1;
        }
    }
    let mut total = KindUtility {
        kind: "*".into(),
        ..KindUtility::default()
    };
    let mut total_loss = 0.0;
    for (ku, l) in per_kind.iter_mut().zip(&loss) {
        ku.information_loss = if ku.occurrences == 0 {
            0.0
        } else {
            l / ku.occurrences as f64
        };
        total.items += ku.items;
        total.items_generalized += ku.items_generalized;
        total.items_at_top += ku.items_at_top;
        total.items_suppressed += ku.items_suppressed;
        total.occurrences += ku.occurrences;
        total.occurrences_generalized += ku.occurrences_generalized;
        total.occurrences_suppressed += ku.occurrences_suppressed;
        total_loss += l;
    }
    total.information_loss = if total.occurrences == 0 {
        0.0
    } else {
        total_loss / total.occurrences as f64
    };
    KmUtility {
        persons: input.sets.len(),
        persons_with_suppression: persons_supp,
        persons_with_generalization: persons_gen,
        per_kind,
        total,
    }
}

// ---------------------------------------------------------------------------------------
// The search
// ---------------------------------------------------------------------------------------

/// An itemset packed into an integer, items high to low, so integer order is lexicographic
/// order for a fixed size: u64 for sizes 1–2 (the hot path), u128 for 3–4.
trait Packed: Copy + Ord + Send {
    fn pack(items: &[u32]) -> Self;
    fn unpack(self, size: usize) -> [u32; MAX_M];
}

/// One implementation for both widths (the hot path packs into u64).
macro_rules! packed {
    ($t:ty) => {
        impl Packed for $t {
            #[inline]
            fn pack(items: &[u32]) -> $t {
                items.iter().fold(0, |a: $t, x| (a << 32) | <$t>::from(*x))
            }
            fn unpack(self, size: usize) -> [u32; MAX_M] {
                let mut out = [NONE; MAX_M];
                let mut v = self;
                for i in (0..size).rev() {
                    out[i] = (v & 0xffff_ffff) as u32;
                    v >>= 32;
                }
                out
            }
        }
    };
}
packed!(u64);
packed!(u128);

/// Calls `f` with every `size`-subset of the sorted `set`, in lexicographic order.
#[inline]
fn for_each_subset(set: &[u32], size: usize, f: &mut impl FnMut(&[u32])) {
    let n = set.len();
    if size == 0 || size > n || size > MAX_M {
        return;
    }
    match size {
        1 => {
            for x in set {
                f(std::slice::from_ref(x));
            }
        }
        2 => {
            for i in 0..n {
                for j in i + 1..n {
                    f(&[set[i], set[j]]);
                }
            }
        }
        _ => {
            let mut idx = [0usize; MAX_M];
            let mut buf = [0u32; MAX_M];
            for (i, v) in idx.iter_mut().enumerate().take(size) {
                *v = i;
            }
            loop {
                for i in 0..size {
                    buf[i] = set[idx[i]];
                }
                f(&buf[..size]);
                let mut i = size;
                loop {
                    if i == 0 {
                        return;
                    }
                    i -= 1;
                    if idx[i] < n - size + i {
                        break;
                    }
                }
                idx[i] += 1;
                for j in i + 1..size {
                    idx[j] = idx[j - 1] + 1;
                }
            }
        }
    }
}

/// One QI class: its persons and their items, suppression flags and released sets.
struct Class {
    /// Original person indices.
    persons: Vec<u32>,
    /// Local CSR over `leaves`/`supp`/`rel`.
    off: Vec<usize>,
    leaves: Vec<u32>,
    supp: Vec<bool>,
    /// Released sets: person i's is `rel[off[i]..off[i] + rel_len[i]]`.
    rel: Vec<u32>,
    rel_len: Vec<u32>,
    /// Must be (re)counted this round.
    needs_scan: bool,
    /// Smallest violating itemset size found by the last scan (0 = none).
    violating: usize,
    /// The last scan, kept for the suppression step when its violations are few enough
    /// (otherwise that step recounts: memory stays bounded by one class's itemsets).
    kept: Option<Scan>,
}

/// What one class's count found.
struct Scan {
    /// Smallest violating size (0 = none).
    size: usize,
    /// Support of every released node in the class (sorted by node).
    singles: Vec<(u32, u32)>,
    /// Violating itemsets of that size (padded with NONE) with their support, sorted.
    violations: Vec<([u32; MAX_M], u32)>,
}

impl Class {
    fn released(&self, i: usize) -> &[u32] {
        &self.rel[self.off[i]..self.off[i] + self.rel_len[i] as usize]
    }

    /// Recomputes the released sets; marks the class for counting if any changed.
    fn refresh(&mut self, recode: &[u32], scratch: &mut Vec<u32>) {
        let mut changed = false;
        for i in 0..self.persons.len() {
            let (a, b) = (self.off[i], self.off[i + 1]);
            scratch.clear();
            for j in a..b {
                if !self.supp[j] {
                    scratch.push(recode[self.leaves[j] as usize]);
                }
            }
            scratch.sort_unstable();
            scratch.dedup();
            if self.rel[a..a + self.rel_len[i] as usize] != scratch[..] {
                changed = true;
                self.rel[a..a + scratch.len()].copy_from_slice(scratch);
                self.rel_len[i] = scratch.len() as u32;
            }
        }
        if changed {
            self.needs_scan = true;
        }
    }

    fn count<K: Packed>(&self, size: usize, keys: &mut Vec<K>) -> Vec<(K, u32)> {
        keys.clear();
        for i in 0..self.persons.len() {
            for_each_subset(self.released(i), size, &mut |s| keys.push(K::pack(s)));
        }
        keys.sort_unstable();
        let mut runs = Vec::new();
        let mut i = 0;
        while i < keys.len() {
            let mut j = i + 1;
            while j < keys.len() && keys[j] == keys[i] {
                j += 1;
            }
            runs.push((keys[i], (j - i) as u32));
            i = j;
        }
        runs
    }

    /// Counts sizes 1..=m, stopping at the first size with a violation (apriori: a size is
    /// only counted when every smaller itemset of the class is violation-free).
    fn scan(&self, k: u32, m: usize, only_size: Option<usize>) -> Scan {
        let mut k64: Vec<u64> = Vec::new();
        let singles: Vec<(u32, u32)> = self
            .count::<u64>(1, &mut k64)
            .into_iter()
            .map(|(key, c)| (key as u32, c))
            .collect();
        let mut out = Scan {
            size: 0,
            violations: Vec::new(),
            singles,
        };
        let sizes: Vec<usize> = match only_size {
            Some(s) => vec![s],
            None => (1..=m).collect(),
        };
        for size in sizes {
            let v: Vec<([u32; MAX_M], u32)> = if size == 1 {
                out.singles
                    .iter()
                    .filter(|(_, c)| *c < k)
                    .map(|(x, c)| {
                        let mut a = [NONE; MAX_M];
                        a[0] = *x;
                        (a, *c)
                    })
                    .collect()
            } else if size == 2 {
                self.count::<u64>(2, &mut k64)
                    .into_iter()
                    .filter(|(_, c)| *c < k)
                    .map(|(key, c)| (key.unpack(2), c))
                    .collect()
            } else {
                let mut k128: Vec<u128> = Vec::new();
                self.count::<u128>(size, &mut k128)
                    .into_iter()
                    .filter(|(_, c)| *c < k)
                    .map(|(key, c)| (key.unpack(size), c))
                    .collect()
            };
            if !v.is_empty() {
                out.size = size;
                out.violations = v;
                return out;
            }
        }
        out
    }
}

/// Per-round global figures the repair decisions need.
struct Costs<'f> {
    forest: &'f ItemForest,
    /// `climb[p]`: cost of releasing everything under `p` as `p`.
    climb: Vec<f64>,
    suppression_weight: f64,
}

impl Costs<'_> {
    /// The cheapest climb target of the itemset's non-top items, if any. An item's target is
    /// its first ancestor that covers more codes than it does: an ancestor over the same codes
    /// (a 4-character ICD-10 code alone in its category) hides nothing, and climbing to it
    /// would cost precision for no privacy.
    fn best_target(&self, items: &[u32]) -> Option<u32> {
        let f = self.forest;
        items
            .iter()
            .filter_map(|x| {
                let mut a = f.parent(*x)?;
                while f.leaves_under(a) == f.leaves_under(*x) {
                    a = f.parent(a)?;
                }
                Some(a)
            })
            .min_by(|a, b| {
                self.climb[*a as usize]
                    .total_cmp(&self.climb[*b as usize])
                    .then(a.cmp(b))
            })
    }
}

/// Finds a global recoding plus local suppression under which every combination of a
/// person's QI class with m or fewer of their released items is held by at least k persons
/// of that class (see the module documentation for the algorithm). Deterministic.
pub fn km_anonymize(input: &KmInput<'_>) -> Result<KmSolution, AnonError> {
    let f = input.forest;
    let n_persons = input.sets.len();
    if input.k == 0 {
        return Err(AnonError::Config("k must be at least 1".into()));
    }
    if input.m == 0 || input.m > MAX_M {
        return Err(AnonError::Config(format!(
            "m must be between 1 and {MAX_M}"
        )));
    }
    if !(input.suppression_weight >= 0.0 && input.suppression_weight.is_finite()) {
        return Err(AnonError::Config(
            "suppression_weight must be a finite number ≥ 0".into(),
        ));
    }
    if input.qi_class.len() != n_persons {
        return Err(AnonError::Config(
            "qi_class must have one entry per person".into(),
        ));
    }
    let n_leaves = f.leaves();
    if let Some(p) = (0..n_persons).find(|p| {
        input
            .sets
            .get(*p)
            .last()
            .is_some_and(|x| *x as usize >= n_leaves)
    }) {
        return Err(AnonError::Table {
            path: "<item sets>".into(),
            line: p + 1,
            reason: "item id is not a leaf of the item forest".into(),
        });
    }
    let k = u32::try_from(input.k).unwrap_or(u32::MAX);
    let m = input.m;

    // Group persons by QI class (stable: person order within a class).
    let mut order: Vec<u32> = (0..n_persons as u32).collect();
    order.sort_by_key(|p| (input.qi_class[*p as usize], *p));
    let mut classes: Vec<Class> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let c = input.qi_class[order[i] as usize];
        let mut j = i;
        let mut cls = Class {
            persons: Vec::new(),
            off: vec![0],
            leaves: Vec::new(),
            supp: Vec::new(),
            rel: Vec::new(),
            rel_len: Vec::new(),
            needs_scan: true,
            violating: 0,
            kept: None,
        };
        while j < order.len() && input.qi_class[order[j] as usize] == c {
            let p = order[j];
            let items = input.sets.get(p as usize);
            cls.persons.push(p);
            cls.leaves.extend_from_slice(items);
            cls.rel.extend_from_slice(items);
            cls.rel_len.push(items.len() as u32);
            cls.off.push(cls.leaves.len());
            j += 1;
        }
        cls.supp = vec![false; cls.leaves.len()];
        classes.push(cls);
        i = j;
    }

    let mut recode: Vec<u32> = (0..n_leaves as u32).collect();
    let n_nodes = f.nodes();
    let mut rounds = 0;
    loop {
        rounds += 1;
        // 1. released sets
        classes
            .par_iter_mut()
            .for_each_with(Vec::new(), |scratch, c| c.refresh(&recode, scratch));
        // 2. holders of every released node, and the cost of every possible climb
        let holders: Vec<u32> = classes
            .par_iter()
            .fold(
                || vec![0u32; n_nodes],
                |mut h, c| {
                    for i in 0..c.persons.len() {
                        for x in c.released(i) {
                            h[*x as usize] += 1;
                        }
                    }
                    h
                },
            )
            .reduce(
                || vec![0u32; n_nodes],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(b) {
                        *x += y;
                    }
                    a
                },
            );
        let mut climb = vec![0.0f64; n_nodes];
        for (n, h) in holders.iter().enumerate() {
            if *h == 0 {
                continue;
            }
            let n = n as u32;
            let total = f.kind_leaves(f.kind(n) as usize).saturating_sub(1).max(1) as f64;
            let mut a = f.parent[n as usize];
            while a != NONE {
                climb[a as usize] += f64::from(*h)
                    * match input.cost {
                        KmCost::OccurrencesAffected => 1.0,
                        KmCost::InformationLoss => {
                            f64::from(f.leaves_under(a) - f.leaves_under(n)) / total
                        }
                    };
                a = f.parent[a as usize];
            }
        }
        let costs = Costs {
            forest: f,
            climb,
            suppression_weight: input.suppression_weight,
        };
        // 3. count changed classes; each violation credits its cheapest climb
        let gains: Vec<Vec<(u32, f64)>> = classes
            .par_iter_mut()
            .map(|c| {
                if !c.needs_scan {
                    return Vec::new();
                }
                let scan = c.scan(k, m, None);
                c.violating = scan.size;
                c.needs_scan = scan.size != 0;
                c.kept = None;
                let mut g: Vec<(u32, f64)> = scan
                    .violations
                    .iter()
                    .filter_map(|(items, s)| {
                        costs
                            .best_target(&items[..scan.size])
                            .map(|t| (t, f64::from(*s) * costs.suppression_weight))
                    })
                    .collect();
                if scan.size != 0 && scan.violations.len() <= KEEP_VIOLATIONS {
                    c.kept = Some(scan);
                }
                g.sort_by_key(|(t, _)| *t);
                g.dedup_by(|b, a| {
                    if a.0 == b.0 {
                        a.1 += b.1;
                        true
                    } else {
                        false
                    }
                });
                g
            })
            .collect();
        if classes.iter().all(|c| c.violating == 0) {
            break;
        }
        let mut gain = vec![0.0f64; n_nodes];
        for g in &gains {
            for (t, v) in g {
                gain[*t as usize] += v;
            }
        }
        let mut target = vec![false; n_nodes];
        let mut any_climb = false;
        for (t, g) in gain.iter().enumerate() {
            if *g > 0.0 && costs.climb[t] <= *g {
                target[t] = true;
                any_climb = true;
            }
        }
        // nodes a climb changes or enlarges: violations holding them wait for the next round
        let mut touched = target.clone();
        if any_climb {
            for (n, h) in holders.iter().enumerate() {
                if *h == 0 {
                    continue;
                }
                let mut a = f.parent[n];
                while a != NONE {
                    if target[a as usize] {
                        touched[n] = true;
                        break;
                    }
                    a = f.parent[a as usize];
                }
            }
        }
        // 4. suppress the violations no climb touches
        let suppressed: usize = classes
            .par_iter_mut()
            .filter(|c| c.violating != 0)
            .map(|c| suppress(c, k, m, &recode, &touched))
            .sum();
        if !any_climb && suppressed == 0 {
            // unreachable: a violation always has holders to suppress from
            return Err(AnonError::Config(
                "k^m search made no progress (internal error)".into(),
            ));
        }
        // 5. climbs
        if any_climb {
            apply_climbs(f, &mut recode, &target);
        }
    }

    let mut suppressed: Vec<(u32, u32)> = classes
        .iter()
        .flat_map(|c| {
            (0..c.persons.len()).flat_map(move |i| {
                (c.off[i]..c.off[i + 1])
                    .filter(|j| c.supp[*j])
                    .map(move |j| (c.persons[i], c.leaves[j]))
            })
        })
        .collect();
    suppressed.sort_unstable();
    let utility = utility(input, &recode, &suppressed);
    Ok(KmSolution {
        recode,
        suppressed,
        utility,
        rounds,
    })
}

/// Suppresses, in one class, every violation of the class's violating size that no climb of
/// this round touches: each holder loses one item of the itemset (chosen once per itemset),
/// unless an earlier removal already broke the itemset for that holder. Returns the number of
/// occurrences suppressed.
fn suppress(c: &mut Class, k: u32, m: usize, recode: &[u32], touched: &[bool]) -> usize {
    let size = c.violating;
    let scan = match c.kept.take() {
        Some(s) => s,
        None => c.scan(k, m, Some(size)),
    };
    c.violating = 0;
    c.needs_scan = true;
    let slot = |x: u32| scan.singles.binary_search_by_key(&x, |(n, _)| *n).ok();
    let mut active: Vec<([u32; MAX_M], u32)> = Vec::new();
    for (items, s) in &scan.violations {
        if items[..size].iter().any(|x| touched[*x as usize]) {
            continue;
        }
        // Prefer an item whose class support stays 0 or ≥ k after this removal, then the
        // rarest. (Accounting for the other removals of the round was tried: it drives common
        // items to 0 and suppressed more.)
        let Some(y) = items[..size]
            .iter()
            .filter_map(|x| slot(*x).map(|i| (*x, scan.singles[i].1)))
            .min_by_key(|(x, sx)| {
                let rest = sx.saturating_sub(*s);
                (rest != 0 && rest < k, *sx, *x)
            })
            .map(|(x, _)| x)
        else {
            continue;
        };
        active.push((*items, y));
    }
    if active.is_empty() {
        return 0;
    }
    // posting lists: (node, person) pairs of the class, sorted
    let mut post: Vec<(u32, u32)> = Vec::with_capacity(c.rel.len());
    for i in 0..c.persons.len() {
        post.extend(c.released(i).iter().map(|x| (*x, i as u32)));
    }
    post.sort_unstable();
    let list = |x: u32| -> &[(u32, u32)] {
        let lo = post.partition_point(|(n, _)| *n < x);
        let hi = post.partition_point(|(n, _)| *n <= x);
        &post[lo..hi]
    };
    // each holder of each active violation loses its chosen item, unless an earlier
    // removal already broke the itemset for that holder
    let mut removed: Vec<Vec<u32>> = vec![Vec::new(); c.persons.len()];
    for (items, y) in &active {
        let items = &items[..size];
        let Some(shortest) = items.iter().map(|x| list(*x)).min_by_key(|l| l.len()) else {
            continue;
        };
        for (_, i) in shortest {
            let i = *i as usize;
            let set = c.released(i);
            if items.iter().all(|x| set.binary_search(x).is_ok())
                && !items.iter().any(|x| removed[i].contains(x))
            {
                removed[i].push(*y);
            }
        }
    }
    let mut count = 0;
    for (i, rem) in removed.iter().enumerate() {
        if rem.is_empty() {
            continue;
        }
        for j in c.off[i]..c.off[i + 1] {
            if !c.supp[j] && rem.contains(&recode[c.leaves[j] as usize]) {
                c.supp[j] = true;
                count += 1;
            }
        }
    }
    count
}

// ---------------------------------------------------------------------------------------
// Independent checker
// ---------------------------------------------------------------------------------------

/// Violations of (k, k^m)-anonymity in released data, counted by brute force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KmViolations {
    /// (QI class, itemset of 1..=m items) pairs held by 1..k−1 persons.
    pub count: usize,
    /// `by_size[i]`: violating itemsets of i + 1 items.
    pub by_size: Vec<usize>,
    /// Persons holding at least one violating itemset.
    pub persons_affected: usize,
    /// Persons in QI classes of fewer than k persons (a violation of the relational part,
    /// which no item treatment repairs: the QI generalization must).
    pub persons_in_small_classes: usize,
    /// Distinct (class, itemset) pairs counted.
    pub itemsets_checked: usize,
}

impl KmViolations {
    /// No violation of either part.
    pub fn is_clean(&self) -> bool {
        self.count == 0 && self.persons_in_small_classes == 0
    }
}

fn checker_subsets<T: Clone>(
    set: &[T],
    max: usize,
    start: usize,
    cur: &mut Vec<T>,
    out: &mut dyn FnMut(&[T]),
) {
    for i in start..set.len() {
        cur.push(set[i].clone());
        out(cur);
        if cur.len() < max {
            checker_subsets(set, max, i + 1, cur, out);
        }
        cur.pop();
    }
}

/// Counts the violations of (k, k^m)-anonymity: for every person, every non-empty subset of
/// at most `m` of their released items (duplicates ignored) together with their QI class
/// must be held by at least `k` persons. Deliberately naive — each subset of each person is
/// enumerated and counted in a hash map — and independent of [`km_anonymize`], so that tests
/// and the risk report do not trust the engine's own bookkeeping. Works on any item type (ids
/// or released labels). Cost: Σ_persons Σ_{i≤m} C(|set|, i).
pub fn km_violations<T: Ord + Hash + Clone>(
    k: usize,
    m: usize,
    qi_class: &[u32],
    released: &[Vec<T>],
) -> Result<KmViolations, AnonError> {
    if qi_class.len() != released.len() {
        return Err(AnonError::Config(
            "qi_class must have one entry per person".into(),
        ));
    }
    let sets: Vec<Vec<T>> = released
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.sort();
            s.dedup();
            s
        })
        .collect();
    let mut class_size: HashMap<u32, usize> = HashMap::new();
    for c in qi_class {
        *class_size.entry(*c).or_insert(0) += 1;
    }
    let mut counts: HashMap<(u32, Vec<T>), usize> = HashMap::new();
    for (set, c) in sets.iter().zip(qi_class) {
        checker_subsets(set, m, 0, &mut Vec::new(), &mut |sub: &[T]| {
            *counts.entry((*c, sub.to_vec())).or_insert(0) += 1;
        });
    }
    let mut out = KmViolations {
        by_size: vec![0; m],
        itemsets_checked: counts.len(),
        ..KmViolations::default()
    };
    for ((_, items), n) in &counts {
        if *n < k {
            out.count += 1;
            out.by_size[items.len() - 1] += 1;
        }
    }
    let mut affected: HashSet<usize> = HashSet::new();
    for (p, (set, c)) in sets.iter().zip(qi_class).enumerate() {
        let mut hit = false;
        checker_subsets(set, m, 0, &mut Vec::new(), &mut |sub: &[T]| {
            if !hit && counts.get(&(*c, sub.to_vec())).is_some_and(|n| *n < k) {
                hit = true;
            }
        });
        if hit {
            affected.insert(p);
        }
        if class_size.get(c).is_some_and(|s| *s < k) {
            out.persons_in_small_classes += 1;
        }
    }
    out.persons_affected = affected.len();
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Cross-table implication
// ---------------------------------------------------------------------------------------

/// A released node implied by a hidden one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Implication {
    /// The released node (to climb).
    pub released: u32,
    /// The hidden node of another kind that its holders mostly hold.
    pub hidden: u32,
    /// Share of the released node's holders who hold the hidden one.
    pub share: f64,
}

/// The cross-table rule (issue 13, Deliver 4): a released code whose holders are, for at
/// least `min_share` of them ([`DEFAULT_IMPLICATION_SHARE`] = 0.8), holders of a *hidden*
/// (generalized or suppressed) code of *another kind* reveals that code — a drug given almost
/// only for a suppressed disease names the disease — so the caller must treat it too (climb
/// it, e.g. with [`KmSolution::climb`]). Same-kind pairs are ignored: a released ancestor
/// always contains its hidden children. For each implied released node the hidden node with
/// the highest share is given (ties: lowest id); sorted by released node. Holder lists must be
/// sorted and distinct. Pass as `hidden` only the codes that are rare (see
/// [`KmSolution::hidden_items`]); a common hidden code implies nothing sensitive.
pub fn implied_items(
    released: &[HolderSet],
    hidden: &[HolderSet],
    min_share: f64,
) -> Result<Vec<Implication>, AnonError> {
    if !(min_share > 0.0 && min_share <= 1.0) {
        return Err(AnonError::Config("min_share must be in (0, 1]".into()));
    }
    // person → hidden sets they hold
    let mut by_person: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, h) in hidden.iter().enumerate() {
        for p in &h.holders {
            by_person.entry(*p).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    let mut hits: HashMap<usize, usize> = HashMap::new();
    for r in released {
        if r.holders.is_empty() {
            continue;
        }
        hits.clear();
        for p in &r.holders {
            for h in by_person.get(p).into_iter().flatten() {
                if hidden[*h].kind != r.kind {
                    *hits.entry(*h).or_insert(0) += 1;
                }
            }
        }
        let best = hits
            .iter()
            .map(|(h, n)| (*n as f64 / r.holders.len() as f64, hidden[*h].node))
            .filter(|(s, _)| *s >= min_share)
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
        if let Some((share, node)) = best {
            out.push(Implication {
                released: r.node,
                hidden: node,
                share,
            });
        }
    }
    out.sort_by_key(|i| i.released);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hierarchy::{icd10, yj_code};

    fn dx_forest(codes: &[&str]) -> ItemForest {
        ItemForest::from_hierarchies(vec![icd10("dx", codes, &[]).unwrap()]).unwrap()
    }

    fn check(input: &KmInput<'_>, sol: &KmSolution) -> KmViolations {
        km_violations(
            input.k,
            input.m,
            input.qi_class,
            &sol.released_sets(input.sets),
        )
        .unwrap()
    }

    #[test]
    fn forest_nodes_parents_and_labels() {
        let f = ItemForest::from_hierarchies(vec![
            icd10("dx", &["E11.9", "E11.2", "I21.0"], &[]).unwrap(),
            // no single top label: a synthetic "*" is added
            Hierarchy::from_rows(
                "flag",
                vec![vec!["a".into(), "x".into()], vec!["b".into(), "y".into()]],
            )
            .unwrap(),
        ])
        .unwrap();
        assert_eq!(f.kinds(), 2);
        assert_eq!(f.leaves(), 5);
        let e119 = f.item(0, "E11.9").unwrap();
        let a = f.item(1, "a").unwrap();
        assert_eq!((e119, a), (0, 3));
        let e11 = f.parent(e119).unwrap();
        assert_eq!(f.label(e11), "E11");
        assert_eq!(f.parent(f.item(0, "E11.2").unwrap()), Some(e11));
        let ch = f.parent(e11).unwrap();
        assert_eq!(f.label(ch), "Chapter IV");
        let top = f.parent(ch).unwrap();
        assert_eq!(Some(top), f.top(0));
        assert!(f.is_top(top));
        assert_eq!(f.leaves_under(e11), 2);
        assert_eq!(f.leaves_under(top), 3);
        let x = f.parent(a).unwrap();
        assert_eq!(f.label(x), "x");
        let t1 = f.parent(x).unwrap();
        assert_eq!(Some(t1), f.top(1));
        assert_eq!(f.label(t1), "*");
        assert_eq!(f.kind(t1), 1);
        assert_eq!(f.leaves_under(t1), 2);
        assert!(f.is_ancestor_or_self(t1, a) && !f.is_ancestor_or_self(top, a));
        assert_eq!(f.item(1, "E11.9"), None);
        assert!(ItemForest::from_hierarchies(vec![]).is_err());
    }

    #[test]
    fn rare_codes_climb_when_cheap_and_are_suppressed_when_not() {
        // leaves: E11.9 = 0, E11.2 = 1, E10.1 = 2, I21.0 = 3; one QI class, k = 2, m = 1.
        let f = dx_forest(&["E11.9", "E11.2", "E10.1", "I21.0"]);
        let sets = ItemSets::from_lists(vec![vec![0], vec![0], vec![1], vec![2]]);
        let qi = [7, 7, 7, 7];
        let input = KmInput::new(2, 1, &f, &qi, &sets);
        let sol = km_anonymize(&input).unwrap();
        // Round 1: {E11.2} and {E10.1} have 1 holder. Climbing to E11 moves E11.9 (2 holders)
        // and E11.2 (1) by 1/3 each: cost 1.0 ≤ the suppression it saves (1): climb. E10 covers
        // E10.1 alone (it would hide nothing): E10.1's first target is chapter IV, which would
        // cost 3 × 1/3 + 1 × 2/3 = 1.67 > 1: E10.1 is suppressed for person 3, and keeps its
        // own label for nobody else.
        let e11 = f.parent(0).unwrap();
        assert_eq!(sol.recode, vec![e11, e11, 2, 3]);
        assert_eq!(sol.suppressed, vec![(3, 2)]);
        assert_eq!(check(&input, &sol).count, 0);
        let u = &sol.utility.total;
        assert_eq!(
            (u.items, u.items_generalized, u.items_suppressed),
            (3, 2, 1)
        );
        assert_eq!(
            (
                u.occurrences,
                u.occurrences_generalized,
                u.occurrences_suppressed
            ),
            (4, 3, 1)
        );
        assert_eq!(sol.utility.persons_with_suppression, 1);
        assert_eq!(sol.utility.persons_with_generalization, 3);
        // E11 has 2 of 4 leaves: NCP 1/3 for three occurrences, 1 for the suppressed one
        assert!((u.information_loss - (1.0 + 1.0) / 4.0).abs() < 1e-9);

        // Counting occurrences instead: climbing to E11 changes 3 occurrences to save one
        // suppression, so E11.2 is suppressed; E10.1's first target, chapter IV (3
        // occurrences), loses to suppression too.
        let input = KmInput {
            cost: KmCost::OccurrencesAffected,
            ..input
        };
        let sol = km_anonymize(&input).unwrap();
        assert_eq!(sol.recode, vec![0, 1, 2, 3]);
        assert_eq!(sol.suppressed, vec![(2, 1), (3, 2)]);
        assert_eq!(check(&input, &sol).count, 0);
    }

    #[test]
    fn a_code_climbed_to_an_ancestor_of_its_own_label_is_not_counted_as_generalized() {
        // leaves: J00 = 0 (a 3-character code: its category is `J00` too), E11.9 = 1,
        // E11.2 = 2. Two holders each, one class: k = 2 holds, nothing changes.
        let f = dx_forest(&["J00", "E11.9", "E11.2"]);
        let sets = ItemSets::from_lists(vec![vec![0, 1], vec![0, 1], vec![2], vec![2]]);
        let qi = [0; 4];
        let input = KmInput::new(2, 1, &f, &qi, &sets);
        let mut sol = km_anonymize(&input).unwrap();
        assert_eq!(sol.utility.total.items_generalized, 0);
        // J00 climbs to its category (same label), E11.9 to E11 (taking E11.2 along).
        sol.climb(&input, &[0, 1]).unwrap();
        let j00 = f.parent(0).unwrap();
        assert_eq!((f.label(j00), sol.recode[0]), ("J00", j00));
        assert_eq!(f.label(sol.recode[1]), "E11");
        let u = &sol.utility.total;
        // Only the E11 codes are released under another label: 2 of 3 codes, 4 of 6
        // occurrences, persons 0–3 all hold one.
        assert_eq!((u.items, u.items_generalized, u.items_at_top), (3, 2, 0));
        assert_eq!((u.occurrences, u.occurrences_generalized), (6, 4));
        assert_eq!(sol.utility.persons_with_generalization, 4);
        // Chapter X climbs to the top, which takes the E11 codes along (a cut).
        sol.climb(&input, &[j00, f.parent(j00).unwrap()]).unwrap();
        assert!(sol.recode.iter().all(|r| f.is_top(*r)));
        let u = &sol.utility.total;
        assert_eq!((u.items_generalized, u.items_at_top), (3, 3));
        assert_eq!(u.occurrences_generalized, 6);
    }

    #[test]
    fn pair_violation_suppresses_the_item_that_creates_no_new_violation() {
        // dx E11.9 = 0; drugs A = 1, B = 2 (same ingredient prefix).
        let f = ItemForest::from_hierarchies(vec![
            icd10("dx", &["E11.9"], &[]).unwrap(),
            yj_code("drug", &["3962002F1010", "3962002F1020"]).unwrap(),
        ])
        .unwrap();
        let (a, b) = (1, 2);
        let sets = ItemSets::from_lists(vec![vec![0, a], vec![0, a], vec![0, b], vec![0, a, b]]);
        let qi = [0; 4];
        let input = KmInput::new(2, 2, &f, &qi, &sets);
        // singletons fine (E11.9: 4, A: 3, B: 2); the pair {A, B} has 1 holder. Climbing A
        // and B to their ingredient moves 5 occurrences by a whole kind (cost 5 > 1), so
        // person 3 loses one of them: A (3 → 2 holders, still ≥ k), not B (2 → 1).
        let sol = km_anonymize(&input).unwrap();
        assert_eq!(sol.recode, vec![0, 1, 2]);
        assert_eq!(sol.suppressed, vec![(3, a)]);
        assert_eq!(sol.released(&sets, 3), vec![0, b]);
        assert_eq!(check(&input, &sol).count, 0);
        assert_eq!(sol.utility.per_kind[1].occurrences_suppressed, 1);
        assert_eq!(sol.utility.per_kind[0].occurrences_suppressed, 0);
    }

    #[test]
    fn k_anonymous_input_is_returned_unchanged() {
        let f = dx_forest(&["E11.9", "E11.2", "I21.0"]);
        let sets = ItemSets::from_lists(vec![
            vec![0, 2],
            vec![0, 2],
            vec![1],
            vec![1],
            vec![0, 1, 2],
            vec![0, 1, 2],
        ]);
        let qi = [1, 1, 1, 1, 2, 2];
        for m in 1..=MAX_M {
            let input = KmInput::new(2, m, &f, &qi, &sets);
            let sol = km_anonymize(&input).unwrap();
            assert_eq!(sol.recode, vec![0, 1, 2]);
            assert!(sol.suppressed.is_empty());
            assert_eq!(sol.rounds, 1);
            assert_eq!(sol.utility.total.information_loss, 0.0);
        }
    }

    #[test]
    fn persons_in_too_small_classes_lose_their_items() {
        let f = dx_forest(&["E11.9", "I21.0"]);
        let sets = ItemSets::from_lists(vec![vec![0], vec![0], vec![0, 1], vec![0]]);
        let qi = [0, 0, 0, 9];
        let input = KmInput::new(3, 2, &f, &qi, &sets);
        let sol = km_anonymize(&input).unwrap();
        let v = check(&input, &sol);
        assert_eq!(v.count, 0);
        assert_eq!(v.persons_in_small_classes, 1);
        assert!(!v.is_clean());
        assert!(sol.released(&sets, 3).is_empty());
        assert_eq!(sol.released(&sets, 0).len(), 1);
    }

    #[test]
    fn checker_counts_a_planted_violation() {
        // class 0: {1,2}, {1,2}, {1,3}; class 1: {1,2}, {1,2}. k = 2, m = 2.
        let rel = vec![
            vec![1u32, 2],
            vec![2, 1, 1],
            vec![1, 3],
            vec![1, 2],
            vec![1, 2],
        ];
        let qi = [0, 0, 0, 1, 1];
        let v = km_violations(2, 2, &qi, &rel).unwrap();
        // {3} and {1,3} in class 0 have one holder (person 2)
        assert_eq!(v.count, 2);
        assert_eq!(v.by_size, vec![1, 1]);
        assert_eq!(v.persons_affected, 1);
        assert_eq!(v.persons_in_small_classes, 0);
        // class 0: {1},{2},{3},{1,2},{1,3}; class 1: {1},{2},{1,2}
        assert_eq!(v.itemsets_checked, 8);
        // with m = 1 only {3}; with k = 3 everything in class 1 and {2}, {1,2} in class 0
        assert_eq!(km_violations(2, 1, &qi, &rel).unwrap().count, 1);
        let v3 = km_violations(3, 2, &qi, &rel).unwrap();
        assert_eq!((v3.count, v3.persons_affected), (7, 5));
        assert_eq!(v3.persons_in_small_classes, 2);
        // labels work as well as ids
        let labels: Vec<Vec<&str>> = vec![vec!["E11", "*"], vec!["E11", "*"], vec!["E11"]];
        let v = km_violations(2, 2, &[0, 0, 0], &labels).unwrap();
        assert_eq!((v.count, v.persons_affected), (0, 0));
        assert!(v.is_clean());
        assert!(km_violations(2, 2, &[0], &labels).is_err());
    }

    #[test]
    fn drug_given_only_for_a_hidden_disease_climbs_with_it() {
        // dx: E85.1 = 0, E85.2 = 1, E11.9 = 2; drugs: tafamidis = 3, metformin = 4
        let f = ItemForest::from_hierarchies(vec![
            icd10("dx", &["E85.1", "E85.2", "E11.9"], &[]).unwrap(),
            yj_code("drug", &["1190037M1020", "3962002F1010"]).unwrap(),
        ])
        .unwrap();
        let sets = ItemSets::from_lists(vec![
            vec![0, 3],
            vec![0, 3],
            vec![1, 4],
            vec![2, 4],
            vec![2],
        ]);
        let qi = [0; 5];
        let input = KmInput {
            suppression_weight: 2.0,
            ..KmInput::new(2, 1, &f, &qi, &sets)
        };
        let mut sol = km_anonymize(&input).unwrap();
        // E85.2 (1 holder) climbs to E85, taking E85.1 along; tafamidis (2 holders) stays —
        // and tells which E85 holders have E85.1.
        let e85 = f.parent(0).unwrap();
        assert_eq!(sol.recode[..3], [e85, e85, 2]);
        assert_eq!(sol.recode[3], 3);
        let released = sol.released_holders(&input);
        let hidden = sol.hidden_items(&input, 2);
        assert_eq!(
            hidden.iter().map(|h| h.node).collect::<Vec<_>>(),
            vec![0, 1]
        );
        let imp = implied_items(&released, &hidden, DEFAULT_IMPLICATION_SHARE).unwrap();
        assert_eq!(
            imp,
            vec![Implication {
                released: 3,
                hidden: 0,
                share: 1.0
            }]
        );
        // metformin: half its holders have the hidden E85.2 — implied only at share ≤ 0.5
        let imp = implied_items(&released, &hidden, 0.5).unwrap();
        assert_eq!(
            imp.iter().map(|i| i.released).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert!(implied_items(&released, &hidden, 0.0).is_err());
        // tafamidis climbs ingredient → class; the class, just under the top, is not climbed
        // (in a cut the top would take metformin and every other drug along): its
        // occurrences are suppressed for everybody instead.
        let climbs = sol
            .climb_implied(&input, DEFAULT_IMPLICATION_SHARE, 2)
            .unwrap();
        assert_eq!(climbs, 3);
        let top = f.top(1).unwrap();
        assert_ne!(sol.recode[3], top);
        assert_eq!(sol.recode[4], 4, "metformin stays as it is");
        assert!(sol.suppressed.contains(&(0, 3)) && sol.suppressed.contains(&(1, 3)));
        assert!(sol.released(&sets, 0).iter().all(|n| f.kind(*n) == 0));
        assert_eq!(check(&input, &sol).count, 0);
        assert_eq!(sol.utility.per_kind[1].items_at_top, 0);
    }

    #[test]
    fn a_code_under_its_own_label_implies_nothing() {
        // dx: J00 = 0 (its category is `J00` too), E11.9 = 1; drugs: A = 2, B = 3. A is
        // given only to the two J00 holders.
        let f = ItemForest::from_hierarchies(vec![
            icd10("dx", &["J00", "E11.9"], &[]).unwrap(),
            yj_code("drug", &["1190037M1020", "3962002F1010"]).unwrap(),
        ])
        .unwrap();
        let sets = ItemSets::from_lists(vec![vec![0, 2], vec![0, 2], vec![1, 3], vec![1, 3]]);
        let qi = [0; 4];
        let input = KmInput::new(2, 1, &f, &qi, &sets);
        let mut sol = km_anonymize(&input).unwrap();
        // J00 released as its category: the same label, nothing hidden, A reveals nothing new.
        sol.climb(&input, &[0]).unwrap();
        assert!(sol.hidden_items(&input, 2).is_empty());
        assert_eq!(
            sol.climb_implied(&input, DEFAULT_IMPLICATION_SHARE, 2)
                .unwrap(),
            0
        );
        assert_eq!(sol.recode[2], 2);
        // J00 released as its chapter is hidden, and A climbs with it.
        sol.climb(&input, &[f.parent(0).unwrap()]).unwrap();
        let hidden = sol.hidden_items(&input, 2);
        assert_eq!(hidden.iter().map(|h| h.node).collect::<Vec<_>>(), vec![0]);
        assert!(
            sol.climb_implied(&input, DEFAULT_IMPLICATION_SHARE, 2)
                .unwrap()
                > 0
        );
        assert_ne!(sol.recode[2], 2);
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let f = dx_forest(&["E11.9"]);
        let sets = ItemSets::from_lists(vec![vec![0], vec![5]]);
        let qi = [0, 0];
        let e = km_anonymize(&KmInput::new(2, 1, &f, &qi, &sets)).unwrap_err();
        assert!(matches!(e, AnonError::Table { line: 2, .. }), "{e}");
        let ok = ItemSets::from_lists(vec![vec![0], vec![0]]);
        assert!(km_anonymize(&KmInput::new(2, 0, &f, &qi, &ok)).is_err());
        assert!(km_anonymize(&KmInput::new(2, MAX_M + 1, &f, &qi, &ok)).is_err());
        assert!(km_anonymize(&KmInput::new(0, 1, &f, &qi, &ok)).is_err());
        assert!(km_anonymize(&KmInput::new(2, 1, &f, &[0], &ok)).is_err());
        let bad_w = KmInput {
            suppression_weight: f64::NAN,
            ..KmInput::new(2, 1, &f, &qi, &ok)
        };
        assert!(km_anonymize(&bad_w).is_err());
        assert!(ItemSets::new(vec![0, 2], vec![3, 1]).is_err());
        assert!(ItemSets::new(vec![0, 2], vec![1]).is_err());
        assert!(ItemSets::new(vec![0, 1, 2], vec![1, 1]).is_ok());
    }

    #[test]
    fn subsets_enumerate_in_lexicographic_order() {
        let mut got = Vec::new();
        for_each_subset(&[1, 2, 3, 4], 3, &mut |s| got.push(s.to_vec()));
        assert_eq!(
            got,
            vec![vec![1, 2, 3], vec![1, 2, 4], vec![1, 3, 4], vec![2, 3, 4]]
        );
        let mut n = 0;
        for_each_subset(&[1, 2, 3, 4, 5, 6], 4, &mut |_| n += 1);
        assert_eq!(n, 15);
        for_each_subset(&[1], 2, &mut |_| n += 1);
        assert_eq!(n, 15);
        assert_eq!(u64::pack(&[3, 9]).unpack(2)[..2], [3, 9]);
        assert_eq!(u128::pack(&[3, 9, 11]).unpack(3)[..3], [3, 9, 11]);
    }
}
