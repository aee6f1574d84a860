//! Latency histograms with fixed buckets, and the one the engine keeps per
//! thread: how long each partition write took, from handing the bytes to
//! io_uring to the write (and fsync, when the flush policy asks) completing.
//! An acks=1 produce is answered only after its write, so this is the disk's
//! share of produce latency as the broker sees it, queueing included.
//!
//! Invariants:
//! - A partition's writer runs on its owner's thread, so each core counts
//!   into its own thread-local histogram: no atomics, no locks.
//! - Buckets count observations at or below their bound and above the
//!   previous one (not cumulative); the last counts those above every bound.
//!   `count` is their sum (asserted when histograms merge).

use std::cell::RefCell;
use std::time::Duration;

/// Upper bounds (seconds) of the buckets: 100 µs to 10 s.
pub const LATENCY_BUCKETS_S: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    pub count: u64,
    /// Count per bucket of [`LATENCY_BUCKETS_S`], then above the last bound.
    pub buckets: [u64; LATENCY_BUCKETS_S.len() + 1],
    pub sum_s: f64,
}

impl LatencyHistogram {
    pub fn observe(&mut self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BUCKETS_S.partition_point(|bound| *bound < seconds);
        self.count += 1;
        self.buckets[bucket] += 1;
        self.sum_s += seconds;
    }

    /// Adds `other`'s observations to these (summing cores for a scrape).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        self.count += other.count;
        self.sum_s += other.sum_s;
        for (sum, count) in self.buckets.iter_mut().zip(other.buckets) {
            *sum += count;
        }
        debug_assert_eq!(
            self.count,
            self.buckets.iter().sum::<u64>(),
            "count is the buckets' sum"
        );
    }

    /// `(bound, observations at or below it)` for every bound: the
    /// cumulative form Prometheus histograms use.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        LATENCY_BUCKETS_S
            .iter()
            .zip(self.buckets.iter())
            .scan(0, |total, (bound, count)| {
                *total += count;
                Some((*bound, *total))
            })
    }
}

thread_local! {
    static WRITE_LATENCY: RefCell<LatencyHistogram> = RefCell::new(LatencyHistogram::default());
    static SEGMENTS_RECYCLED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    static DIRECT_WRITE_BYTES: std::cell::Cell<DirectWriteBytes> = const { std::cell::Cell::new(DirectWriteBytes { written: 0, in_place: 0 }) };
}

/// Bytes this core's partitions wrote with O_DIRECT, and how many of them
/// went from where the request put them, without a copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectWriteBytes {
    pub written: u64,
    pub in_place: u64,
}

pub(crate) fn count_direct_write_bytes(written: usize, in_place: usize) {
    DIRECT_WRITE_BYTES.with(|cell| {
        let mut bytes = cell.get();
        bytes.written += written as u64;
        bytes.in_place += in_place as u64;
        cell.set(bytes);
    });
}

pub fn direct_write_bytes() -> DirectWriteBytes {
    DIRECT_WRITE_BYTES.with(std::cell::Cell::get)
}

pub(crate) fn count_recycled_segment() {
    SEGMENTS_RECYCLED.with(|count| count.set(count.get() + 1));
}

/// Segments of this core's partitions that reused a deleted segment's file.
pub fn segments_recycled() -> u64 {
    SEGMENTS_RECYCLED.with(std::cell::Cell::get)
}

/// Counts one partition write on the calling thread.
pub(crate) fn observe_write(elapsed: Duration) {
    WRITE_LATENCY.with(|histogram| histogram.borrow_mut().observe(elapsed));
}

/// The writes of partitions owned by the calling thread, since it started.
pub fn write_latency() -> LatencyHistogram {
    WRITE_LATENCY.with(|histogram| histogram.borrow().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_at_or_above_them() {
        let mut histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_micros(100));
        histogram.observe(Duration::from_micros(300));
        histogram.observe(Duration::from_secs(60));
        assert_eq!(histogram.count, 3);
        assert_eq!(histogram.buckets[0], 1, "100 µs is at the first bound");
        assert_eq!(histogram.buckets[2], 1, "300 µs is in (250 µs, 500 µs]");
        assert_eq!(histogram.buckets[LATENCY_BUCKETS_S.len()], 1, "above every bound");
        assert!((histogram.sum_s - 60.0004).abs() < 1e-9);
        let cumulative: Vec<u64> = histogram.cumulative().map(|(_, count)| count).collect();
        assert_eq!(&cumulative[..4], &[1, 1, 2, 2]);
        assert_eq!(cumulative.last(), Some(&2), "+Inf is `count`, not a bound");
    }

    #[test]
    fn merged_histograms_add_up() {
        let mut one = LatencyHistogram::default();
        one.observe(Duration::from_millis(1));
        let mut other = LatencyHistogram::default();
        other.observe(Duration::from_millis(1));
        other.observe(Duration::from_millis(20));
        one.merge(&other);
        assert_eq!(one.count, 3);
        assert_eq!(one.buckets[3], 2);
        assert_eq!(one.buckets[7], 1);
    }
}
