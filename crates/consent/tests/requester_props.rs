//! R-OPT-8: who may act for a patient. `check_requester` is checked against the rule as the
//! requirement states it, and a stop or deletion by any accepted requester always makes the
//! patient ineligible from its date (through `decide`, the one gate).

use std::collections::BTreeMap;

use chrono::{Datelike, Days, NaiveDate};
use kiban_consent::{
    ConsentEvent, EventKind, HandlerState, PatientFacts, Relation, RequesterRefusal,
    check_requester, decide,
};
use proptest::prelude::*;

fn base() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()
}

fn day(n: u32) -> NaiveDate {
    base() + Days::new(u64::from(n))
}

fn relation() -> impl Strategy<Value = Relation> {
    prop::sample::select(Relation::ALL.to_vec())
}

fn request_kind() -> impl Strategy<Value = EventKind> {
    prop::sample::select(vec![
        EventKind::Stop,
        EventKind::Delete,
        EventKind::Withdraw,
        EventKind::Consent,
        EventKind::ConsentWithdraw,
    ])
}

fn facts() -> impl Strategy<Value = PatientFacts> {
    (
        proptest::option::of(0u32..12_000),
        proptest::option::weighted(0.3, 0u32..12_000),
        proptest::option::weighted(0.3, 0u32..12_000),
    )
        .prop_map(|(b, g, x)| PatientFacts {
            birth_date: b.map(day),
            guardianship_since: g.map(day),
            deceased_on: x.map(day),
        })
}

/// The rule as R-OPT-8 states it, written from the calendar: age by whole years.
fn allowed(kind: EventKind, r: Relation, f: &PatientFacts, on: NaiveDate) -> bool {
    let minor = f.birth_date.is_some_and(|b| {
        let mut age = on.year_ce().1 as i64 - b.year_ce().1 as i64;
        if (on.month(), on.day()) < (b.month(), b.day()) {
            age -= 1;
        }
        b <= on && age < 16
    });
    let guarded = f.guardianship_since.is_some_and(|g| g <= on);
    let dead = f.deceased_on.is_some_and(|d| d <= on);
    match r {
        Relation::SelfPerson => true,
        Relation::Guardian => minor || guarded,
        Relation::Bereaved => false,
        _ => kind != EventKind::Consent && dead,
    }
}

fn handler() -> HandlerState {
    HandlerState {
        code: "H1".into(),
        filed_date: Some(base()),
        minister_published_date: Some(base()),
        own_published_date: Some(base()),
        waiting_days: 30,
        notice_waiting_days: BTreeMap::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5_000))]

    /// R-OPT-8: the patient always; a guardian only for a patient under 16 on the request
    /// date or under guardianship; the named bereaved family only for a deceased patient, and
    /// never for a consent; the unspecified `bereaved` never.
    #[test]
    fn requester_rule_matches_the_requirement(
        kind in request_kind(), r in relation(), f in facts(), on in 0u32..12_000,
    ) {
        let on = day(on);
        let got = check_requester(kind, r, &f, on);
        prop_assert_eq!(got.is_ok(), allowed(kind, r, &f, on), "{:?} {:?} {:?}", kind, r, got);
        if let Err(e) = got {
            let expected = match r {
                Relation::Guardian if f.birth_date.is_none() => RequesterRefusal::GuardianUnverifiable,
                Relation::Guardian => RequesterRefusal::GuardianOfAdult,
                Relation::Bereaved => RequesterRefusal::BereavedUnspecified,
                _ if kind == EventKind::Consent => RequesterRefusal::ConsentByBereaved,
                _ => RequesterRefusal::BereavedOfLiving,
            };
            prop_assert_eq!(e, expected);
        }
        // Notices are not requests: never refused.
        prop_assert!(check_requester(EventKind::Notice, r, &f, on).is_ok());
    }

    /// A stop or deletion by any accepted relation always makes the patient ineligible from
    /// its date on, whatever the timeline before it held (notices, consents).
    #[test]
    fn an_accepted_stop_always_stops(
        kind in prop::sample::select(vec![EventKind::Stop, EventKind::Delete]),
        r in relation(), f in facts(), at in 0u32..12_000,
        before in proptest::collection::vec(
            (prop::sample::select(vec![EventKind::Notice, EventKind::Consent]), 0u32..12_000), 0..6),
        probe in 0u32..400,
    ) {
        let at_day = day(at);
        if check_requester(kind, r, &f, at_day).is_err() {
            // Refused requests are never recorded; the property is about accepted ones.
            return Ok(());
        }
        let mut ev: Vec<ConsentEvent> = before
            .iter()
            .map(|&(k, d)| ConsentEvent::new("H1", "p", k, day(d)))
            .collect();
        let mut stop = ConsentEvent::new("H1", "p", kind, at_day);
        stop.relation = Some(r);
        ev.push(stop);
        let on = at_day + Days::new(u64::from(probe));
        prop_assert!(!decide(&handler(), &ev, on).is_eligible());
    }
}

#[test]
fn the_sixteenth_birthday_is_the_boundary() {
    let f = PatientFacts {
        birth_date: Some(NaiveDate::from_ymd_opt(2008, 2, 29).unwrap()),
        ..Default::default()
    };
    let g = |y, m, d| {
        check_requester(
            EventKind::Stop,
            Relation::Guardian,
            &f,
            NaiveDate::from_ymd_opt(y, m, d).unwrap(),
        )
    };
    assert_eq!(g(2024, 2, 28), Ok(()));
    assert_eq!(g(2024, 2, 29), Err(RequesterRefusal::GuardianOfAdult));
}
