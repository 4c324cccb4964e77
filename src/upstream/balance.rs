//! Backend selection algorithms, as pure functions of the weights, the in-flight counts and
//! which backends may be used (healthy, not yet tried by this request).
//!
//! - Round robin is nginx's smooth weighted round robin, computed once per config as one
//!   cycle (weights 3:1 give `a a b a`); a request takes the next position with one atomic
//!   add, so the common path takes no lock.
//! - Least connections (nginx `least_conn`): the fewest in-flight attempts relative to the
//!   weight; the scan starts at the round-robin position, so ties go weighted round robin.
//! - Power of two choices: two positions of the weighted cycle at random, the less loaded
//!   backend of the two.
//! - Consistent hashing: Pingora's ketama ring (`pingora-ketama`, the nginx `hash … consistent`
//!   ring: 160 points per unit of weight), so adding or removing one of n backends moves about
//!   1/n of the keys.
//!
//! The caller passes tiers of acceptable backends, best first (say: healthy and not tried
//! yet, then not tried yet, then any). The algorithm runs over the first tier that has a
//! backend, and returns `None` only when every tier is empty. The common case (the first
//! choice is in the first tier) costs one check.

use pingora_ketama::{Bucket, Continuum};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Which algorithm a [`Selector`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    RoundRobin,
    LeastConn,
    PowerOfTwo,
    Hash,
}

/// The selection structures of one pool.
pub(crate) struct Selector {
    algorithm: Algorithm,
    weights: Box<[u32]>,
    /// One cycle of smooth weighted round robin: backend indices, each as often as its weight
    /// (weights divided by their greatest common divisor).
    cycle: Box<[u32]>,
    next: AtomicUsize,
    ring: Option<Ring>,
}

struct Ring {
    continuum: Continuum,
    /// Points on the ring (an upper bound for a walk).
    points: usize,
    index: HashMap<SocketAddr, usize>,
}

impl std::fmt::Debug for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selector")
            .field("algorithm", &self.algorithm)
            .field("weights", &self.weights)
            .field("cycle_len", &self.cycle.len())
            .finish()
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// One cycle of nginx's smooth weighted round robin (`ngx_http_upstream_get_peer`): each step
/// adds every weight to its current value, picks the largest (the first on a tie) and takes
/// the total off it.
pub(crate) fn smooth_cycle(weights: &[u32]) -> Vec<u32> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let w: Vec<i64> = weights.iter().map(|&x| i64::from(x / g)).collect();
    let total: i64 = w.iter().sum();
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

impl Selector {
    /// Structures for `backends` with `weights` (each at least 1, same length).
    pub(crate) fn new(algorithm: Algorithm, backends: &[SocketAddr], weights: &[u32]) -> Self {
        assert_eq!(backends.len(), weights.len());
        assert!(!backends.is_empty() && weights.iter().all(|&w| w > 0));
        let ring = (algorithm == Algorithm::Hash).then(|| {
            let g = weights.iter().copied().fold(0, gcd).max(1);
            let buckets: Vec<Bucket> = backends
                .iter()
                .zip(weights)
                .map(|(a, w)| Bucket::new(*a, w / g))
                .collect();
            let points = weights.iter().map(|w| (w / g) as usize * 160).sum();
            Ring {
                continuum: Continuum::new(&buckets),
                points,
                index: backends.iter().enumerate().map(|(i, a)| (*a, i)).collect(),
            }
        });
        Selector {
            algorithm,
            weights: weights.into(),
            cycle: smooth_cycle(weights).into(),
            next: AtomicUsize::new(0),
            ring,
        }
    }

    pub(crate) fn weight(&self, i: usize) -> u32 {
        self.weights[i]
    }

    /// A backend for one attempt. `key` is the hash key (`Hash` only; without one, round
    /// robin); `load` gives in-flight counts (`LeastConn`, `PowerOfTwo`); `tiers` say which
    /// backends may be used, best first. A `retry` takes no turn of its own in the round-robin
    /// cycle: it goes to the next usable backend after the current turn, so retries do not
    /// shift which backend the following requests get.
    pub(crate) fn pick(
        &self,
        key: Option<&[u8]>,
        tiers: &[&dyn Fn(usize) -> bool],
        load: &dyn Fn(usize) -> usize,
        retry: bool,
    ) -> Option<usize> {
        match self.algorithm {
            Algorithm::RoundRobin => self.round_robin(tiers, retry),
            Algorithm::LeastConn => {
                let start = if retry { self.peek_turn() } else { self.turn() };
                self.least_conn(start, tiers, load)
            }
            Algorithm::PowerOfTwo => self.two_choices(tiers, load),
            Algorithm::Hash => match key {
                Some(k) => tiers.iter().find_map(|ok| self.hash(k, ok)),
                None => self.round_robin(tiers, retry),
            },
        }
    }

    fn ticket(&self) -> usize {
        self.next.fetch_add(1, Relaxed)
    }

    /// The backend whose turn it is in the weighted cycle.
    fn turn(&self) -> usize {
        self.cycle[self.ticket() % self.cycle.len()] as usize
    }

    /// The backend whose turn comes next, without taking it.
    fn peek_turn(&self) -> usize {
        self.cycle[self.next.load(Relaxed) % self.cycle.len()] as usize
    }

    /// The first tier with a backend in it (a scan: only off the common path).
    fn first_tier<'t>(
        &self,
        tiers: &[&'t dyn Fn(usize) -> bool],
    ) -> Option<&'t dyn Fn(usize) -> bool> {
        let n = self.weights.len();
        tiers.iter().copied().find(|ok| (0..n).any(ok))
    }

    fn round_robin(&self, tiers: &[&dyn Fn(usize) -> bool], retry: bool) -> Option<usize> {
        let len = self.cycle.len();
        if retry {
            let t = self.next.load(Relaxed);
            let ok = self.first_tier(tiers)?;
            return (0..len)
                .map(|k| self.cycle[(t + k) % len] as usize)
                .find(|&i| ok(i));
        }
        let mut t = self.ticket();
        let first = self.cycle[t % len] as usize;
        if tiers.first().is_some_and(|ok| ok(first)) {
            return Some(first);
        }
        let ok = self.first_tier(tiers)?;
        if ok(first) {
            return Some(first);
        }
        // A refused backend gives its turn to the next position, taking another ticket, so the
        // others keep their proportions; after as many tries as there are backends, walk the
        // cycle without tickets.
        for _ in 0..self.weights.len() {
            t = self.ticket();
            let i = self.cycle[t % len] as usize;
            if ok(i) {
                return Some(i);
            }
        }
        (0..len)
            .map(|k| self.cycle[(t + k) % len] as usize)
            .find(|&i| ok(i))
    }

    /// True when `a` carries less load per unit of weight than `b`.
    fn lighter(&self, a: usize, b: usize, load: &dyn Fn(usize) -> usize) -> bool {
        let (la, lb) = (load(a) as u128, load(b) as u128);
        la * u128::from(self.weights[b]) < lb * u128::from(self.weights[a])
    }

    /// The least loaded backend of the first non-empty tier, scanning from `start` so that a
    /// tie goes to the backend whose turn it is.
    fn least_conn(
        &self,
        start: usize,
        tiers: &[&dyn Fn(usize) -> bool],
        load: &dyn Fn(usize) -> usize,
    ) -> Option<usize> {
        let n = self.weights.len();
        tiers.iter().find_map(|ok| {
            let mut best: Option<usize> = None;
            for k in 0..n {
                let i = (start + k) % n;
                if !ok(i) {
                    continue;
                }
                match best {
                    Some(b) if !self.lighter(i, b, load) => {}
                    _ => best = Some(i),
                }
            }
            best
        })
    }

    fn two_choices(
        &self,
        tiers: &[&dyn Fn(usize) -> bool],
        load: &dyn Fn(usize) -> usize,
    ) -> Option<usize> {
        let len = self.cycle.len();
        let r: u64 = rand::random();
        let first = (r as u32 as usize) % len;
        let a = self.cycle[first] as usize;
        // The second draw is another backend: positions after the first one's, wrapping.
        let off = ((r >> 32) as usize) % len;
        let b = (0..len)
            .map(|k| self.cycle[(off + k) % len] as usize)
            .find(|&i| i != a);
        let ok = tiers.first();
        match b {
            Some(b) if ok.is_some_and(|ok| ok(a) && ok(b)) => {
                Some(if self.lighter(b, a, load) { b } else { a })
            }
            None if ok.is_some_and(|ok| ok(a)) => Some(a),
            // A draw was refused: the least loaded of what is left.
            _ => self.least_conn(a, tiers, load),
        }
    }

    fn hash(&self, key: &[u8], ok: &dyn Fn(usize) -> bool) -> Option<usize> {
        let ring = self.ring.as_ref().expect("hash selector has a ring");
        let n = self.weights.len();
        let mut seen: Vec<bool> = Vec::new();
        let mut distinct = 0;
        for addr in ring.continuum.node_iter(key).take(ring.points.max(1)) {
            let Some(&i) = ring.index.get(addr) else {
                continue;
            };
            if ok(i) {
                return Some(i);
            }
            // Past the first point only when the key's backend is refused: walk on to the
            // next distinct backends on the ring (nginx's consistent-hash fallback).
            if seen.is_empty() {
                seen = vec![false; n];
            }
            if !seen[i] {
                seen[i] = true;
                distinct += 1;
                if distinct == n {
                    return None;
                }
            }
        }
        None
    }

    /// The backend the ring gives `key` when every backend may be used (tests, docs).
    #[cfg(test)]
    pub(crate) fn ring_owner(&self, key: &[u8]) -> Option<usize> {
        self.hash(key, &|_| true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: usize) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| format!("10.0.0.{}:80", i + 1).parse().unwrap())
            .collect()
    }

    #[test]
    fn smooth_cycle_table() {
        // (weights, one cycle, reason)
        let cases: &[(&[u32], &[u32], &str)] = &[
            (&[1], &[0], "one backend"),
            (
                &[1, 1, 1],
                &[0, 1, 2],
                "equal weights: plain round robin in file order",
            ),
            (&[3, 1], &[0, 0, 1, 0], "3:1 interleaves instead of a a a b"),
            (
                &[5, 1, 1],
                &[0, 0, 1, 0, 2, 0, 0],
                "nginx's documented example: a a b a c a a",
            ),
            (
                &[300, 100],
                &[0, 0, 1, 0],
                "weights are reduced by their common divisor",
            ),
            (
                &[1, 2],
                &[1, 0, 1],
                "the heavier one need not come first in the file",
            ),
        ];
        for (weights, want, why) in cases {
            assert_eq!(smooth_cycle(weights), *want, "{why}");
        }
    }

    #[test]
    fn weighted_round_robin_is_exact_over_every_cycle() {
        let s = Selector::new(Algorithm::RoundRobin, &addrs(3), &[5, 2, 1]);
        let mut counts = [0; 3];
        for _ in 0..8 * 10 {
            counts[s.pick(None, &[&|_| true], &|_| 0, false).unwrap()] += 1;
        }
        assert_eq!(counts, [50, 20, 10]);
    }

    #[test]
    fn round_robin_skips_refused_backends_keeping_the_others_in_turn() {
        let s = Selector::new(Algorithm::RoundRobin, &addrs(3), &[1, 1, 1]);
        let picks: Vec<_> = (0..6)
            .map(|_| s.pick(None, &[&|i| i != 1], &|_| 0, false).unwrap())
            .collect();
        assert_eq!(
            picks.iter().filter(|&&i| i == 0).count(),
            3,
            "the survivors share evenly: {picks:?}"
        );
        assert!(!picks.contains(&1));
        assert_eq!(
            s.pick(None, &[&|_| false], &|_| 0, false),
            None,
            "nothing allowed"
        );
        let single = Selector::new(Algorithm::RoundRobin, &addrs(4), &[9, 9, 9, 1]);
        for _ in 0..5 {
            assert_eq!(
                single.pick(None, &[&|i| i == 3], &|_| 0, false),
                Some(3),
                "found past the ticket tries"
            );
        }
    }

    #[test]
    fn least_conn_table() {
        // (weights, in-flight, allowed, expected pick, reason)
        type Case = (
            &'static [u32],
            &'static [usize],
            &'static [bool],
            usize,
            &'static str,
        );
        let cases: &[Case] = &[
            (&[1, 1, 1], &[2, 0, 1], &[true; 3], 1, "fewest in flight"),
            (
                &[1, 1, 1],
                &[2, 0, 1],
                &[true, false, true],
                2,
                "refused ones are skipped",
            ),
            (
                &[3, 1],
                &[2, 1],
                &[true, true],
                0,
                "relative to weight: 2/3 is less than 1/1",
            ),
            (
                &[1, 3],
                &[1, 3],
                &[true, true],
                1,
                "1/1 and 3/3 tie: the round-robin turn (cycle b a b b) decides",
            ),
        ];
        for (weights, loads, allowed, want, why) in cases {
            let s = Selector::new(Algorithm::LeastConn, &addrs(weights.len()), weights);
            let got = s.pick(None, &[&|i| allowed[i]], &|i| loads[i], false);
            assert_eq!(got, Some(*want), "{why}");
        }
    }

    #[test]
    fn least_conn_ties_go_weighted_round_robin() {
        let s = Selector::new(Algorithm::LeastConn, &addrs(2), &[3, 1]);
        let picks: Vec<_> = (0..8)
            .map(|_| s.pick(None, &[&|_| true], &|_| 0, false).unwrap())
            .collect();
        assert_eq!(picks, [0, 0, 1, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn two_choices_never_picks_the_most_loaded_of_three() {
        let s = Selector::new(Algorithm::PowerOfTwo, &addrs(3), &[1, 1, 1]);
        let loads = [0usize, 5, 9];
        let mut counts = [0; 3];
        for _ in 0..3000 {
            counts[s.pick(None, &[&|_| true], &|i| loads[i], false).unwrap()] += 1;
        }
        assert_eq!(counts[2], 0, "two distinct draws: the busiest always loses");
        assert!(counts[0] > counts[1], "{counts:?}");
        // Two backends: always the lighter one; a refused one is never used.
        let two = Selector::new(Algorithm::PowerOfTwo, &addrs(2), &[1, 1]);
        for _ in 0..200 {
            assert_eq!(two.pick(None, &[&|_| true], &|i| [4, 1][i], false), Some(1));
            assert_eq!(
                two.pick(None, &[&|i| i == 0], &|i| [4, 1][i], false),
                Some(0)
            );
        }
        let one = Selector::new(Algorithm::PowerOfTwo, &addrs(1), &[1]);
        assert_eq!(one.pick(None, &[&|_| true], &|_| 0, false), Some(0));
    }

    #[test]
    fn two_choices_follows_weights_when_idle() {
        let s = Selector::new(Algorithm::PowerOfTwo, &addrs(2), &[3, 1]);
        let mut counts = [0; 2];
        for _ in 0..4000 {
            counts[s.pick(None, &[&|_| true], &|_| 0, false).unwrap()] += 1;
        }
        // With equal loads the first draw wins: it is drawn by weight, so about 3:1.
        assert!((2700..3300).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn hash_is_sticky_and_missing_keys_go_round_robin() {
        let s = Selector::new(Algorithm::Hash, &addrs(3), &[1, 1, 1]);
        for k in 0..100u32 {
            let key = format!("user-{k}");
            let first = s.pick(Some(key.as_bytes()), &[&|_| true], &|_| 0, false);
            for _ in 0..3 {
                assert_eq!(
                    s.pick(Some(key.as_bytes()), &[&|_| true], &|_| 0, false),
                    first
                );
            }
        }
        let picks: Vec<_> = (0..3)
            .map(|_| s.pick(None, &[&|_| true], &|_| 0, false).unwrap())
            .collect();
        assert_eq!(picks, [0, 1, 2], "no key: round robin");
    }

    #[test]
    fn hash_skips_a_refused_backend_and_moves_only_its_keys() {
        let s = Selector::new(Algorithm::Hash, &addrs(4), &[1, 1, 1, 1]);
        let mut moved = 0;
        for k in 0..2000u32 {
            let key = k.to_be_bytes();
            let owner = s.ring_owner(&key).unwrap();
            let got = s.pick(Some(&key), &[&|i| i != 2], &|_| 0, false).unwrap();
            assert_ne!(got, 2);
            if owner == 2 {
                moved += 1;
            } else {
                assert_eq!(got, owner, "keys of the other backends stay");
            }
        }
        assert!((300..700).contains(&moved), "about a quarter: {moved}");
        assert_eq!(s.pick(Some(b"k"), &[&|_| false], &|_| 0, false), None);
    }

    /// Removing one backend of n moves only that backend's keys, about 1/n of them; adding
    /// one moves about 1/(n+1), all of them to the new backend.
    #[test]
    fn ring_moves_about_one_nth_of_the_keys() {
        let all = addrs(5);
        let w = [1u32; 5];
        let four = Selector::new(Algorithm::Hash, &all[..4], &w[..4]);
        let three = Selector::new(Algorithm::Hash, &all[..3], &w[..3]);
        let five = Selector::new(Algorithm::Hash, &all, &w);
        let keys: Vec<String> = (0..10_000).map(|k| format!("session-{k}")).collect();
        let (mut removed_moved, mut added_moved) = (0, 0);
        for key in &keys {
            let k = key.as_bytes();
            let before = four.ring_owner(k).unwrap();
            let after_remove = three.ring_owner(k).unwrap();
            if before != after_remove {
                assert_eq!(before, 3, "only the removed backend's keys move");
                removed_moved += 1;
            }
            let after_add = five.ring_owner(k).unwrap();
            if before != after_add {
                assert_eq!(after_add, 4, "keys only move to the added backend");
                added_moved += 1;
            }
        }
        let frac = |n: usize| n as f64 / keys.len() as f64;
        assert!(
            (0.15..0.35).contains(&frac(removed_moved)),
            "removing 1 of 4 moved {removed_moved}"
        );
        assert!(
            (0.12..0.28).contains(&frac(added_moved)),
            "adding a 5th moved {added_moved}"
        );
    }

    #[test]
    fn ring_follows_weights() {
        let s = Selector::new(Algorithm::Hash, &addrs(2), &[3, 1]);
        let mut counts = [0; 2];
        for k in 0..8000u32 {
            counts[s.ring_owner(&k.to_le_bytes()).unwrap()] += 1;
        }
        assert!((5400..6600).contains(&counts[0]), "about 3:1: {counts:?}");
    }
}
