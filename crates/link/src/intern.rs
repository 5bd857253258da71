//! Interned normalized strings: every distinct value is stored once, as characters, and
//! records refer to it by a `u32` id.
//!
//! Why: a million registrations hold a few million field values but far fewer distinct
//! ones; records of 4-byte ids are small enough to stay in cache, exact agreement is one
//! integer comparison, and string metrics still run on `&[char]` (characters, never bytes).
//! Id 0 is the empty string ("missing").

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a over the characters: fast, deterministic, good enough for a table whose equality
/// is checked against the stored characters anyway.
fn fnv(cs: &[char]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in cs {
        h ^= u64::from(c as u32);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A fast deterministic hasher for the linker's own tables (integer keys, short strings):
/// FNV-1a accumulation and a splitmix64 finalizer so that every bit of the result is mixed.
/// Not DoS-resistant, which the tables do not need (their keys are the caller's own data and
/// the cost of a bad distribution is only time).
pub(crate) struct PreHashed(u64);

impl Default for PreHashed {
    fn default() -> Self {
        PreHashed(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(0x0100_0000_01b3);
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }
    fn write_u16(&mut self, x: u16) {
        self.write_u64(u64::from(x));
    }
    fn write_u8(&mut self, x: u8) {
        self.write_u64(u64::from(x));
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<PreHashed>>;

/// The string table.
#[derive(Debug, Default)]
pub(crate) struct Strs {
    /// `offs[id]..offs[id + 1]` are the characters of `id`.
    offs: Vec<u32>,
    chars: Vec<char>,
    /// hash → id; a collision moves to the next hash value (open addressing on the key
    /// space), so lookups stay exact.
    map: FastMap<u64, u32>,
    /// Reused decoding buffer of `intern_str`.
    scratch: Vec<char>,
}

impl Strs {
    #[cfg(test)]
    pub fn new() -> Strs {
        Strs::with_capacity(0)
    }

    /// Room for about `n` distinct strings.
    pub fn with_capacity(n: usize) -> Strs {
        let mut map = FastMap::default();
        map.reserve(n);
        let mut offs = Vec::with_capacity(n + 2);
        offs.extend([0, 0]);
        let mut s = Strs {
            offs,
            chars: Vec::with_capacity(n * 6),
            map,
            scratch: Vec::new(),
        };
        s.map.insert(fnv(&[]), 0);
        s
    }

    pub fn len(&self) -> usize {
        self.offs.len() - 1
    }

    pub fn get(&self, id: u32) -> &[char] {
        let (a, b) = (self.offs[id as usize], self.offs[id as usize + 1]);
        &self.chars[a as usize..b as usize]
    }

    /// The id of `cs`, adding it if new.
    pub fn intern(&mut self, cs: &[char]) -> u32 {
        if cs.is_empty() {
            return 0;
        }
        let mut h = fnv(cs);
        loop {
            match self.map.get(&h) {
                Some(&id) if self.get(id) == cs => return id,
                Some(_) => h = h.wrapping_add(1),
                None => break,
            }
        }
        let id = self.len() as u32;
        self.chars.extend_from_slice(cs);
        self.offs.push(self.chars.len() as u32);
        self.map.insert(h, id);
        id
    }

    pub fn intern_str(&mut self, s: &str) -> u32 {
        self.intern_chars(s.chars())
    }

    /// Interns the characters of an iterator (e.g. two parts joined without building the
    /// joined string).
    pub fn intern_chars(&mut self, cs: impl Iterator<Item = char>) -> u32 {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        buf.extend(cs);
        let id = self.intern(&buf);
        self.scratch = buf;
        id
    }

    /// Drops the lookup table once every value is interned: ids and characters stay.
    pub fn freeze(&mut self) {
        self.map = FastMap::default();
        self.scratch = Vec::new();
        self.chars.shrink_to_fit();
        self.offs.shrink_to_fit();
    }

    /// Adds every string of `other` and returns the id each of them has here.
    pub fn absorb(&mut self, other: &Strs) -> Vec<u32> {
        (0..other.len() as u32)
            .map(|id| self.intern(other.get(id)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_exact_and_stable() {
        let mut s = Strs::new();
        assert_eq!(s.intern_str(""), 0);
        let a = s.intern_str("渡辺");
        let b = s.intern_str("渡邊");
        assert_ne!(a, b);
        assert_eq!(s.intern_str("渡辺"), a);
        assert_eq!(s.get(a), &['渡', '辺']);
        let long: String = "あ".repeat(100);
        let l = s.intern_str(&long);
        assert_eq!(s.get(l).len(), 100);
        let mut t = Strs::new();
        let x = t.intern_str("渡邊");
        let map = s.absorb(&t);
        assert_eq!(map[x as usize], b);
        assert_eq!(map[0], 0);
    }

    #[test]
    fn hash_collisions_stay_exact() {
        let mut s = Strs::new();
        // force a collision: occupy the slot of "b" with "a"'s id
        let a = s.intern_str("a");
        let hb = fnv(&['b']);
        s.map.insert(hb, a);
        let b = s.intern_str("b");
        assert_ne!(a, b);
        assert_eq!(s.get(b), &['b']);
        assert_eq!(s.intern_str("b"), b);
    }
}
