//! The in-process bucket store: 64 shards of `Mutex<HashMap>`, keyed by a 64-bit keyed hash of
//! the request key (the key itself is not stored), with bounded memory.
//!
//! Memory: a bucket that has refilled completely is the same as a bucket never seen, so it can
//! be dropped without changing any decision; each shard drops those every
//! [`SWEEP_INTERVAL`] (when it next admits a new key) and when it is full. If a shard is still
//! full of buckets in use (many distinct keys at once), it drops the idlest eighth of them:
//! a dropped bucket starts full again, which only favours an idle key, never a busy one.
//!
//! A check of a known key is a hash, one uncontended lock and a few float operations; it does
//! not allocate. The clock is injectable so that tests move time by hand.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::{Rate, RateDecision};

/// A monotonic clock: the time since an arbitrary, fixed start.
pub(crate) trait Clock: Send + Sync {
    fn now(&self) -> Duration;
}

struct Monotonic(Instant);

impl Clock for Monotonic {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// The process's monotonic clock.
pub(crate) fn monotonic() -> Arc<dyn Clock> {
    Arc::new(Monotonic(Instant::now()))
}

const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

/// How often a shard looks for buckets that have refilled (when it admits a new key).
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    /// When `tokens` was computed, in nanoseconds of the store's clock.
    at: u64,
}

/// The map's own hasher: the key is already a SipHash value; one multiplication spreads it
/// again (the shard index took its top bits, which hashbrown would otherwise also read).
#[derive(Default)]
struct Premixed(u64);

impl Hasher for Premixed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Map = HashMap<u64, Bucket, BuildHasherDefault<Premixed>>;

struct Shard {
    map: Map,
    next_sweep: u64,
}

pub(crate) struct LocalStore {
    /// Keyed (random per store), so a client cannot choose keys that collide with another's.
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    clock: Arc<dyn Clock>,
}

impl LocalStore {
    /// A store that keeps at most about `max_keys` buckets (rounded up to a multiple of the
    /// shard count).
    pub(crate) fn new(max_keys: usize, clock: Arc<dyn Clock>) -> LocalStore {
        let per_shard = max_keys.div_ceil(SHARDS).max(1);
        LocalStore {
            hasher: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: Map::default(),
                        next_sweep: 0,
                    })
                })
                .collect(),
            per_shard,
            clock,
        }
    }

    /// The most buckets this store keeps.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    pub(crate) fn check(&self, key: &str, rate: &Rate) -> RateDecision {
        let hash = self.hasher.hash_one(key);
        let now = nanos(self.clock.now());
        let mut shard = lock(&self.shards[(hash >> (64 - SHARD_BITS)) as usize]);
        let tokens = match shard.map.get_mut(&hash) {
            Some(bucket) => {
                let tokens = rate.refill(bucket.tokens, now.saturating_sub(bucket.at));
                let (allowed, left) = rate.take(tokens);
                *bucket = Bucket {
                    tokens: left,
                    at: now.max(bucket.at),
                };
                return rate.decision(allowed, left);
            }
            None => rate.full(),
        };
        shard.make_room(now, self.per_shard, rate);
        let (allowed, left) = rate.take(tokens);
        shard.map.insert(
            hash,
            Bucket {
                tokens: left,
                at: now,
            },
        );
        rate.decision(allowed, left)
    }
}

impl Shard {
    /// Before a new key: drops refilled buckets (every `SWEEP_INTERVAL`, or when full), then,
    /// if still full, the idlest eighth.
    fn make_room(&mut self, now: u64, cap: usize, rate: &Rate) {
        let full = self.map.len() >= cap;
        if now >= self.next_sweep || full {
            self.map
                .retain(|_, b| !rate.is_full(rate.refill(b.tokens, now.saturating_sub(b.at))));
            self.next_sweep = now.saturating_add(nanos(SWEEP_INTERVAL));
        }
        if self.map.len() < cap {
            return;
        }
        let drop = (self.map.len() / 8).max(1);
        let mut ages: Vec<u64> = self.map.values().map(|b| b.at).collect();
        let (_, &mut threshold, _) = ages.select_nth_unstable(drop - 1);
        // Exactly `drop` buckets go: those idle longer than the threshold, then as many of
        // those last used at the threshold itself as needed.
        let mut below = ages.iter().filter(|&&at| at < threshold).count();
        let mut at_threshold = drop - below;
        self.map.retain(|_, b| {
            if b.at < threshold {
                below -= 1;
                false
            } else if b.at == threshold && at_threshold > 0 {
                at_threshold -= 1;
                false
            } else {
                true
            }
        });
        debug_assert_eq!(below, 0);
    }
}

fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    // A panic while holding the lock cannot leave a bucket half-written (plain stores of
    // `Copy` values), so a poisoned shard is still sound.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
