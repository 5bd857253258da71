//! Property tests of THE gate (R-OPT-2, R-OPT-3, R-OPT-4, R-OPT-6, R-OPT-7): random
//! timelines of notices (of notice versions with and without their own waiting period),
//! stops, withdrawals, deletions, consents and withdrawals of consent across several
//! handlers, and random data-arrival dates. `decide` is checked against an independently written oracle (a
//! day-by-day state machine) and against the safety rules stated directly on the timeline.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};
use kiban_consent::{ConsentEvent, Eligibility, EventKind, HandlerState, Reason, decide};
use proptest::prelude::*;

fn base() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()
}

fn day(n: u16) -> NaiveDate {
    base() + Days::new(u64::from(n))
}

fn kind_strategy() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        3 => Just(EventKind::Notice),
        2 => Just(EventKind::Stop),
        2 => Just(EventKind::Withdraw),
        1 => Just(EventKind::Delete),
        1 => Just(EventKind::Consent),
        1 => Just(EventKind::ConsentWithdraw),
    ]
}

/// Notice versions: none, `v1` (its own waiting period, if the handler's map has it) or
/// `v2` (never in the map: the handler's period).
fn version(v: u8) -> Option<String> {
    match v {
        1 => Some("v1".into()),
        2 => Some("v2".into()),
        _ => None,
    }
}

fn event_day() -> impl Strategy<Value = u16> {
    prop_oneof![3 => 0u16..100, 1 => prop::sample::select(vec![10u16, 20, 40, 70])]
}

fn handler_strategy(code: &'static str) -> impl Strategy<Value = HandlerState> {
    (
        proptest::option::weighted(0.85, 0u16..60),
        proptest::option::weighted(0.85, 0u16..60),
        proptest::option::weighted(0.85, 0u16..60),
        0u32..40,
        proptest::option::weighted(0.6, 0u32..40),
    )
        .prop_map(move |(f, m, o, w, v1)| HandlerState {
            code: code.to_string(),
            filed_date: f.map(day),
            minister_published_date: m.map(day),
            own_published_date: o.map(day),
            waiting_days: w,
            notice_waiting_days: v1.map(|d| ("v1".to_string(), d)).into_iter().collect(),
        })
}

/// A world: three handlers, events of a few patients at each, and data arrivals.
#[derive(Debug, Clone)]
struct World {
    handlers: Vec<HandlerState>,
    /// (handler index, patient, kind, day, notice version)
    events: Vec<(usize, u8, EventKind, u16, u8)>,
    /// (handler index, patient, day)
    arrivals: Vec<(usize, u8, u16)>,
}

fn world_strategy() -> impl Strategy<Value = World> {
    (
        handler_strategy("H1"),
        handler_strategy("H2"),
        handler_strategy("H3"),
        // A narrow calendar so that same-day and adjacent-day events are common.
        proptest::collection::vec(
            (0usize..3, 0u8..3, kind_strategy(), event_day(), 0u8..3),
            0..16,
        ),
        proptest::collection::vec((0usize..3, 0u8..3, 0u16..150), 1..12),
    )
        .prop_map(|(a, b, c, events, arrivals)| World {
            handlers: vec![a, b, c],
            events,
            arrivals,
        })
}

fn timeline(w: &World, h: usize, p: u8) -> Vec<ConsentEvent> {
    w.events
        .iter()
        .filter(|e| e.0 == h && e.1 == p)
        .map(|&(h, p, k, d, v)| {
            let mut e = ConsentEvent::new(w.handlers[h].code.clone(), format!("p{p}"), k, day(d));
            if k == EventKind::Notice {
                e.notice_version = version(v);
            }
            e
        })
        .collect()
}

/// A notice's waiting period: its version's own, else the handler's.
fn wait_of(h: &HandlerState, e: &ConsentEvent) -> u64 {
    u64::from(
        e.notice_version
            .as_ref()
            .and_then(|v| h.notice_waiting_days.get(v))
            .copied()
            .unwrap_or(h.waiting_days),
    )
}

/// The oracle: walk the days in order with a little state machine, applying each day's
/// withdrawals before its other events (so a same-day withdrawal never cancels a same-day
/// stop) and each day's consents before its withdrawals of consent (so a same-day
/// withdrawal of consent wins), then judge in the documented order of reasons.
fn oracle(h: &HandlerState, events: &[ConsentEvent], on: NaiveDate) -> Eligibility {
    let mut days: Vec<NaiveDate> = events.iter().map(|e| e.date).filter(|d| *d <= on).collect();
    days.sort();
    days.dedup();
    let mut waited_from: Option<NaiveDate> = None;
    let mut stopped: Option<NaiveDate> = None;
    let mut deleted: Option<NaiveDate> = None;
    // None: no consent event yet; Some(None): consent in force; Some(Some(d)): withdrawn on d.
    let mut consent: Option<Option<NaiveDate>> = None;
    for d in days {
        let today = |k: EventKind| events.iter().any(|e| e.date == d && e.kind == k);
        if today(EventKind::Withdraw) {
            stopped = None;
        }
        if today(EventKind::Stop) && stopped.is_none() {
            stopped = Some(d);
        }
        if today(EventKind::Delete) && deleted.is_none() {
            deleted = Some(d);
        }
        for e in events
            .iter()
            .filter(|e| e.date == d && e.kind == EventKind::Notice)
        {
            let until = d + Days::new(wait_of(h, e));
            waited_from = Some(waited_from.map_or(until, |w| w.min(until)));
        }
        if today(EventKind::Consent) {
            consent = Some(None);
        }
        if today(EventKind::ConsentWithdraw) {
            consent = Some(Some(d));
        }
    }
    let before = |d: Option<NaiveDate>| matches!(d, Some(d) if d <= on);
    if let Some(since) = deleted {
        return Eligibility::Ineligible(Reason::Deleted { since });
    }
    if let Some(since) = stopped {
        return Eligibility::Ineligible(Reason::Stopped { since });
    }
    if let Some(Some(since)) = consent {
        return Eligibility::Ineligible(Reason::ConsentWithdrawn { since });
    }
    if !before(h.filed_date) {
        return Eligibility::Ineligible(Reason::HandlerNotFiled);
    }
    if !(before(h.minister_published_date) && before(h.own_published_date)) {
        return Eligibility::Ineligible(Reason::HandlerNotPublished);
    }
    if consent == Some(None) {
        return Eligibility::Eligible;
    }
    match waited_from {
        None => Eligibility::Ineligible(Reason::NeverNotified),
        Some(until) if until <= on => Eligibility::Eligible,
        Some(until) => Eligibility::Ineligible(Reason::WithinWaitingPeriod { until }),
    }
}

/// The safety rules, stated directly on the timeline (no shared logic with either side).
fn check_safety(h: &HandlerState, ev: &[ConsentEvent], on: NaiveDate, got: Eligibility) {
    let dates = |k: EventKind| -> Vec<NaiveDate> {
        ev.iter()
            .filter(|e| e.kind == k && e.date <= on)
            .map(|e| e.date)
            .collect()
    };
    let notices = dates(EventKind::Notice);
    let stops = dates(EventKind::Stop);
    let withdraws = dates(EventKind::Withdraw);
    let deletes = dates(EventKind::Delete);
    let consents = dates(EventKind::Consent);
    let consent_withdraws = dates(EventKind::ConsentWithdraw);
    let stop_in_force = |s: NaiveDate| !withdraws.iter().any(|w| *w > s);
    let notice_events: Vec<&ConsentEvent> = ev
        .iter()
        .filter(|e| e.kind == EventKind::Notice && e.date <= on)
        .collect();
    let waited = notice_events
        .iter()
        .any(|n| n.date + Days::new(wait_of(h, n)) <= on);
    // Consent in force: a consent after every withdrawal of consent.
    let consented = consents
        .iter()
        .any(|c| consent_withdraws.iter().all(|w| w < c));
    if got.is_eligible() {
        // R-OPT-3: filed and published (minister and handler) on or before the date.
        assert!(
            h.filed_date.is_some_and(|d| d <= on),
            "eligible but not filed"
        );
        assert!(
            h.minister_published_date.is_some_and(|d| d <= on),
            "eligible but not published by the minister"
        );
        assert!(
            h.own_published_date.is_some_and(|d| d <= on),
            "eligible but not published by the handler"
        );
        // R-OPT-1/2: notified, and the waiting period has passed — or an explicit consent in
        // force.
        assert!(
            consented || !notices.is_empty(),
            "eligible but never notified"
        );
        assert!(consented || waited, "eligible within the waiting period");
        // A withdrawn consent is a stop: never eligible unless consent was given again.
        assert!(
            consent_withdraws.is_empty() || consented,
            "eligible after consent was withdrawn"
        );
        // R-OPT-4: never while a stop is in force.
        assert!(
            !stops.iter().any(|s| stop_in_force(*s)),
            "eligible while stopped"
        );
        // R-OPT-6: never after deletion.
        assert!(deletes.is_empty(), "eligible after deletion");
    }
    // Every Ineligible carries a reason true of the timeline.
    if let Eligibility::Ineligible(r) = got {
        match r {
            Reason::Deleted { since } => {
                assert!(deletes.contains(&since) && deletes.iter().all(|d| *d >= since));
            }
            Reason::Stopped { since } => {
                assert!(stops.contains(&since) && stop_in_force(since));
                assert!(deletes.is_empty());
            }
            Reason::HandlerNotFiled => assert!(h.filed_date.is_none_or(|d| d > on)),
            Reason::HandlerNotPublished => assert!(
                h.minister_published_date.is_none_or(|d| d > on)
                    || h.own_published_date.is_none_or(|d| d > on)
            ),
            Reason::ConsentWithdrawn { since } => {
                assert!(consent_withdraws.contains(&since) && !consented);
                assert!(consent_withdraws.iter().all(|w| *w <= since));
            }
            Reason::NeverNotified => assert!(notices.is_empty() && !consented),
            Reason::WithinWaitingPeriod { until } => {
                assert!(until > on && !waited && !consented);
                assert!(
                    notice_events
                        .iter()
                        .any(|n| n.date + Days::new(wait_of(h, n)) == until)
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// R-OPT-7 (the gate), R-OPT-2 (waiting), R-OPT-3 (filing/publication), R-OPT-4 (stop),
    /// R-OPT-6 (deletion): for every data arrival, the gate agrees with the oracle, respects
    /// every safety rule, and only the arrival's own (handler, patient) timeline counts.
    #[test]
    fn gate_matches_oracle_and_is_safe(w in world_strategy()) {
        for &(hi, p, d) in &w.arrivals {
            let h = &w.handlers[hi];
            let ev = timeline(&w, hi, p);
            let on = day(d);
            let got = decide(h, &ev, on);
            prop_assert_eq!(got, oracle(h, &ev, on));
            check_safety(h, &ev, on, got);
            // Reproducible for a past date: events after `on` change nothing.
            let past: Vec<ConsentEvent> = ev.iter().filter(|e| e.date <= on).cloned().collect();
            prop_assert_eq!(decide(h, &past, on), got);
            // Order of events does not matter.
            let mut rev = ev.clone();
            rev.reverse();
            prop_assert_eq!(decide(h, &rev, on), got);
        }
    }

    /// R-OPT-6: once a deletion is requested the patient is never eligible again, whatever
    /// follows (notices, withdrawals) and however late.
    #[test]
    fn deletion_is_final(w in world_strategy(), del in 0u16..400, later in proptest::collection::vec(0u16..60, 1..5)) {
        let h = &w.handlers[0];
        let mut ev = timeline(&w, 0, 0);
        ev.push(ConsentEvent::new("H1", "p0", EventKind::Delete, day(del)));
        for l in &later {
            ev.push(ConsentEvent::new("H1", "p0", EventKind::Withdraw, day(del + l)));
            ev.push(ConsentEvent::new("H1", "p0", EventKind::Notice, day(del + l)));
        }
        for d in del..del + 120 {
            prop_assert!(!decide(h, &ev, day(d)).is_eligible());
        }
    }

    /// R-OPT-2/R-OPT-7: with no stop or deletion, a filed and published handler's notified
    /// patient becomes eligible exactly on notice + waiting days, and stays eligible.
    #[test]
    fn eligible_exactly_after_waiting(n in 0u16..300, wait in 0u32..60, extra in 0u16..100) {
        let h = HandlerState {
            code: "H1".into(),
            filed_date: Some(day(0)),
            minister_published_date: Some(day(0)),
            own_published_date: Some(day(0)),
            waiting_days: wait,
            notice_waiting_days: BTreeMap::new(),
        };
        let ev = [ConsentEvent::new("H1", "p", EventKind::Notice, day(n))];
        let first = day(n) + Days::new(u64::from(wait));
        prop_assert!(decide(&h, &ev, first).is_eligible());
        prop_assert!(decide(&h, &ev, first + Days::new(u64::from(extra))).is_eligible());
        if wait > 0 {
            prop_assert_eq!(
                decide(&h, &ev, first - Days::new(1)),
                Eligibility::Ineligible(Reason::WithinWaitingPeriod { until: first })
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// R-OPT-2 with notice versions: a notice of a version with its own waiting period makes
    /// the patient eligible exactly that many days later; a notice of a version without one
    /// (or of no version) waits the handler's period.
    #[test]
    fn notice_version_waiting_period_decides(
        n in 0u16..300,
        handler_wait in 0u32..60,
        version_wait in 0u32..60,
        own in any::<bool>(),
    ) {
        let mut waits = BTreeMap::new();
        waits.insert("v1".to_string(), version_wait);
        let h = HandlerState {
            code: "H1".into(),
            filed_date: Some(day(0)),
            minister_published_date: Some(day(0)),
            own_published_date: Some(day(0)),
            waiting_days: handler_wait,
            notice_waiting_days: waits,
        };
        let mut e = ConsentEvent::new("H1", "p", EventKind::Notice, day(n));
        e.notice_version = Some(if own { "v1" } else { "v2" }.to_string());
        let wait = if own { version_wait } else { handler_wait };
        let first = day(n) + Days::new(u64::from(wait));
        prop_assert!(decide(&h, std::slice::from_ref(&e), first).is_eligible());
        if wait > 0 {
            prop_assert_eq!(
                decide(&h, &[e], first - Days::new(1)),
                Eligibility::Ineligible(Reason::WithinWaitingPeriod { until: first })
            );
        }
    }

    /// Opt-in: an explicit consent in force makes a filed and published handler's patient
    /// eligible from its date, notified or not; its withdrawal makes them ineligible from the
    /// withdrawal's date until a later consent, whatever notices say.
    #[test]
    fn consent_admits_and_its_withdrawal_stops(
        c in 0u16..200,
        gap in 1u16..100,
        notice in proptest::option::of(0u16..200),
        probe in 0u16..400,
    ) {
        let h = HandlerState {
            code: "H1".into(),
            filed_date: Some(day(0)),
            minister_published_date: Some(day(0)),
            own_published_date: Some(day(0)),
            waiting_days: 30,
            notice_waiting_days: BTreeMap::new(),
        };
        let mut ev = vec![ConsentEvent::new("H1", "p", EventKind::Consent, day(c))];
        if let Some(n) = notice {
            ev.push(ConsentEvent::new("H1", "p", EventKind::Notice, day(n)));
        }
        let on = day(probe);
        let w = c + gap;
        let notice_ok = notice.is_some_and(|n| day(n) + Days::new(30) <= on);
        prop_assert_eq!(decide(&h, &ev, on).is_eligible(), probe >= c || notice_ok);
        ev.push(ConsentEvent::new("H1", "p", EventKind::ConsentWithdraw, day(w)));
        let got = decide(&h, &ev, on);
        if probe >= w {
            prop_assert_eq!(got, Eligibility::Ineligible(Reason::ConsentWithdrawn { since: day(w) }));
        } else {
            prop_assert_eq!(got.is_eligible(), probe >= c || notice_ok);
        }
        // A consent on the day of its withdrawal leaves it withdrawn.
        ev.push(ConsentEvent::new("H1", "p", EventKind::Consent, day(w)));
        prop_assert!(!decide(&h, &ev, day(w)).is_eligible());
        // A later consent gives it back.
        ev.push(ConsentEvent::new("H1", "p", EventKind::Consent, day(w + 1)));
        prop_assert!(decide(&h, &ev, day(w + 1)).is_eligible());
    }

    /// Consent does not replace the handler's filing and publication (see the gate's module
    /// documentation): before them the patient is ineligible whatever they consented to.
    #[test]
    fn consent_still_needs_the_handlers_filing(c in 0u16..100, filed in 0u16..200, probe in 0u16..200) {
        let h = HandlerState {
            code: "H1".into(),
            filed_date: Some(day(filed)),
            minister_published_date: Some(day(filed)),
            own_published_date: Some(day(filed)),
            waiting_days: 30,
            notice_waiting_days: BTreeMap::new(),
        };
        let ev = [ConsentEvent::new("H1", "p", EventKind::Consent, day(c))];
        prop_assert_eq!(
            decide(&h, &ev, day(probe)).is_eligible(),
            probe >= filed && probe >= c
        );
    }
}
