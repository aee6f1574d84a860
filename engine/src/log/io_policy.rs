//! How a partition picks the write mode of each segment it starts.
//!
//! `log.io.mode=auto` writes a partition through the page cache while its
//! ingest is low, where a write is a memory copy instead of a device round
//! trip (on the development VM it halved the produce acknowledgement), and
//! with O_DIRECT once it is high, where the page cache would cap throughput
//! (~0.47 GB/s there, against ~2.3 GB/s direct).
//!
//! Invariants:
//! - The mode belongs to a segment: changing it rolls the active segment, so
//!   no file is written both ways.
//! - To O_DIRECT as soon as the current window has passed the threshold; back
//!   to the page cache only after a whole window under half of it, and never
//!   sooner than [`DIRECT_SEGMENT_MIN_MS`] into a direct segment. So a
//!   partition hovering at the threshold rolls at most once per that time.
//! - A partition (re)opens in the page-cache mode: its rate is unknown, and
//!   the first window above the threshold corrects it.

use crate::io::IoMode;

/// Ingest is measured over windows of this length.
pub const WINDOW_MS: i64 = 1000;
/// A direct segment stays direct at least this long.
pub const DIRECT_SEGMENT_MIN_MS: i64 = 10_000;

/// What `log.io.mode` resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoPolicy {
    /// Every segment in this mode.
    Fixed(IoMode),
    /// Page cache while the partition takes less than
    /// `direct_above_bytes_per_s`, O_DIRECT above it.
    Auto { direct_above_bytes_per_s: u64 },
}

/// A partition's recent ingest, and the segment mode it calls for.
#[derive(Debug)]
pub struct IoModeChooser {
    policy: IoPolicy,
    window_start_ms: i64,
    window_bytes: u64,
    /// Bytes per second over the last whole window; 0 after an idle one.
    previous_window_bytes_per_s: u64,
}

impl IoModeChooser {
    pub fn new(policy: IoPolicy, now_ms: i64) -> Self {
        Self {
            policy,
            window_start_ms: now_ms,
            window_bytes: 0,
            previous_window_bytes_per_s: 0,
        }
    }

    /// The mode of a partition's first segment, or of its last after a restart.
    pub fn initial_mode(&self) -> IoMode {
        match self.policy {
            IoPolicy::Fixed(mode) => mode,
            IoPolicy::Auto { .. } => IoMode::Buffered,
        }
    }

    /// Counts `bytes` appended at `now_ms`.
    pub fn record(&mut self, bytes: u64, now_ms: i64) {
        let elapsed_ms = now_ms - self.window_start_ms;
        if elapsed_ms >= WINDOW_MS {
            // A gap of more than a window means the last whole one was idle.
            self.previous_window_bytes_per_s = if elapsed_ms < 2 * WINDOW_MS {
                self.window_bytes * 1000 / elapsed_ms as u64
            } else {
                0
            };
            self.window_start_ms = now_ms;
            self.window_bytes = 0;
        }
        self.window_bytes += bytes;
    }

    /// The mode the active segment should have, given its mode and age.
    pub fn wanted(&self, active_mode: IoMode, active_age_ms: i64) -> IoMode {
        let IoPolicy::Auto {
            direct_above_bytes_per_s: limit,
        } = self.policy
        else {
            return active_mode;
        };
        let window_limit_bytes = limit.saturating_mul(WINDOW_MS as u64) / 1000;
        match active_mode {
            IoMode::Buffered if self.window_bytes > window_limit_bytes || self.previous_window_bytes_per_s > limit => {
                IoMode::Direct
            }
            IoMode::Direct
                if active_age_ms >= DIRECT_SEGMENT_MIN_MS
                    && self.previous_window_bytes_per_s < limit / 2
                    && self.window_bytes < window_limit_bytes / 2 =>
            {
                IoMode::Buffered
            }
            mode => mode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 8 << 20;

    fn auto() -> IoModeChooser {
        IoModeChooser::new(
            IoPolicy::Auto {
                direct_above_bytes_per_s: LIMIT,
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
        let chooser = IoModeChooser::new(IoPolicy::Fixed(IoMode::Buffered), 0);
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
}
