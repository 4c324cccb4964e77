//! The series of one labelled metric, created on first use and then found by a small key of
//! integers, never by building labels.
//!
//! Requests read an immutable map through an [`ArcSwap`] (no lock, nothing written to shared
//! memory but the metric itself); a series seen for the first time is added by copying the map
//! under a mutex, which happens at most [`MAX_SERIES`] times per metric. Past that limit every
//! new combination of labels goes to one overflow series labelled `otel_metric_overflow="true"`,
//! as the OpenTelemetry metrics SDK does at its cardinality limit (SDK spec, "Cardinality
//! limits"), so no traffic can grow the scrape or the memory without bound.
//!
//! Keys are hashed with [`KeyHasher`], a multiply-rotate hash (rustc's FxHash): std's SipHash
//! cost ~500 instructions per lookup of these few integers, more than the histogram update
//! itself. Flooding is no concern here: a key's parts are small bounded integers, and the map
//! never holds more than [`MAX_SERIES`] of them.

use super::labels::Labels;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

/// The most series one metric keeps (the OpenTelemetry SDK's default cardinality limit).
pub const MAX_SERIES: usize = 2000;

/// FxHash: each word is mixed in with a rotate, a xor and a multiplication.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct KeyHasher(u64);

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(n.into());
    }
    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.add(n.into());
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(n.into());
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type Map<K, M> = HashMap<K, Arc<Series<M>>, BuildHasherDefault<KeyHasher>>;

/// One series: its labels and its metric.
#[derive(Debug)]
pub(super) struct Series<M> {
    pub(super) labels: Labels,
    pub(super) metric: M,
}

/// The series of one metric, by key.
#[derive(Debug)]
pub(super) struct SeriesMap<K, M> {
    map: ArcSwap<Map<K, M>>,
    grow: Mutex<()>,
    overflow: OnceLock<Series<M>>,
    limit: usize,
}

impl<K: Hash + Eq + Clone, M> SeriesMap<K, M> {
    pub(super) fn new(limit: usize) -> Self {
        SeriesMap {
            map: ArcSwap::from_pointee(Map::default()),
            grow: Mutex::new(()),
            overflow: OnceLock::new(),
            limit,
        }
    }

    /// Calls `f` with the metric of `key`'s series, creating it with `make` (labels and metric)
    /// when it is new, or with the overflow series (made by `metric`) past the limit.
    #[inline]
    pub(super) fn with(
        &self,
        key: &K,
        make: impl FnOnce() -> (Labels, M),
        metric: impl FnOnce() -> M,
        f: impl FnOnce(&M),
    ) {
        if let Some(s) = self.map.load().get(key) {
            return f(&s.metric);
        }
        self.with_new(key, make, metric, f);
    }

    #[cold]
    fn with_new(
        &self,
        key: &K,
        make: impl FnOnce() -> (Labels, M),
        metric: impl FnOnce() -> M,
        f: impl FnOnce(&M),
    ) {
        let _grow = self.grow.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.map.load_full();
        if let Some(s) = current.get(key) {
            return f(&s.metric);
        }
        if current.len() >= self.limit {
            let o = self.overflow.get_or_init(|| Series {
                labels: vec![("otel_metric_overflow", "true".into())],
                metric: metric(),
            });
            return f(&o.metric);
        }
        let (labels, m) = make();
        let s = Arc::new(Series { labels, metric: m });
        let mut next = Map::clone(&current);
        next.insert(key.clone(), Arc::clone(&s));
        self.map.store(Arc::new(next));
        f(&s.metric);
    }

    /// Every series, sorted by labels (a stable scrape), the overflow series last.
    pub(super) fn each(&self, mut f: impl FnMut(&Series<M>)) {
        let map = self.map.load_full();
        let mut all: Vec<&Arc<Series<M>>> = map.values().collect();
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        all.into_iter().for_each(|s| f(s));
        if let Some(o) = self.overflow.get() {
            f(o);
        }
    }

    /// How many series there are, the overflow series included.
    pub(super) fn len(&self) -> usize {
        self.map.load().len() + usize::from(self.overflow.get().is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    #[test]
    fn series_are_made_once_and_overflow_past_the_limit() {
        let m: SeriesMap<u32, AtomicU64> = SeriesMap::new(2);
        let add = |k: u32| {
            m.with(
                &k,
                || (vec![("k", k.to_string().into())], AtomicU64::new(0)),
                || AtomicU64::new(0),
                |c| {
                    c.fetch_add(1, Relaxed);
                },
            )
        };
        for k in [1, 2, 1, 3, 4, 2] {
            add(k);
        }
        let mut seen = Vec::new();
        m.each(|s| seen.push((s.labels[0].1.to_string(), s.metric.load(Relaxed))));
        assert_eq!(
            seen,
            [
                ("1".to_owned(), 2),
                ("2".to_owned(), 2),
                ("true".to_owned(), 2)
            ],
            "keys 3 and 4 arrived past the limit of 2 and share the overflow series"
        );
        assert_eq!(m.len(), 3);
    }
}
