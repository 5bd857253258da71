//! String similarity over *characters* (or any symbols), never bytes.
//!
//! Why: a kanji is 3 UTF-8 bytes and a non-BMP kanji (𠮷) 4; byte-based Jaro-Winkler or edit
//! distance counts one changed kanji as three edits and scores 佐藤/佐東 like unrelated words.
//! Callers pass `&[char]` slices of normalized strings.

/// Jaro similarity in [0, 1].
pub fn jaro<T: PartialEq>(a: &[T], b: &[T]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut b_used = [false; 64];
    let mut b_used_vec;
    let b_used: &mut [bool] = if b.len() <= 64 {
        &mut b_used[..b.len()]
    } else {
        b_used_vec = vec![false; b.len()];
        &mut b_used_vec
    };
    let mut matches = 0usize;
    let mut a_used = [false; 64];
    let mut a_used_vec;
    let a_used: &mut [bool] = if a.len() <= 64 {
        &mut a_used[..a.len()]
    } else {
        a_used_vec = vec![false; a.len()];
        &mut a_used_vec
    };
    for (i, x) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for j in lo..hi {
            if !b_used[j] && b[j] == *x {
                b_used[j] = true;
                a_used[i] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    // walk both match sequences in order; mismatched positions are half-transpositions
    let mut transpositions = 0usize;
    let mut ai = a_used
        .iter()
        .enumerate()
        .filter(|(_, u)| **u)
        .map(|(i, _)| i);
    for (j, used) in b_used.iter().enumerate() {
        if *used
            && let Some(i) = ai.next()
            && a[i] != b[j]
        {
            transpositions += 1;
        }
    }
    let m = matches as f64;
    let t = (transpositions / 2) as f64;
    (m / a.len() as f64 + m / b.len() as f64 + (m - t) / m) / 3.0
}

/// Jaro-Winkler with the usual prefix scale 0.1 over at most 4 leading symbols.
pub fn jaro_winkler<T: PartialEq>(a: &[T], b: &[T]) -> f64 {
    let j = jaro(a, b);
    let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count() as f64;
    j + prefix * 0.1 * (1.0 - j)
}

/// Levenshtein distance (insert, delete, substitute each cost 1).
pub fn levenshtein<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    if a.is_empty() {
        return b.len();
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(x != y);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Whether `a` and `b` are within one edit: one substitution, insertion, deletion, or one
/// transposition of adjacent symbols (Damerau). Linear time; used for numbers (phone, postal).
pub fn within_one_edit<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    if a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if p == a.len() && p == b.len() {
        return true;
    }
    let (ra, rb) = (&a[p..], &b[p..]);
    match ra.len().cmp(&rb.len()) {
        std::cmp::Ordering::Equal => {
            ra[1..] == rb[1..]
                || (ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        }
        std::cmp::Ordering::Greater => ra[1..] == *rb,
        std::cmp::Ordering::Less => *ra == rb[1..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn jaro_winkler_matches_reference_values() {
        assert!((jaro_winkler(&c("martha"), &c("marhta")) - 0.9611).abs() < 1e-3);
        assert!((jaro_winkler(&c("dwayne"), &c("duane")) - 0.84).abs() < 1e-3);
        assert!((jaro(&c("dixon"), &c("dicksonx")) - 0.7667).abs() < 1e-3);
        assert_eq!(jaro_winkler(&c(""), &c("")), 1.0);
        assert_eq!(jaro_winkler(&c("a"), &c("")), 0.0);
    }

    #[test]
    fn metrics_count_characters_not_bytes() {
        // one kanji differs: one edit, not three
        assert_eq!(levenshtein(&c("佐藤"), &c("佐東")), 1);
        assert_eq!(levenshtein(&c("𠮷田"), &c("吉田")), 1);
        assert!(jaro_winkler(&c("ワタナベ"), &c("ワタナペ")) > 0.88);
        assert!(within_one_edit(&c("ヤマダ"), &c("ヤダマ")));
    }

    #[test]
    fn within_one_edit_cases() {
        let w = |a: &str, b: &str| within_one_edit(&c(a), &c(b));
        assert!(w("1234567", "1234567"));
        assert!(w("1234567", "1234557"));
        assert!(w("1234567", "1243567"));
        assert!(w("1234567", "123567"));
        assert!(w("123567", "1234567"));
        assert!(!w("1234567", "1235467x"));
        assert!(!w("1234567", "7654321"));
        assert_eq!(levenshtein(&c("kitten"), &c("sitting")), 3);
    }
}
