//! Sets of event ids: the hasher every id set of the crate uses, and the bounded set of the most
//! recent ids (the poller's and the ClickHouse store's).
//!
//! Event ids come from outside (GitHub's answers, files anyone may write), so a hash whose
//! bucket choice an input can steer would let crafted ids pile into the same buckets and turn
//! every insert into a scan: the multiplying hash used before put the low bits of the id straight
//! into the bucket index, and 100,000 ids chosen for it made the memory store's inserts about
//! two orders of magnitude slower (`benches/README.md`). [`IdHasher`] is foldhash, keyed per set
//! and per process from the operating system's randomness, so an id's bucket cannot be guessed
//! from outside, at the speed of a multiply.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::OnceLock;

use foldhash::SharedSeed;
use foldhash::fast::{FoldHasher, SeedableRandomState};

/// A set of event ids, hashed with [`IdHasher`].
pub(crate) type IdSet = HashSet<u64, IdHasher>;

/// The hasher of event id sets: foldhash with a secret seed. The process-wide part of the seed
/// and each set's own part come from std's `RandomState`, which draws its keys from the
/// operating system.
#[derive(Clone, Debug)]
pub(crate) struct IdHasher(SeedableRandomState);

impl Default for IdHasher {
    fn default() -> IdHasher {
        static PROCESS_SEED: OnceLock<SharedSeed> = OnceLock::new();
        let shared = PROCESS_SEED.get_or_init(|| SharedSeed::from_u64(random_u64()));
        IdHasher(SeedableRandomState::with_seed(random_u64(), shared))
    }
}

impl BuildHasher for IdHasher {
    type Hasher = FoldHasher<'static>;

    fn build_hasher(&self) -> FoldHasher<'static> {
        self.0.build_hasher()
    }
}

/// 64 random bits: std's `RandomState` keys come from the operating system once per thread and
/// change with every `RandomState`, so hashing a constant with a fresh one gives new bits.
fn random_u64() -> u64 {
    std::hash::RandomState::new().hash_one(0x5eed_u64)
}

/// The most recent ids, at most `capacity`: the oldest are forgotten first.
pub(crate) struct RecentIds {
    set: IdSet,
    order: VecDeque<u64>,
    capacity: usize,
}

impl RecentIds {
    /// An empty set that remembers up to `capacity` ids (none with 0).
    pub(crate) fn new(capacity: usize) -> RecentIds {
        let initial = capacity.min(1 << 16);
        RecentIds {
            set: IdSet::with_capacity_and_hasher(initial, IdHasher::default()),
            order: VecDeque::with_capacity(initial),
            capacity,
        }
    }

    /// Whether `id` is remembered.
    #[cfg_attr(not(feature = "clickhouse"), allow(dead_code))]
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.set.contains(&id)
    }

    /// Forgets every id (the table they were stored in was dropped).
    #[cfg_attr(not(feature = "clickhouse"), allow(dead_code))]
    pub(crate) fn clear(&mut self) {
        self.set.clear();
        self.order.clear();
    }

    /// Remembers `id`, forgetting the oldest beyond the capacity; whether it was not remembered
    /// yet.
    pub(crate) fn insert(&mut self, id: u64) -> bool {
        if self.capacity == 0 {
            return true;
        }
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_are_bounded_oldest_out() {
        let mut recent = RecentIds::new(3);
        for id in 1..=4 {
            assert!(recent.insert(id));
        }
        assert!(!recent.contains(1));
        assert!((2..=4).all(|id| recent.contains(id)));
        assert!(!recent.insert(3));
        assert_eq!(recent.order.len(), 3);
        assert_eq!(recent.set.len(), 3);
    }

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut recent = RecentIds::new(2);
        assert!(recent.insert(1));
        assert!(recent.insert(2));
        assert!(!recent.insert(1));
        assert!(recent.insert(3));
        assert!(recent.insert(1), "1 was forgotten");
        assert!(!recent.insert(3));
    }

    #[test]
    fn a_capacity_of_zero_remembers_nothing() {
        let mut recent = RecentIds::new(0);
        assert!(recent.insert(7));
        assert!(recent.insert(7));
        assert!(!recent.contains(7));
    }

    /// Ids that share their low bits, which steered the old multiplying hash into one bucket,
    /// spread like any others: no bucket choice follows from the id alone. Checked on the hash
    /// values of 4,096 such ids in 4,096 buckets (the low 12 bits, as a table of that size
    /// uses): the old hash puts all of them in one; random choice would fill about 2,600
    /// buckets, none with more than about 7. Over 20,000 seeds the keyed hash never used fewer
    /// than 2,151 buckets nor put more than 14 ids in one.
    #[test]
    fn crafted_ids_do_not_share_buckets() {
        let crafted: Vec<u64> = (0..4096u64).map(|x| (x << 29) | x).collect();
        let old = |n: u64| (n ^ (n >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let buckets = |hash: &dyn Fn(u64) -> u64| {
            let mut load = std::collections::HashMap::new();
            for &id in &crafted {
                *load.entry(hash(id) & 4095).or_insert(0u32) += 1;
            }
            (load.len(), load.values().copied().max().unwrap_or(0))
        };
        assert_eq!(
            buckets(&old),
            (1, 4096),
            "the old hash: every id in one bucket"
        );
        for _ in 0..10 {
            let hasher = IdHasher::default();
            let (used, fullest) = buckets(&|id| hasher.hash_one(id));
            assert!(used > 1_500, "{used} buckets used");
            assert!(fullest <= 32, "{fullest} ids in one bucket");
        }
    }

    #[test]
    fn each_set_has_its_own_seed() {
        let (a, b) = (IdHasher::default(), IdHasher::default());
        let same = (0..64u64)
            .filter(|&id| a.hash_one(id) == b.hash_one(id))
            .count();
        assert_eq!(same, 0);
    }
}
