//! Broker settings under Kafka's names, from embedded defaults, a TOML file
//! (`--config FILE`) and `--set key=value`, in that order of precedence.
//!
//! Invariant: every key a user may set is in [`SETTINGS`] with its default and
//! description; `ringlog serve --help` prints that table, and an unknown key or
//! an invalid value is refused at start with a message naming the key.

use std::collections::BTreeMap;
use std::path::Path;

pub struct Setting {
    pub key: &'static str,
    pub default: &'static str,
    pub description: &'static str,
}

pub const SETTINGS: &[Setting] = &[
    Setting { key: "node.id", default: "0", description: "this broker's id" },
    Setting { key: "num.partitions", default: "1", description: "partitions of an auto-created topic, or of CreateTopics with -1" },
    Setting { key: "auto.create.topics.enable", default: "true", description: "create a topic when a client produces to or asks metadata for an unknown one" },
    Setting { key: "socket.request.max.bytes", default: "104857600", description: "largest request frame accepted; a larger one closes the connection" },
    Setting { key: "socket.request.huge.pages", default: "auto", description: "true, false or auto: whether request frames of 256 KiB or more are read into transparent huge pages (O_DIRECT writes them to disk from there, pinning one page per 2 MiB instead of 512), mapped and touched ahead of need by a helper thread; auto: huge pages until the helper finds a window of 16 fresh ones costing more on average to fault in than 4 KiB pages (timed once), then 4 KiB pages for good (on a VM whose host takes freed guest memory back, a fresh huge page cost 5x more); ringlog's own" },
    Setting { key: "message.max.bytes", default: "1048588", description: "largest record batch accepted (topic: max.message.bytes)" },
    Setting { key: "log.segment.bytes", default: "1073741824", description: "roll a segment at this size (topic: segment.bytes)" },
    Setting { key: "log.roll.ms", default: "604800000", description: "roll a segment at this age (topic: segment.ms)" },
    Setting { key: "log.index.interval.bytes", default: "4096", description: "bytes between offset index entries" },
    Setting { key: "log.retention.ms", default: "604800000", description: "delete closed segments whose newest record is older (topic: retention.ms); -1 keeps all" },
    Setting { key: "log.retention.bytes", default: "-1", description: "delete the oldest closed segments beyond this size per partition (topic: retention.bytes); -1 no limit" },
    Setting { key: "log.retention.check.interval.ms", default: "300000", description: "how often each core applies retention to its partitions" },
    Setting { key: "log.cleanup.policy", default: "delete", description: "delete, compact, or compact,delete (topic: cleanup.policy)" },
    Setting { key: "log.cleaner.backoff.ms", default: "15000", description: "how often each core's cleaner looks for partitions to compact" },
    Setting { key: "log.cleaner.min.compaction.lag.ms", default: "0", description: "records younger than this are not compacted (topic: min.compaction.lag.ms)" },
    Setting { key: "log.cleaner.max.compaction.lag.ms", default: "9223372036854775807", description: "records older than this are compacted whatever the dirty ratio (topic: max.compaction.lag.ms)" },
    Setting { key: "log.cleaner.delete.retention.ms", default: "86400000", description: "tombstones are kept this long after compaction reaches them (topic: delete.retention.ms)" },
    Setting { key: "log.cleaner.min.cleanable.ratio", default: "0.5", description: "compact once this share of a log is dirty (topic: min.cleanable.dirty.ratio)" },
    Setting { key: "compression.type", default: "producer", description: "producer (keep), uncompressed, gzip, snappy, lz4, zstd (topic: compression.type)" },
    Setting { key: "log.flush.interval.messages", default: "9223372036854775807", description: "fsync after this many messages; 1 = before every acknowledgement; default never (page cache, as Kafka)" },
    Setting { key: "log.flush.interval.ms", default: "", description: "fsync dirty partitions at this interval; empty = never" },
    Setting { key: "log.message.timestamp.type", default: "CreateTime", description: "CreateTime or LogAppendTime (topic: message.timestamp.type)" },
    Setting { key: "log.io.mode", default: "auto", description: "direct (O_DIRECT through io_uring), buffered (page cache), or auto: each partition through the page cache while its ingest is below log.io.auto.direct.bytes.per.second, O_DIRECT above (a change rolls the segment); direct and auto fall back to buffered where the filesystem refuses O_DIRECT; ringlog's own" },
    Setting { key: "log.io.auto.direct.bytes.per.second", default: "8388608", description: "with log.io.mode=auto, the ingest rate of one partition above which its segments are written with O_DIRECT; ringlog's own" },
    Setting { key: "log.segment.recycle", default: "true", description: "keep one segment file that retention deletes per partition writing with O_DIRECT and reuse it for the partition's next segment: O_DIRECT writes into blocks written before cost about half of writes into new ones (ext4 converts new extents at completion); costs up to one segment of disk per such partition (removed when it rolls back to the page cache, kept only while the filesystem has a tenth of its space free besides it, and given back by every partition when a write fails); ringlog's own" },
    Setting { key: "log.io.auto.core.direct.bytes.per.second", default: "67108864", description: "with log.io.mode=auto, the ingest rate of one core (its partitions under log.io.auto.direct.bytes.per.second; those over it are direct already) above which all its partitions write with O_DIRECT; ringlog's own" },
    Setting { key: "log.cache.bytes.per.core", default: "auto", description: "memory per core for recently appended batches, from which consumers near the end of a partition read (O_DIRECT writes leave nothing in the page cache); auto: starts at 256 MiB a core and doubles while consumers miss batches it evicted, up to a tenth of the memory the broker may use (physical, or its cgroup's limit if lower) split across the cores; a number: that budget, fixed; ringlog's own" },
    Setting { key: "log.read.mode", default: "sendfile", description: "how fetches send segment bytes: sendfile (zero-copy from the page cache) or direct (O_DIRECT reads into reused buffers, then written to the socket; needs log.io.mode direct or auto); ringlog's own" },
    Setting { key: "log.read.drop.page.cache", default: "true", description: "once a fetch response has been read by the client, drop the segment pages it sent from the page cache (catch-up reads are mostly read once, and new page-cache memory is slow where the host takes back free memory); ringlog's own" },
    Setting { key: "offsets.topic.num.partitions", default: "50", description: "partitions of __consumer_offsets (fixed once the topic exists)" },
    Setting { key: "offsets.topic.segment.bytes", default: "104857600", description: "segment size of __consumer_offsets" },
    Setting { key: "offsets.retention.minutes", default: "10080", description: "committed offsets of a group empty this long are deleted" },
    Setting { key: "transaction.state.log.num.partitions", default: "50", description: "partitions of __transaction_state (fixed once the topic exists)" },
    Setting { key: "transaction.max.timeout.ms", default: "900000", description: "largest transaction.timeout.ms a producer may ask for" },
    Setting { key: "group.min.session.timeout.ms", default: "6000", description: "smallest session.timeout.ms a consumer may ask for" },
    Setting { key: "group.max.session.timeout.ms", default: "1800000", description: "largest session.timeout.ms a consumer may ask for" },
    Setting { key: "group.initial.rebalance.delay.ms", default: "3000", description: "how long a new group waits for more members before its first rebalance" },
    Setting { key: "core.listeners", default: "auto", description: "true, false or auto: each core also listens on a port of its own and is advertised to clients as a broker of its own (node id node.id + core) that leads that core's partitions and coordinates its groups, so clients, which send each request to the partition's leader, reach the core that serves it without a hop between cores; auto: on with more than one core unless --advertised-listener is given (a proxy or port mapping in front would have to carry those ports too); ringlog's own" },
    Setting { key: "core.listeners.first.port", default: "0", description: "with core listeners, core k listens on this port plus k; 0: each core takes a free port at start; ringlog's own" },
    Setting { key: "max.connections", default: "2147483647", description: "connections beyond this are closed at once" },
    Setting { key: "connection.max.inflight.bytes", default: "67108864", description: "request bytes one connection may have read but not yet answered; past it the broker stops reading that socket (a larger single request goes alone); ringlog's own" },
    Setting { key: "connections.max.idle.ms", default: "600000", description: "close a connection that sends nothing for this long" },
    Setting { key: "fetch.max.wait.ms.max", default: "30000", description: "upper bound on a fetch's max_wait_ms" },
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown setting {0:?}; `ringlog serve --help` lists them")]
    UnknownKey(String),
    #[error("invalid value {value:?} for {key}: {reason}")]
    InvalidValue { key: String, value: String, reason: String },
    #[error("reading config file {path}: {reason}")]
    File { path: String, reason: String },
}

/// How segments are written (`log.io.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogIoMode {
    Direct,
    Buffered,
    /// Per partition, by ingest rate: see `ringlog_engine::log::io_policy`.
    Auto,
}

impl std::str::FromStr for LogIoMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "direct" => Ok(Self::Direct),
            "buffered" => Ok(Self::Buffered),
            "auto" => Ok(Self::Auto),
            other => Err(format!("{other:?} is none of direct, buffered and auto")),
        }
    }
}

/// A setting of true, false or auto (`core.listeners`,
/// `socket.request.huge.pages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
    Auto,
}

impl Switch {
    /// On or off, with `auto` decided by `decide`.
    pub fn resolve(self, decide: impl FnOnce() -> bool) -> bool {
        match self {
            Self::On => true,
            Self::Off => false,
            Self::Auto => decide(),
        }
    }
}

impl std::str::FromStr for Switch {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "true" => Ok(Self::On),
            "false" => Ok(Self::Off),
            "auto" => Ok(Self::Auto),
            other => Err(format!("{other:?} is none of true, false and auto")),
        }
    }
}

/// Memory for each core's batch cache (`log.cache.bytes.per.core`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheBudget {
    /// [`CACHE_MEMORY_FRACTION`] of the broker's memory, split across its cores.
    Auto,
    BytesPerCore(usize),
}

/// The share of memory `log.cache.bytes.per.core=auto` gives the batch
/// caches: what Kafka would find in the page cache for recent data, which
/// O_DIRECT writes do not fill.
pub const CACHE_MEMORY_FRACTION: (u64, u64) = (1, 10);
const AUTO_CACHE_BYTES_PER_CORE_MIN: u64 = 32 << 20;
/// Where an `auto` cache starts: it grows from here only while consumers
/// miss batches it evicted, so a broker whose consumers keep up never first
/// touches memory it would not use.
pub const AUTO_CACHE_START_BYTES_PER_CORE: usize = 256 << 20;
const AUTO_CACHE_BYTES_PER_CORE_MAX: u64 = 8 << 30;

impl CacheBudget {
    pub fn bytes_per_core(self, cores: usize, memory_bytes: u64) -> usize {
        match self {
            Self::BytesPerCore(bytes) => bytes,
            Self::Auto => {
                let (numerator, denominator) = CACHE_MEMORY_FRACTION;
                let per_core = memory_bytes / denominator * numerator / cores.max(1) as u64;
                per_core.clamp(AUTO_CACHE_BYTES_PER_CORE_MIN, AUTO_CACHE_BYTES_PER_CORE_MAX) as usize
            }
        }
    }
}

impl std::str::FromStr for CacheBudget {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "auto" {
            return Ok(Self::Auto);
        }
        text.parse()
            .map(Self::BytesPerCore)
            .map_err(|_| format!("{text:?} is neither auto nor a number of bytes"))
    }
}

/// The memory this process may use: physical memory, or its cgroup (v2)
/// limit where that is lower (in a container, say).
pub fn usable_memory_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, page_bytes) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    let physical = (pages.max(0) as u64).saturating_mul(page_bytes.max(0) as u64);
    let cgroup_limit = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok());
    cgroup_limit.map_or(physical, |limit| limit.min(physical))
}

/// How fetches send bytes that are in segment files (`log.read.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Sendfile,
    Direct,
}

impl std::str::FromStr for ReadMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "sendfile" => Ok(Self::Sendfile),
            "direct" => Ok(Self::Direct),
            other => Err(format!("{other:?} is neither sendfile nor direct")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

impl std::str::FromStr for TimestampType {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "CreateTime" => Ok(Self::CreateTime),
            "LogAppendTime" => Ok(Self::LogAppendTime),
            other => Err(format!("{other:?} is neither CreateTime nor LogAppendTime")),
        }
    }
}

/// Resolved broker settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub num_partitions: i32,
    pub auto_create_topics_enable: bool,
    pub socket_request_max_bytes: usize,
    pub log_index_interval_bytes: u64,
    pub log_flush_interval_messages: u64,
    pub log_flush_interval_ms: Option<u64>,
    pub log_io_mode: LogIoMode,
    pub log_io_auto_direct_bytes_per_second: u64,
    pub log_io_auto_core_direct_bytes_per_second: u64,
    pub log_segment_recycle: bool,
    pub log_cache_bytes_per_core: CacheBudget,
    pub log_read_mode: ReadMode,
    pub log_read_drop_page_cache: bool,
    pub fetch_max_wait_ms_max: u64,
    pub offsets_topic_num_partitions: i32,
    pub offsets_topic_segment_bytes: u64,
    pub offsets_retention_minutes: u64,
    pub transaction_state_log_num_partitions: i32,
    pub transaction_max_timeout_ms: i32,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub group_initial_rebalance_delay_ms: u64,
    pub log_retention_check_interval_ms: u64,
    pub max_connections: usize,
    pub core_listeners: Switch,
    pub socket_request_huge_pages: Switch,
    /// 0: a free port per core.
    pub core_listeners_first_port: u16,
    pub connection_max_inflight_bytes: usize,
    pub connections_max_idle_ms: u64,
    pub log_cleaner_backoff_ms: u64,
    /// Every setting's effective value, for topic-config defaults and DescribeConfigs.
    values: BTreeMap<String, String>,
    /// Settings given in the file or on the command line.
    explicit: std::collections::BTreeSet<String>,
}

impl BrokerConfig {
    /// Defaults, overlaid with the TOML file (if any), then with `overrides`.
    pub fn load(file: Option<&Path>, overrides: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut values: BTreeMap<String, String> = SETTINGS
            .iter()
            .map(|s| (s.key.to_string(), s.default.to_string()))
            .collect();
        let mut explicit = std::collections::BTreeSet::new();
        if let Some(path) = file {
            for (key, value) in read_toml(path)? {
                explicit.insert(key.clone());
                set_known(&mut values, key, value)?;
            }
        }
        for (key, value) in overrides {
            explicit.insert(key.clone());
            set_known(&mut values, key.clone(), value.clone())?;
        }
        // Broker defaults of topic configs follow the topic configs' rules.
        for topic_config in crate::topic_config::TOPIC_CONFIGS {
            let value = values.get(topic_config.broker_key).cloned().unwrap_or_default();
            crate::topic_config::validate(topic_config.name, &value).map_err(|reason| ConfigError::InvalidValue {
                key: topic_config.broker_key.to_string(),
                value,
                reason,
            })?;
        }
        let mut config = Self::from_values(&values)?;
        config.values = values;
        config.explicit = explicit;
        Ok(config)
    }

    /// A setting's effective value (empty for unknown keys).
    pub fn value(&self, key: &str) -> &str {
        self.values.get(key).map_or("", String::as_str)
    }

    pub fn is_explicit(&self, key: &str) -> bool {
        self.explicit.contains(key)
    }

    /// Every setting with its value and whether it was set explicitly.
    pub fn all_values(&self) -> impl Iterator<Item = (&str, &str, bool)> {
        self.values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str(), self.explicit.contains(k)))
    }

    fn from_values(values: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let get = |key: &str| values.get(key).map(String::as_str).unwrap_or_default();
        Ok(Self {
            node_id: parse(values, "node.id")?,
            num_partitions: parse_positive(values, "num.partitions")?,
            auto_create_topics_enable: parse(values, "auto.create.topics.enable")?,
            socket_request_max_bytes: parse_positive(values, "socket.request.max.bytes")?,
            log_index_interval_bytes: parse_positive(values, "log.index.interval.bytes")?,
            log_flush_interval_messages: parse_positive(values, "log.flush.interval.messages")?,
            log_flush_interval_ms: match get("log.flush.interval.ms") {
                "" => None,
                _ => Some(parse_positive(values, "log.flush.interval.ms")?),
            },
            log_io_mode: parse(values, "log.io.mode")?,
            log_io_auto_direct_bytes_per_second: parse_positive(values, "log.io.auto.direct.bytes.per.second")?,
            log_io_auto_core_direct_bytes_per_second: parse_positive(
                values,
                "log.io.auto.core.direct.bytes.per.second",
            )?,
            log_segment_recycle: parse(values, "log.segment.recycle")?,
            log_cache_bytes_per_core: parse(values, "log.cache.bytes.per.core")?,
            log_read_mode: parse(values, "log.read.mode")?,
            log_read_drop_page_cache: parse(values, "log.read.drop.page.cache")?,
            fetch_max_wait_ms_max: parse(values, "fetch.max.wait.ms.max")?,
            offsets_topic_num_partitions: parse_positive(values, "offsets.topic.num.partitions")?,
            offsets_topic_segment_bytes: parse_segment_bytes(
                "offsets.topic.segment.bytes",
                get("offsets.topic.segment.bytes"),
            )?,
            offsets_retention_minutes: parse_positive(values, "offsets.retention.minutes")?,
            transaction_state_log_num_partitions: parse_positive(values, "transaction.state.log.num.partitions")?,
            transaction_max_timeout_ms: parse_positive(values, "transaction.max.timeout.ms")?,
            group_min_session_timeout_ms: parse_positive(values, "group.min.session.timeout.ms")?,
            group_max_session_timeout_ms: parse_positive(values, "group.max.session.timeout.ms")?,
            group_initial_rebalance_delay_ms: parse(values, "group.initial.rebalance.delay.ms")?,
            log_retention_check_interval_ms: parse_positive(values, "log.retention.check.interval.ms")?,
            max_connections: parse_positive(values, "max.connections")?,
            core_listeners: parse(values, "core.listeners")?,
            socket_request_huge_pages: parse(values, "socket.request.huge.pages")?,
            core_listeners_first_port: parse(values, "core.listeners.first.port")?,
            connection_max_inflight_bytes: parse_positive(values, "connection.max.inflight.bytes")?,
            connections_max_idle_ms: parse_positive(values, "connections.max.idle.ms")?,
            log_cleaner_backoff_ms: parse_positive(values, "log.cleaner.backoff.ms")?,
            values: BTreeMap::new(),
            explicit: std::collections::BTreeSet::new(),
        })
    }

    /// The settings table for `--help`.
    pub fn help_table() -> String {
        let mut out = String::from("Broker settings (Kafka names; --set KEY=VALUE or a TOML file):\n");
        for setting in SETTINGS {
            let default = if setting.default.is_empty() {
                "(unset)"
            } else {
                setting.default
            };
            out.push_str(&format!(
                "  {:<30} default {:<12} {}\n",
                setting.key, default, setting.description
            ));
        }
        out
    }
}

fn set_known(values: &mut BTreeMap<String, String>, key: String, value: String) -> Result<(), ConfigError> {
    if !values.contains_key(&key) {
        return Err(ConfigError::UnknownKey(key));
    }
    values.insert(key, value);
    Ok(())
}

fn read_toml(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| file_error(e.to_string()))?;
    let mut pairs = Vec::new();
    flatten_toml("", &table, &mut pairs);
    Ok(pairs)
}

/// Accepts both `"log.flush.interval.ms" = 1000` and nested `[log.flush]` tables.
fn flatten_toml(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (key, value) in table {
        let full_key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten_toml(&full_key, inner, out),
            toml::Value::String(text) => out.push((full_key, text.clone())),
            other => out.push((full_key, other.to_string())),
        }
    }
}

fn parse<T: std::str::FromStr>(values: &BTreeMap<String, String>, key: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let value = values.get(key).cloned().unwrap_or_default();
    value.parse().map_err(|e: T::Err| ConfigError::InvalidValue {
        key: key.to_string(),
        value,
        reason: e.to_string(),
    })
}

fn parse_positive<T>(values: &BTreeMap<String, String>, key: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + Default,
    T::Err: std::fmt::Display,
{
    let parsed: T = parse(values, key)?;
    if parsed <= T::default() {
        return Err(ConfigError::InvalidValue {
            key: key.to_string(),
            value: values.get(key).cloned().unwrap_or_default(),
            reason: "must be positive".into(),
        });
    }
    Ok(parsed)
}

/// Checks a segment size against the engine's bounds.
pub fn parse_segment_bytes(key: &str, value: &str) -> Result<u64, ConfigError> {
    use ringlog_engine::limits::{SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};
    let invalid = |reason: String| ConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    };
    let bytes: u64 = value
        .parse()
        .map_err(|e: std::num::ParseIntError| invalid(e.to_string()))?;
    if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&bytes) {
        return Err(invalid(format!(
            "must be within {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auto_cache_takes_a_tenth_of_memory_across_the_cores_within_bounds() {
        let auto: CacheBudget = "auto".parse().expect("auto");
        assert_eq!(auto.bytes_per_core(2, 24 << 30), (24usize << 30) / 10 / 2);
        assert_eq!(auto.bytes_per_core(4, 1 << 30), 32 << 20, "at least 32 MiB a core");
        assert_eq!(auto.bytes_per_core(1, 1 << 40), 8 << 30, "at most 8 GiB a core");
        let fixed: CacheBudget = "1048576".parse().expect("bytes");
        assert_eq!(fixed.bytes_per_core(2, 24 << 30), 1 << 20);
        assert!("lots".parse::<CacheBudget>().is_err());
        assert!(usable_memory_bytes() > 0);
    }

    #[test]
    fn defaults_are_kafkas() {
        let config = BrokerConfig::load(None, &[]).expect("defaults load");
        assert_eq!(config.num_partitions, 1);
        assert!(config.auto_create_topics_enable);
        assert_eq!(config.socket_request_max_bytes, 104_857_600);
        assert_eq!(config.log_flush_interval_ms, None);
        assert_eq!(config.log_flush_interval_messages, i64::MAX as u64);
    }

    #[test]
    fn switches_take_true_false_and_auto_only() {
        let set = |value: &str| {
            let overrides = [("socket.request.huge.pages".to_string(), value.to_string())];
            BrokerConfig::load(None, &overrides).map(|config| config.socket_request_huge_pages)
        };
        assert_eq!(set("true").ok(), Some(Switch::On));
        assert_eq!(set("false").ok(), Some(Switch::Off));
        assert_eq!(set("auto").ok(), Some(Switch::Auto));
        assert!(set("yes").is_err(), "a value that is none of the three is refused");
        assert!(Switch::Auto.resolve(|| true) && !Switch::Auto.resolve(|| false));
        assert!(Switch::On.resolve(|| false) && !Switch::Off.resolve(|| true));
    }

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ringlog.toml");
        std::fs::write(&path, "\"num.partitions\" = 3\n[log.flush.interval]\nmessages = 1\n").expect("write");
        let overrides = [("num.partitions".to_string(), "8".to_string())];
        let config = BrokerConfig::load(Some(&path), &overrides).expect("load");
        assert_eq!(config.num_partitions, 8);
        assert_eq!(config.log_flush_interval_messages, 1);
    }

    #[test]
    fn bad_input_names_the_key() {
        let unknown = BrokerConfig::load(None, &[("no.such.key".into(), "1".into())]);
        assert!(matches!(unknown, Err(ConfigError::UnknownKey(k)) if k == "no.such.key"));
        let invalid = BrokerConfig::load(None, &[("num.partitions".into(), "zero".into())]);
        assert!(invalid
            .expect_err("must be refused")
            .to_string()
            .contains("num.partitions"));
    }
}
