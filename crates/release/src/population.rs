//! The released population: eligible registration → person, and each person's demographics.
//!
//! Why not `HashMap<String, String>`: a release of 10 M persons meets every registration ID
//! once per clinical row, and string maps of that size cost gigabytes (a `String` key is 24
//! bytes plus a heap block, per entry, per map). Here every ID is stored once in an arena and
//! addressed by a `u32`; persons are `u32` indexes into flat vectors.

use std::hash::BuildHasher;

use chrono::NaiveDate;
use hashbrown::DefaultHashBuilder;
use hashbrown::HashTable;
use kiban_model::Sex;
use kiban_model::batch::days_to_date;

/// Demographics of one person, merged from the store's person rows of all their
/// registrations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Demographics {
    pub sex: Sex,
    pub birth_date: Option<NaiveDate>,
    pub prefecture: Option<String>,
}

/// Strings stored once, addressed by their insertion index.
#[derive(Default)]
pub(crate) struct Interner {
    arena: String,
    /// End offset of each string in `arena`.
    ends: Vec<usize>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl Interner {
    fn with_capacity(n: usize) -> Interner {
        Interner {
            arena: String::with_capacity(n * 25),
            ends: Vec::with_capacity(n),
            table: HashTable::with_capacity(n),
            hasher: DefaultHashBuilder::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn get_str(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.arena[start..self.ends[i]]
    }

    pub(crate) fn find(&self, s: &str) -> Option<u32> {
        let h = self.hasher.hash_one(s);
        self.table.find(h, |&i| self.get_str(i) == s).copied()
    }

    /// The index of `s`, inserting it if new; `None` once 2³² strings are stored.
    pub(crate) fn intern(&mut self, s: &str) -> Option<(u32, bool)> {
        let h = self.hasher.hash_one(s);
        let Interner {
            arena,
            ends,
            table,
            hasher,
        } = self;
        let get = |i: u32| {
            let i = i as usize;
            let start = if i == 0 { 0 } else { ends[i - 1] };
            &arena[start..ends[i]]
        };
        if let Some(&i) = table.find(h, |&i| get(i) == s) {
            return Some((i, false));
        }
        let i = u32::try_from(ends.len()).ok()?;
        arena.push_str(s);
        ends.push(arena.len());
        let (arena, ends) = (&*arena, &*ends);
        table.insert_unique(h, i, |&j| {
            let j = j as usize;
            let start = if j == 0 { 0 } else { ends[j - 1] };
            hasher.hash_one(&arena[start..ends[j]])
        });
        Some((i, true))
    }
}

/// Demographics of one person, compact.
#[derive(Debug, Clone, Copy)]
struct Demo {
    /// Days since 1970-01-01; `i32::MIN` = unknown.
    birth: i32,
    /// Index into the prefecture interner; `u32::MAX` = unknown.
    prefecture: u32,
    sex: Sex,
}

const NO_BIRTH: i32 = i32::MIN;
const NO_PREF: u32 = u32::MAX;

/// Eligible registrations, the persons they belong to (after linkage), and each person's
/// demographics. The caller fills it after the consent gate; [`crate::PackageWriter`] only
/// ever releases rows of registrations found here (R-OPT-7).
pub struct Population {
    registrations: Interner,
    /// Person index of each registration.
    registration_person: Vec<u32>,
    persons: Interner,
    demographics: Vec<Demo>,
    prefectures: Interner,
}

/// The population cannot address more than 2³² registrations or persons.
#[derive(Debug, thiserror::Error)]
#[error("a release holds at most 4,294,967,295 registrations and persons")]
pub struct PopulationFull;

impl Default for Population {
    fn default() -> Self {
        Population::with_capacity(0)
    }
}

impl Population {
    pub fn new() -> Population {
        Population::default()
    }

    /// An empty population with room for about `registrations` registrations.
    pub fn with_capacity(registrations: usize) -> Population {
        Population {
            registrations: Interner::with_capacity(registrations),
            registration_person: Vec::with_capacity(registrations),
            persons: Interner::with_capacity(registrations),
            demographics: Vec::with_capacity(registrations),
            prefectures: Interner::with_capacity(64),
        }
    }

    /// Adds an eligible registration belonging to `person_key` (the linkage result; the
    /// registration ID itself when unlinked). Returns `Ok(false)` when the registration is
    /// already present: its first person stays.
    pub fn add(&mut self, registration_id: &str, person_key: &str) -> Result<bool, PopulationFull> {
        let (person, new_person) = self.persons.intern(person_key).ok_or(PopulationFull)?;
        if new_person {
            self.demographics.push(Demo {
                birth: NO_BIRTH,
                prefecture: NO_PREF,
                sex: Sex::Unknown,
            });
        }
        let (_, new_reg) = self
            .registrations
            .intern(registration_id)
            .ok_or(PopulationFull)?;
        if new_reg {
            self.registration_person.push(person);
        }
        Ok(new_reg)
    }

    /// Eligible registrations.
    pub fn registrations(&self) -> usize {
        self.registrations.len()
    }

    /// Persons with at least one eligible registration.
    pub fn persons(&self) -> usize {
        self.persons.len()
    }

    /// The person index of an eligible registration; `None` for anyone else.
    pub fn person_of(&self, registration_id: &str) -> Option<u32> {
        self.registrations
            .find(registration_id)
            .map(|r| self.registration_person[r as usize])
    }

    /// The person key of a person index (from [`Population::person_of`]).
    pub fn person_key(&self, person: u32) -> &str {
        self.persons.get_str(person)
    }

    /// The person index of a person key.
    pub fn person_index(&self, person_key: &str) -> Option<u32> {
        self.persons.find(person_key)
    }

    /// Merges one person row of a registration: for each field the first known value wins.
    /// Rows of registrations not in the population are ignored.
    pub fn merge_demographics(
        &mut self,
        registration_id: &str,
        sex: Sex,
        birth: Option<NaiveDate>,
        prefecture: Option<&str>,
    ) {
        let Some(p) = self.person_of(registration_id) else {
            return;
        };
        let pref = match prefecture.filter(|p| !p.is_empty()) {
            Some(s) if self.demographics[p as usize].prefecture == NO_PREF => {
                self.prefectures.intern(s).map_or(NO_PREF, |(i, _)| i)
            }
            _ => NO_PREF,
        };
        let d = &mut self.demographics[p as usize];
        if d.sex == Sex::Unknown {
            d.sex = sex;
        }
        if d.birth == NO_BIRTH
            && let Some(b) = birth
        {
            d.birth = kiban_model::batch::date_to_days(b);
        }
        if d.prefecture == NO_PREF {
            d.prefecture = pref;
        }
    }

    /// The merged demographics of a person index.
    pub fn demographics(&self, person: u32) -> Demographics {
        let d = self.demographics[person as usize];
        Demographics {
            sex: d.sex,
            birth_date: (d.birth != NO_BIRTH)
                .then(|| days_to_date(d.birth))
                .flatten(),
            prefecture: (d.prefecture != NO_PREF)
                .then(|| self.prefectures.get_str(d.prefecture).to_string()),
        }
    }

    /// The prefecture of a person index without allocating.
    pub(crate) fn prefecture(&self, person: u32) -> Option<&str> {
        let d = self.demographics[person as usize];
        (d.prefecture != NO_PREF).then(|| self.prefectures.get_str(d.prefecture))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_round_trips_and_deduplicates() {
        let mut i = Interner::default();
        let words: Vec<String> = (0..10_000).map(|n| format!("r{n:024x}")).collect();
        for (n, w) in words.iter().enumerate() {
            assert_eq!(i.intern(w), Some((n as u32, true)));
        }
        for (n, w) in words.iter().enumerate() {
            assert_eq!(i.intern(w), Some((n as u32, false)));
            assert_eq!(i.find(w), Some(n as u32));
            assert_eq!(i.get_str(n as u32), w);
        }
        assert_eq!(i.find("r-unknown"), None);
        assert_eq!(i.len(), words.len());
        // The empty string is a value like any other.
        assert_eq!(i.intern(""), Some((10_000, true)));
        assert_eq!(i.get_str(10_000), "");
    }

    #[test]
    fn registrations_map_to_persons_and_merge_demographics() {
        let mut p = Population::new();
        assert_eq!(p.add("r1", "personA").ok(), Some(true));
        assert_eq!(p.add("r2", "personA").ok(), Some(true));
        assert_eq!(p.add("r3", "personB").ok(), Some(true));
        // A repeated registration keeps its first person.
        assert_eq!(p.add("r3", "personA").ok(), Some(false));
        assert_eq!(p.registrations(), 3);
        assert_eq!(p.persons(), 2);
        let a = p.person_of("r1").expect("r1");
        assert_eq!(p.person_of("r2"), Some(a));
        assert_eq!(p.person_key(a), "personA");
        assert_eq!(p.person_index("personB"), p.person_of("r3"));
        assert_eq!(p.person_of("r9"), None);

        let born = NaiveDate::from_ymd_opt(1960, 5, 1);
        p.merge_demographics("r1", Sex::Unknown, None, Some(""));
        p.merge_demographics("r2", Sex::Female, born, Some("大阪府"));
        p.merge_demographics("r1", Sex::Male, None, Some("東京都"));
        p.merge_demographics("r9", Sex::Male, born, Some("北海道"));
        let d = p.demographics(a);
        assert_eq!(d.sex, Sex::Female);
        assert_eq!(d.birth_date, born);
        assert_eq!(d.prefecture.as_deref(), Some("大阪府"));
        assert_eq!(p.prefecture(a), Some("大阪府"));
        let b = p.demographics(p.person_of("r3").expect("r3"));
        assert_eq!(b, Demographics::default());
    }
}
