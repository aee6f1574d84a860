//! Per-core cache of recently appended batches, so tailing consumers are served
//! from memory (the very `Bytes` the producer sent) instead of from disk.
//!
//! Owned by one core, shared by that core's partitions through `Rc<RefCell<_>>`.
//!
//! A growing cache ([`BatchCache::growing`]) starts small and doubles its
//! budget, up to a maximum, when a read misses a batch it evicted for room:
//! it remembers the offsets (not the bytes) of what it evicted, as much as
//! the room it could still grow by. So a broker whose consumers keep up, or
//! that has none, never holds more than the start budget, and never pays for
//! first touching memory it would not use (on the development VM, 73% of a
//! fresh broker's CPU while a 2.4 GB cache filled); one whose consumers lag
//! grows until they read from memory.
//!
//! Invariants:
//! - `used_bytes` is the sum of the cached batch sizes and stays within
//!   `budget_bytes` after every insert (the oldest batches of the core go first).
//! - `budget_bytes` <= `budget_max_bytes`, and it only grows.
//! - Per partition, cached batches are contiguous and ordered by offset.
//! - The remembered evictions cover at most `budget_max_bytes - budget_bytes`.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::batch::StoredBatch;

/// Identifies a partition within a core; assigned by the owner.
pub type PartitionKey = u64;

#[derive(Debug, Clone)]
pub struct CachedBatch {
    pub base_offset: i64,
    pub next_offset: i64,
    pub bytes: StoredBatch,
}

/// What [`BatchCache::read`] found: the batches' bytes, and the offset after
/// the last of them (the read offset when none fit).
#[derive(Debug)]
pub struct CachedRead {
    pub chunks: Vec<Bytes>,
    pub next_offset: i64,
}

#[derive(Debug)]
pub struct BatchCache {
    budget_bytes: usize,
    budget_max_bytes: usize,
    used_bytes: usize,
    partitions: HashMap<PartitionKey, VecDeque<CachedBatch>>,
    /// Insertion order across partitions, for eviction.
    age_order: VecDeque<(PartitionKey, i64)>,
    evicted: EvictedRanges,
}

/// Offset ranges of batches evicted for room, newest last, within a byte
/// limit: a read inside one is a miss a larger budget would have served.
#[derive(Debug, Default)]
struct EvictedRanges {
    by_partition: HashMap<PartitionKey, VecDeque<(i64, i64)>>,
    /// Across partitions, oldest first: (partition, base offset, bytes).
    order: VecDeque<(PartitionKey, i64, usize)>,
    bytes: usize,
}

impl EvictedRanges {
    fn remember(&mut self, key: PartitionKey, batch: &CachedBatch, limit_bytes: usize) {
        let bytes = batch.bytes.len();
        self.by_partition
            .entry(key)
            .or_default()
            .push_back((batch.base_offset, batch.next_offset));
        self.order.push_back((key, batch.base_offset, bytes));
        self.bytes += bytes;
        self.trim(limit_bytes);
    }

    fn trim(&mut self, limit_bytes: usize) {
        while self.bytes > limit_bytes {
            let Some((key, base_offset, bytes)) = self.order.pop_front() else {
                break;
            };
            self.bytes -= bytes;
            if let Some(ranges) = self.by_partition.get_mut(&key) {
                if ranges.front().is_some_and(|(base, _)| *base == base_offset) {
                    ranges.pop_front();
                }
                if ranges.is_empty() {
                    self.by_partition.remove(&key);
                }
            }
        }
    }

    fn contains(&self, key: PartitionKey, offset: i64) -> bool {
        self.by_partition.get(&key).is_some_and(|ranges| {
            let after = ranges.partition_point(|(_, next)| *next <= offset);
            ranges.get(after).is_some_and(|(base, _)| *base <= offset)
        })
    }
}

impl BatchCache {
    /// A cache of a fixed budget.
    pub fn new(budget_bytes: usize) -> Self {
        Self::growing(budget_bytes, budget_bytes)
    }

    /// A cache that starts at `start_bytes` and grows up to `max_bytes` while
    /// reads miss batches it evicted.
    pub fn growing(start_bytes: usize, max_bytes: usize) -> Self {
        Self {
            budget_bytes: start_bytes.min(max_bytes),
            budget_max_bytes: max_bytes,
            used_bytes: 0,
            partitions: HashMap::new(),
            age_order: VecDeque::new(),
            evicted: EvictedRanges::default(),
        }
    }

    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    /// Doubles the budget (up to the maximum) and forgets evictions beyond
    /// the room still left to grow.
    fn grow(&mut self) {
        self.budget_bytes = self.budget_bytes.saturating_mul(2).max(1).min(self.budget_max_bytes);
        self.evicted.trim(self.budget_max_bytes - self.budget_bytes);
        debug_assert!(self.budget_bytes <= self.budget_max_bytes);
    }

    pub fn insert(&mut self, key: PartitionKey, batch: CachedBatch) {
        if batch.bytes.len() > self.budget_bytes {
            return;
        }
        let batches = self.partitions.entry(key).or_default();
        if let Some(last) = batches.back() {
            if last.next_offset != batch.base_offset {
                // Not contiguous (a gap from a failed write): start afresh.
                self.used_bytes -= batches.iter().map(|b| b.bytes.len()).sum::<usize>();
                batches.clear();
            }
        }
        self.used_bytes += batch.bytes.len();
        self.age_order.push_back((key, batch.base_offset));
        batches.push_back(batch);
        while self.used_bytes > self.budget_bytes {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        let Some((key, base_offset)) = self.age_order.pop_front() else {
            return;
        };
        if let Some(batches) = self.partitions.get_mut(&key) {
            if batches.front().is_some_and(|b| b.base_offset == base_offset) {
                if let Some(batch) = batches.pop_front() {
                    self.used_bytes -= batch.bytes.len();
                    let room_to_grow_bytes = self.budget_max_bytes - self.budget_bytes;
                    if room_to_grow_bytes > 0 {
                        self.evicted.remember(key, &batch, room_to_grow_bytes);
                    }
                }
            }
        }
    }

    /// Drops a partition's cached batches below `offset` (rewritten by
    /// compaction or deleted by retention).
    pub fn evict_below(&mut self, key: PartitionKey, offset: i64) {
        if let Some(batches) = self.partitions.get_mut(&key) {
            while batches.front().is_some_and(|b| b.next_offset <= offset) {
                if let Some(batch) = batches.pop_front() {
                    self.used_bytes -= batch.bytes.len();
                }
            }
        }
    }

    pub fn remove_partition(&mut self, key: PartitionKey) {
        if let Some(batches) = self.partitions.remove(&key) {
            self.used_bytes -= batches.iter().map(|b| b.bytes.len()).sum::<usize>();
        }
    }

    /// Whole cached batches starting with the one that holds `offset`, none past
    /// `high_watermark`, within `max_bytes` (the first batch always, if
    /// `min_one_batch`). `None` when `offset` is not in the cache; if it was
    /// evicted for room, a growing cache grows.
    pub fn read(
        &mut self,
        key: PartitionKey,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        high_watermark: i64,
    ) -> Option<CachedRead> {
        let Some(batches) = self
            .partitions
            .get(&key)
            .filter(|batches| batches.front().is_some_and(|first| first.base_offset <= offset))
        else {
            if self.evicted.contains(key, offset) {
                self.grow();
            }
            return None;
        };
        let start = batches.partition_point(|b| b.next_offset <= offset);
        if start == batches.len() {
            return None;
        }
        let mut chunks = Vec::new();
        let mut total_bytes = 0usize;
        let mut next_offset = offset;
        for batch in batches.range(start..) {
            if batch.next_offset > high_watermark {
                break;
            }
            let fits = total_bytes + batch.bytes.len() <= max_bytes;
            if !(fits || (chunks.is_empty() && min_one_batch)) {
                break;
            }
            total_bytes += batch.bytes.len();
            next_offset = batch.next_offset;
            chunks.extend(batch.bytes.chunks().cloned());
        }
        Some(CachedRead { chunks, next_offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base_offset: i64, count: i64, len: usize) -> CachedBatch {
        CachedBatch {
            base_offset,
            next_offset: base_offset + count,
            bytes: StoredBatch {
                head: Bytes::new(),
                rest: Bytes::from(vec![0u8; len]),
            },
        }
    }

    #[test]
    fn serves_from_the_batch_holding_the_offset() {
        let mut cache = BatchCache::new(1000);
        cache.insert(1, batch(0, 10, 100));
        cache.insert(1, batch(10, 10, 100));
        let read = cache.read(1, 15, 1000, true, 20).expect("cached");
        assert_eq!(read.chunks.len(), 1);
        assert_eq!(read.next_offset, 20);
        assert!(cache.read(1, 20, 1000, true, 20).is_none());
        assert_eq!(
            cache.read(1, 0, 1000, true, 10).expect("cached").chunks.len(),
            1,
            "capped at hw"
        );
    }

    #[test]
    fn evicts_oldest_across_partitions() {
        let mut cache = BatchCache::new(250);
        cache.insert(1, batch(0, 1, 100));
        cache.insert(2, batch(0, 1, 100));
        cache.insert(1, batch(1, 1, 100));
        assert!(cache.used_bytes() <= 250);
        assert!(cache.read(1, 0, 1000, true, 10).is_none(), "oldest evicted");
        assert!(cache.read(2, 0, 1000, true, 10).is_some());
    }

    #[test]
    fn a_growing_cache_doubles_when_a_read_misses_a_batch_it_evicted_for_room() {
        let mut cache = BatchCache::growing(200, 800);
        for offset in 0..4 {
            cache.insert(1, batch(offset, 1, 100));
        }
        assert_eq!(cache.budget_bytes(), 200, "inserts alone never grow it");
        assert!(cache.read(1, 3, 1000, true, 10).is_some());
        assert!(cache.read(1, 1, 1000, true, 10).is_none(), "evicted");
        assert_eq!(
            cache.budget_bytes(),
            400,
            "a miss on an evicted batch doubles the budget"
        );
        for offset in 4..8 {
            cache.insert(1, batch(offset, 1, 100));
        }
        assert!(cache.read(1, 4, 1000, true, 10).is_some(), "the larger budget holds it");
        assert!(cache.read(1, 3, 1000, true, 10).is_none());
        assert!(cache.read(1, 1, 1000, true, 10).is_none());
        assert_eq!(cache.budget_bytes(), 800, "capped at the maximum");
        cache.read(1, 0, 1000, true, 10);
        assert_eq!(cache.budget_bytes(), 800);
    }

    #[test]
    fn a_growing_cache_ignores_misses_beyond_the_room_it_could_grow_by() {
        let mut cache = BatchCache::growing(100, 300);
        for offset in 0..10 {
            cache.insert(1, batch(offset, 1, 100));
        }
        // It remembers the last 200 bytes evicted (offsets 7 and 8); a reader
        // further back would not be served by any budget it may take.
        assert!(cache.read(1, 2, 1000, true, 10).is_none());
        assert!(cache.read(2, 8, 1000, true, 10).is_none(), "another partition");
        assert_eq!(cache.budget_bytes(), 100);
        assert!(cache.read(1, 7, 1000, true, 10).is_none());
        assert_eq!(cache.budget_bytes(), 200);
    }

    #[test]
    fn a_cache_of_no_bytes_holds_nothing() {
        let mut cache = BatchCache::growing(0, 0);
        cache.insert(1, batch(0, 1, 100));
        assert!(cache.read(1, 0, 1000, true, 10).is_none());
        assert_eq!((cache.used_bytes(), cache.budget_bytes()), (0, 0));
    }

    #[test]
    fn a_fixed_cache_never_grows() {
        let mut cache = BatchCache::new(100);
        cache.insert(1, batch(0, 1, 100));
        cache.insert(1, batch(1, 1, 100));
        assert!(cache.read(1, 0, 1000, true, 10).is_none());
        assert_eq!(cache.budget_bytes(), 100);
    }

    #[test]
    fn eviction_below_an_offset() {
        let mut cache = BatchCache::new(10_000);
        cache.insert(1, batch(0, 5, 100));
        cache.insert(1, batch(5, 5, 100));
        cache.evict_below(1, 5);
        assert!(cache.read(1, 0, 1000, true, 10).is_none());
        assert!(cache.read(1, 5, 1000, true, 10).is_some());
        assert_eq!(cache.used_bytes(), 100);
    }

    #[test]
    fn max_bytes_limits_but_first_batch_may_exceed() {
        let mut cache = BatchCache::new(10_000);
        cache.insert(1, batch(0, 1, 500));
        cache.insert(1, batch(1, 1, 500));
        assert_eq!(cache.read(1, 0, 100, true, 10).expect("cached").chunks.len(), 1);
        let none_fit = cache.read(1, 0, 100, false, 10).expect("cached");
        assert_eq!((none_fit.chunks.len(), none_fit.next_offset), (0, 0));
        let both = cache.read(1, 0, 1000, false, 10).expect("cached");
        assert_eq!((both.chunks.len(), both.next_offset), (2, 2));
    }
}
