//! How a partition picks the write mode of each segment it starts.
//!
//! `log.io.mode=auto` writes a partition through the page cache while its
//! ingest is low, where a write is a memory copy instead of a device round
//! trip (on the development VM it halved the produce acknowledgement), and
//! with O_DIRECT once it is high, where the page cache would cap throughput
//! (~0.47 GB/s there, against ~2.3 GB/s direct) and cost more CPU per byte.
//! Many quiet partitions add up: the core's ingest from its partitions under
//! their own limit must be low too (256 partitions at 4 MB/s each went
//! through the page cache at half the throughput of O_DIRECT). A partition
//! over its own limit writes with O_DIRECT whatever its core does, so its
//! bytes never pass through the page cache and do not count: a firehose on
//! one partition no longer sends a quiet neighbour's acknowledgements
//! through the device (a 30 s produce burst sent the suite's e2e partitions
//! direct for their first 10 s, e2e p50 0.6-0.9 ms against 0.4 fresh).
//!
//! Invariants:
//! - The mode belongs to a segment: changing it rolls the active segment, so
//!   no file is written both ways.
//! - Each reason for O_DIRECT, the partition's own ingest and its core's,
//!   holds from the window that passes its threshold until a whole window
//!   under half of it (hysteresis, each on its own). A segment goes direct as
//!   soon as either holds, and back to the page cache when neither does, never
//!   sooner than [`DIRECT_SEGMENT_MIN_MS`] into a direct segment. So a
//!   partition hovering at a threshold rolls at most once per that time, and
//!   one sent direct by a burst on its core returns once the core is quiet,
//!   whatever its own rate under its threshold (with one shared band, a
//!   partition at 6 MB/s stayed direct for good after a neighbour's burst,
//!   doubling its produce acknowledgement).
//! - A partition (re)opens in the page-cache mode: its rate is unknown, and
//!   the first window above a threshold corrects it.

use std::cell::RefCell;

use crate::io::IoMode;

/// Ingest is measured over windows of this length.
pub const WINDOW_MS: i64 = 1000;
/// A direct segment stays direct at least this long.
pub const DIRECT_SEGMENT_MIN_MS: i64 = 10_000;

/// Buffered writes may run inline, on the core's own thread, while the
/// core's ingest that could go through the page cache is below this: a
/// copy of a few pages into the page cache costs less than io_uring's
/// hand-off to a kernel worker (ext4 has no non-blocking buffered writes).
/// At higher rates the worker's copy runs in parallel with the core's
/// network work, which is worth more (measured at full rate in
/// `log.io.mode=buffered`: 760-780 MB/s inline against 830-930 MB/s handed
/// off).
pub const INLINE_WRITES_CORE_BYTES_PER_S_MAX: u64 = 64 << 20;

/// What `log.io.mode` resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoPolicy {
    /// Every segment in this mode.
    Fixed(IoMode),
    /// Page cache while the partition takes less than
    /// `direct_above_bytes_per_s` and its core less than
    /// `core_direct_above_bytes_per_s`; O_DIRECT otherwise.
    Auto {
        direct_above_bytes_per_s: u64,
        core_direct_above_bytes_per_s: u64,
    },
}

/// Bytes appended over fixed windows.
#[derive(Debug, Clone, Copy)]
struct IngestWindow {
    start_ms: i64,
    bytes: u64,
    /// Bytes per second over the last whole window; 0 after an idle one.
    previous_bytes_per_s: u64,
}

impl IngestWindow {
    const fn new(now_ms: i64) -> Self {
        Self {
            start_ms: now_ms,
            bytes: 0,
            previous_bytes_per_s: 0,
        }
    }

    fn record(&mut self, bytes: u64, now_ms: i64) {
        let elapsed_ms = now_ms - self.start_ms;
        if elapsed_ms >= WINDOW_MS {
            // A gap of more than a window means the last whole one was idle.
            self.previous_bytes_per_s = if elapsed_ms < 2 * WINDOW_MS {
                self.bytes * 1000 / elapsed_ms as u64
            } else {
                0
            };
            self.start_ms = now_ms;
            self.bytes = 0;
        }
        self.bytes += bytes;
    }

    /// The current window, or the last whole one, passed `limit`.
    fn above(&self, limit_bytes_per_s: u64) -> bool {
        self.bytes > window_bytes(limit_bytes_per_s) || self.previous_bytes_per_s > limit_bytes_per_s
    }

    /// The last whole window and the current one so far stayed under half of `limit`.
    fn quiet_under(&self, limit_bytes_per_s: u64) -> bool {
        self.previous_bytes_per_s < limit_bytes_per_s / 2 && self.bytes < window_bytes(limit_bytes_per_s) / 2
    }
}

/// A rate that calls for O_DIRECT, with hysteresis: on above `limit`, off
/// only once quiet under half of it.
#[derive(Debug, Clone, Copy, Default)]
struct Hot(bool);

impl Hot {
    fn update(&mut self, window: &IngestWindow, limit_bytes_per_s: u64) -> bool {
        if window.above(limit_bytes_per_s) {
            self.0 = true;
        } else if window.quiet_under(limit_bytes_per_s) {
            self.0 = false;
        }
        self.0
    }
}

/// A core's ingest, all its partitions together.
#[derive(Debug, Clone, Copy)]
struct CoreIngest {
    window: IngestWindow,
    hot: Hot,
}

fn window_bytes(bytes_per_s: u64) -> u64 {
    bytes_per_s.saturating_mul(WINDOW_MS as u64) / 1000
}

thread_local! {
    /// What this core's partitions under their own limit appended (all of
    /// it under a fixed policy): a core runs on one thread, so this is the
    /// core's ingest that could go through the page cache.
    static CORE_INGEST: RefCell<CoreIngest> = const {
        RefCell::new(CoreIngest { window: IngestWindow::new(0), hot: Hot(false) })
    };
}

/// This core's ingest that could go through the page cache (see
/// `CORE_INGEST`) passed `limit_bytes_per_s` in the current or the last
/// whole window.
pub fn core_ingest_above(limit_bytes_per_s: u64) -> bool {
    CORE_INGEST.with(|core| core.borrow().window.above(limit_bytes_per_s))
}

/// A partition's recent ingest, and the segment mode it calls for.
#[derive(Debug)]
pub struct IoModeChooser {
    policy: IoPolicy,
    partition: IngestWindow,
    partition_hot: Hot,
}

impl IoModeChooser {
    pub fn new(policy: IoPolicy, now_ms: i64) -> Self {
        Self {
            policy,
            partition: IngestWindow::new(now_ms),
            partition_hot: Hot(false),
        }
    }

    /// The mode of a partition's first segment, or of its last after a restart.
    pub fn initial_mode(&self) -> IoMode {
        match self.policy {
            IoPolicy::Fixed(mode) => mode,
            IoPolicy::Auto { .. } => IoMode::Buffered,
        }
    }

    /// Counts `bytes` appended at `now_ms` for the partition, and for its
    /// core unless the partition is over its own limit (then it is direct
    /// anyway; a zero still moves the core's window on).
    pub fn record(&mut self, bytes: u64, now_ms: i64) {
        self.partition.record(bytes, now_ms);
        let core_bytes = if self.partition_hot.0 { 0 } else { bytes };
        CORE_INGEST.with(|core| core.borrow_mut().window.record(core_bytes, now_ms));
    }

    /// The mode the active segment should have, given its mode and age.
    pub fn wanted(&mut self, active_mode: IoMode, active_age_ms: i64) -> IoMode {
        let IoPolicy::Auto {
            direct_above_bytes_per_s: limit,
            core_direct_above_bytes_per_s: core_limit,
        } = self.policy
        else {
            return active_mode;
        };
        let partition_hot = self.partition_hot.update(&self.partition, limit);
        let core_hot = CORE_INGEST.with(|core| {
            let core = &mut *core.borrow_mut();
            core.hot.update(&core.window, core_limit)
        });
        match active_mode {
            IoMode::Buffered if partition_hot || core_hot => IoMode::Direct,
            IoMode::Direct if active_age_ms >= DIRECT_SEGMENT_MIN_MS && !partition_hot && !core_hot => IoMode::Buffered,
            mode => mode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 8 << 20;

    /// Each test runs on a thread of its own, so with its own core meter.
    fn auto() -> IoModeChooser {
        auto_with_core_limit(u64::MAX / 2)
    }

    fn auto_with_core_limit(core_limit: u64) -> IoModeChooser {
        IoModeChooser::new(
            IoPolicy::Auto {
                direct_above_bytes_per_s: LIMIT,
                core_direct_above_bytes_per_s: core_limit,
            },
            0,
        )
    }

    #[test]
    fn fixed_policies_never_switch() {
        let mut chooser = IoModeChooser::new(IoPolicy::Fixed(IoMode::Direct), 0);
        assert_eq!(chooser.initial_mode(), IoMode::Direct);
        chooser.record(1 << 30, 10);
        assert_eq!(chooser.wanted(IoMode::Direct, 0), IoMode::Direct);
        let mut chooser = IoModeChooser::new(IoPolicy::Fixed(IoMode::Buffered), 0);
        assert_eq!(chooser.wanted(IoMode::Buffered, 0), IoMode::Buffered);
    }

    #[test]
    fn auto_starts_in_the_page_cache_and_goes_direct_within_the_window() {
        let mut chooser = auto();
        assert_eq!(chooser.initial_mode(), IoMode::Buffered);
        chooser.record(LIMIT / 2, 100);
        assert_eq!(chooser.wanted(IoMode::Buffered, 100), IoMode::Buffered);
        chooser.record(LIMIT / 2 + 1, 200);
        assert_eq!(
            chooser.wanted(IoMode::Buffered, 200),
            IoMode::Direct,
            "no need to wait for the window's end"
        );
    }

    #[test]
    fn a_steady_low_rate_stays_in_the_page_cache() {
        let mut chooser = auto();
        for second in 0..30 {
            for tenth in 0..10 {
                chooser.record(LIMIT / 20, second * 1000 + tenth * 100);
            }
            assert_eq!(chooser.wanted(IoMode::Buffered, second * 1000), IoMode::Buffered);
        }
    }

    #[test]
    fn back_to_the_page_cache_only_after_a_quiet_window_and_the_minimum_age() {
        let mut chooser = auto();
        chooser.record(2 * LIMIT, 0);
        chooser.record(1, 1000);
        assert_eq!(
            chooser.wanted(IoMode::Direct, 1000),
            IoMode::Direct,
            "last window was busy"
        );
        chooser.record(LIMIT / 10, 2000);
        assert_eq!(
            chooser.wanted(IoMode::Direct, 2000),
            IoMode::Direct,
            "quiet, but the segment is young"
        );
        assert_eq!(chooser.wanted(IoMode::Direct, DIRECT_SEGMENT_MIN_MS), IoMode::Buffered);
        chooser.record(LIMIT, 2500);
        assert_eq!(
            chooser.wanted(IoMode::Direct, DIRECT_SEGMENT_MIN_MS),
            IoMode::Direct,
            "the current window is busy again"
        );
    }

    #[test]
    fn an_idle_gap_counts_as_a_quiet_window() {
        let mut chooser = auto();
        chooser.record(4 * LIMIT, 0);
        chooser.record(1, 1500);
        assert_eq!(chooser.wanted(IoMode::Buffered, 0), IoMode::Direct);
        chooser.record(1, 60_000);
        assert_eq!(chooser.wanted(IoMode::Direct, 60_000), IoMode::Buffered);
    }

    #[test]
    fn many_quiet_partitions_go_direct_when_their_core_is_busy() {
        let core_limit = 4 * LIMIT;
        let mut partitions: Vec<IoModeChooser> = (0..16).map(|_| auto_with_core_limit(core_limit)).collect();
        for partition in &mut partitions {
            partition.record(LIMIT / 2, 100);
        }
        // Each under its own limit; together 8 x LIMIT, twice the core's.
        assert!(partitions
            .iter_mut()
            .all(|p| p.wanted(IoMode::Buffered, 100) == IoMode::Direct));
        // Still busy a window later: they stay direct, even when old.
        for partition in &mut partitions {
            partition.record(LIMIT / 2, 1100);
        }
        assert!(partitions
            .iter_mut()
            .all(|p| p.wanted(IoMode::Direct, DIRECT_SEGMENT_MIN_MS) == IoMode::Direct));
    }

    #[test]
    fn a_partition_sent_direct_by_its_cores_burst_returns_when_the_core_is_quiet() {
        let core_limit = 8 * LIMIT;
        let mut neighbour = auto_with_core_limit(core_limit);
        let mut steady = auto_with_core_limit(core_limit);
        // A neighbour's burst at twice the core's limit; the steady partition
        // runs at three quarters of its own limit, inside its hysteresis band.
        let steady_per_tenth = LIMIT * 3 / 4 / 10;
        neighbour.record(2 * core_limit, 0);
        steady.record(steady_per_tenth, 50);
        assert_eq!(steady.wanted(IoMode::Buffered, 50), IoMode::Direct, "the core is hot");
        for tenth in 1..=130 {
            steady.record(steady_per_tenth, tenth * 100);
        }
        assert_eq!(
            steady.wanted(IoMode::Direct, 13_000),
            IoMode::Buffered,
            "the core is quiet and the partition was never above its own limit"
        );
        // The partition's own hysteresis is unchanged: once above its limit,
        // three quarters of it keeps it direct.
        let mut own = auto();
        own.record(2 * LIMIT, 0);
        assert_eq!(own.wanted(IoMode::Buffered, 0), IoMode::Direct);
        for tenth in 10..=130 {
            own.record(steady_per_tenth, tenth * 100);
        }
        assert_eq!(own.wanted(IoMode::Direct, 13_000), IoMode::Direct);
    }

    #[test]
    fn a_partition_over_its_own_limit_leaves_its_quiet_neighbours_in_the_page_cache() {
        let core_limit = 8 * LIMIT;
        let mut firehose = auto_with_core_limit(core_limit);
        // Its first window counts for the core until it passes its own limit.
        firehose.record(LIMIT + 1, 0);
        assert_eq!(firehose.wanted(IoMode::Buffered, 0), IoMode::Direct);
        for tenth in 1..=30 {
            firehose.record(core_limit, tenth * 100);
            assert_eq!(firehose.wanted(IoMode::Direct, tenth * 100), IoMode::Direct);
        }
        // Three seconds at ten times the core's limit, all of it direct: a
        // partition starting now, under its own limit, stays in the page cache.
        let mut quiet = auto_with_core_limit(core_limit);
        quiet.record(LIMIT / 10, 3050);
        assert_eq!(quiet.wanted(IoMode::Buffered, 3050), IoMode::Buffered);
        firehose.record(core_limit, 3100);
        quiet.record(LIMIT / 10, 3150);
        assert_eq!(quiet.wanted(IoMode::Buffered, 3150), IoMode::Buffered);
        // Under a fixed policy every byte counts, as all go through one mode.
        let mut buffered = IoModeChooser::new(IoPolicy::Fixed(IoMode::Buffered), 0);
        buffered.record(core_limit + 1, 3200);
        assert!(core_ingest_above(core_limit));
    }
}
