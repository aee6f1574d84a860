//! Broker metrics, counted per core and summed only when scraped.
//!
//! Each core counts into its own thread-local [`CoreMetrics`]: plain integers,
//! no atomics and no locks on the request path. A scrape (the HTTP endpoint in
//! [`http`]) asks every core for a [`CoreSnapshot`] by message
//! (`ShardRequest::Metrics`), so it reads a core's numbers on that core.
//!
//! Invariants:
//! - Only the core's own thread touches its `CoreMetrics` (it is thread-local).
//! - Counters only grow; gauges (connections, queue depth) are read at scrape.
//! - Records out are not counted: zero-copy fetch never parses what it sends
//!   (Kafka likewise has bytes out but no messages out per topic).

pub mod exposition;
pub mod http;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;

pub use ringlog_engine::stats::LatencyHistogram;

/// API keys counted; Kafka's keys are below this.
const API_KEYS_MAX: usize = 80;
/// Not a Kafka error code: marks a request that closed its connection.
pub const CONNECTION_CLOSED_CODE: i16 = i16::MIN;
/// Seconds of traffic kept for `ringlog status` ("the last minute").
pub const TRAFFIC_WINDOW_S: usize = 60;

#[derive(Debug, Clone, Copy, Default)]
pub struct TopicTraffic {
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub records_out: u64,
}

impl std::ops::AddAssign for TopicTraffic {
    fn add_assign(&mut self, other: Self) {
        self.bytes_in += other.bytes_in;
        self.records_in += other.records_in;
        self.bytes_out += other.bytes_out;
        self.records_out += other.records_out;
    }
}

impl std::iter::Sum for TopicTraffic {
    fn sum<I: Iterator<Item = Self>>(traffic: I) -> Self {
        traffic.fold(Self::default(), |mut total, one| {
            total += one;
            total
        })
    }
}

/// Traffic per second over the last [`TRAFFIC_WINDOW_S`] seconds: a ring of
/// one-second slots, each stamped with the second it counts.
#[derive(Debug, Clone)]
pub struct TrafficWindow {
    stamps_s: [u64; TRAFFIC_WINDOW_S],
    slots: [TopicTraffic; TRAFFIC_WINDOW_S],
}

impl Default for TrafficWindow {
    fn default() -> Self {
        Self {
            stamps_s: [0; TRAFFIC_WINDOW_S],
            slots: [TopicTraffic::default(); TRAFFIC_WINDOW_S],
        }
    }
}

impl TrafficWindow {
    fn slot(&mut self, now_s: u64) -> &mut TopicTraffic {
        let index = (now_s % TRAFFIC_WINDOW_S as u64) as usize;
        if self.stamps_s[index] != now_s {
            self.stamps_s[index] = now_s;
            self.slots[index] = TopicTraffic::default();
        }
        &mut self.slots[index]
    }

    /// Totals of the `TRAFFIC_WINDOW_S` whole seconds before `now_s`.
    pub fn last_window(&self, now_s: u64) -> TopicTraffic {
        self.stamps_s
            .iter()
            .zip(&self.slots)
            .filter(|(stamp_s, _)| **stamp_s < now_s && now_s - **stamp_s <= TRAFFIC_WINDOW_S as u64)
            .map(|(_, slot)| *slot)
            .sum()
    }
}

/// What one core has counted since it started.
#[derive(Debug, Clone)]
pub struct CoreMetrics {
    /// Request latency per API key.
    pub apis: Vec<LatencyHistogram>,
    /// `(api key, error code)` -> responses or partitions that carried it;
    /// [`CONNECTION_CLOSED_CODE`] counts requests that closed their connection.
    pub errors: BTreeMap<(i16, i16), u64>,
    pub topics: HashMap<Arc<str>, TopicTraffic>,
    pub window: TrafficWindow,
    pub connections_open: u64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    /// Requests this core sent to another core (partitions, groups or
    /// transactions it does not own); clients that follow core listeners'
    /// leaders keep this near zero.
    pub messages_to_other_cores: u64,
}

impl Default for CoreMetrics {
    fn default() -> Self {
        Self {
            apis: vec![LatencyHistogram::default(); API_KEYS_MAX],
            errors: BTreeMap::new(),
            topics: HashMap::new(),
            window: TrafficWindow::default(),
            connections_open: 0,
            connections_accepted: 0,
            connections_refused: 0,
            messages_to_other_cores: 0,
        }
    }
}

thread_local! {
    static CORE_METRICS: RefCell<CoreMetrics> = RefCell::new(CoreMetrics::default());
    /// The core this thread runs; `None` off the core threads.
    static CURRENT_CORE: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Called once by each core thread at start.
pub fn set_current_core(core_id: usize) {
    CURRENT_CORE.with(|current| current.set(Some(core_id)));
}

/// A request is on its way to `core`; counted when that is another core.
pub fn count_message_to_core(core: usize) {
    if CURRENT_CORE
        .with(|current| current.get())
        .is_some_and(|own| own != core)
    {
        with_core(|m| m.messages_to_other_cores += 1);
    }
}

fn with_core<T>(update: impl FnOnce(&mut CoreMetrics) -> T) -> T {
    CORE_METRICS.with(|metrics| update(&mut metrics.borrow_mut()))
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A request of `api_key` took `elapsed` from its frame to its response.
pub fn observe_request(api_key: i16, elapsed: Duration) {
    with_core(|m| {
        if let Some(stats) = usize::try_from(api_key).ok().and_then(|k| m.apis.get_mut(k)) {
            stats.observe(elapsed);
        }
    });
}

/// A response (or one partition of it) carried `error`.
pub fn count_error(api_key: i16, error: ResponseError) {
    count_error_code(api_key, error.code());
}

/// A request closed its connection instead of getting a response.
pub fn count_connection_error(api_key: i16) {
    count_error_code(api_key, CONNECTION_CLOSED_CODE);
}

fn count_error_code(api_key: i16, code: i16) {
    with_core(|m| *m.errors.entry((api_key, code)).or_default() += 1);
}

fn topic_entry<'a>(m: &'a mut CoreMetrics, topic: &str) -> &'a mut TopicTraffic {
    if !m.topics.contains_key(topic) {
        m.topics.insert(topic.into(), TopicTraffic::default());
    }
    m.topics.get_mut(topic).expect("inserted above")
}

pub fn count_produced(topic: &str, bytes: u64, records: u64) {
    count_traffic(
        topic,
        TopicTraffic {
            bytes_in: bytes,
            records_in: records,
            ..TopicTraffic::default()
        },
    );
}

pub fn count_fetched(topic: &str, bytes: u64, records: u64) {
    count_traffic(
        topic,
        TopicTraffic {
            bytes_out: bytes,
            records_out: records,
            ..TopicTraffic::default()
        },
    );
}

/// Adds to the topic's totals and to this second's slot of the window.
fn count_traffic(topic: &str, traffic: TopicTraffic) {
    with_core(|m| {
        *topic_entry(m, topic) += traffic;
        *m.window.slot(now_s()) += traffic;
    });
}

pub fn connection_opened() {
    with_core(|m| {
        m.connections_open += 1;
        m.connections_accepted += 1;
    });
}

pub fn connection_closed() {
    with_core(|m| m.connections_open = m.connections_open.saturating_sub(1));
}

pub fn connection_refused() {
    with_core(|m| m.connections_refused += 1);
}

/// Client connections this core serves now.
pub fn core_connections_open() -> u64 {
    with_core(|m| m.connections_open)
}

/// A copy of this core's counters, for a scrape.
pub fn core_counters() -> CoreMetrics {
    with_core(|m| m.clone())
}

/// One partition as a scrape sees it.
#[derive(Debug, Clone)]
pub struct PartitionStats {
    pub topic: Arc<str>,
    pub partition: i32,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub segments: usize,
    /// The active segment is written with O_DIRECT (not the page cache).
    pub writes_direct: bool,
}

/// A group's committed offset for one partition.
#[derive(Debug, Clone)]
pub struct CommittedStats {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Everything one core reports to a scrape.
#[derive(Debug, Clone)]
pub struct CoreSnapshot {
    pub core_id: usize,
    pub counters: CoreMetrics,
    /// Messages from other cores waiting in this core's channel.
    pub queue_depth: usize,
    /// CPU time this core's thread has used (it never sleeps while busy).
    pub busy_seconds: f64,
    pub partitions: Vec<PartitionStats>,
    pub committed: Vec<CommittedStats>,
    /// Partition writes (and fsyncs) of this core's partitions.
    pub log_writes: LatencyHistogram,
    pub segments_recycled: u64,
    /// Bytes of batches written with O_DIRECT, and how many of those were
    /// written from the request frame itself (no copy).
    pub direct_write_bytes: ringlog_engine::stats::DirectWriteBytes,
    /// The batch cache: bytes held and its current budget.
    pub cache_used_bytes: usize,
    pub cache_budget_bytes: usize,
}

/// CPU seconds used by the calling thread.
pub fn thread_cpu_seconds() -> f64 {
    let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    if status != 0 {
        return 0.0;
    }
    time.tv_sec as f64 + time.tv_nsec as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_window_keeps_only_the_last_minute() {
        let mut window = TrafficWindow::default();
        window.slot(1_000).bytes_in += 10;
        window.slot(1_030).bytes_in += 20;
        window.slot(1_059).bytes_in += 40;
        // The current second is still filling: left out.
        window.slot(1_061).bytes_in += 80;
        assert_eq!(window.last_window(1_061).bytes_in, 60);
        // A minute later 1_030 has aged out.
        assert_eq!(window.last_window(1_100).bytes_in, 80 + 40);
        // A slot reused for a new second forgets its old count.
        window.slot(1_090).bytes_in += 1; // same slot as 1_030
        assert_eq!(window.last_window(1_091).bytes_in, 80 + 40 + 1);
    }
}
