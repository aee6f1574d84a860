//! Prometheus text exposition (format 0.0.4) of one scrape: every core's
//! snapshot summed where the metric is broker-wide, per core where it is not.
//!
//! Names follow Prometheus conventions: a `ringlog_` prefix, base units in the
//! name (`_bytes`, `_seconds`), `_total` on counters.

use std::collections::BTreeMap;
use std::fmt::Write;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;

use super::{CoreSnapshot, LatencyHistogram, TopicTraffic};

/// A consumer group's lag on one partition, joined from the group's core and
/// the partition's core.
#[derive(Debug, Clone)]
pub struct GroupLag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset_lag: i64,
    /// Age of the first record not yet consumed; 0 when caught up.
    pub time_lag_s: f64,
}

/// A metric family read from each `T`: name, help, the value it reads.
type Described<T, V> = (&'static str, &'static str, fn(&T) -> V);
/// A per-core metric: name, type, help, the value it reads.
type CoreFamily = (&'static str, &'static str, &'static str, fn(&CoreSnapshot) -> f64);

/// Everything one scrape reports.
pub struct Scrape {
    pub uptime_s: f64,
    pub cores: Vec<CoreSnapshot>,
    pub lags: Vec<GroupLag>,
    /// Free space of the data dir's filesystem, if statvfs answered.
    pub disk_free_bytes: Option<u64>,
    /// Whether large request frames go to huge pages; `None` until decided.
    pub request_frame_huge_pages: Option<bool>,
}

/// Writes `# HELP` and `# TYPE` once, then samples under that name.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Self {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Self { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.sample_suffixed("", labels, value);
    }

    /// The `_bucket` (cumulative, then `+Inf`), `_sum` and `_count` samples.
    fn histogram(&mut self, labels: &[(&str, &str)], histogram: &LatencyHistogram) {
        for (bound, count) in histogram.cumulative() {
            let bound = bound.to_string();
            let labels: Vec<(&str, &str)> = labels.iter().copied().chain([("le", bound.as_str())]).collect();
            self.sample_suffixed("_bucket", &labels, count as f64);
        }
        let labels_inf: Vec<(&str, &str)> = labels.iter().copied().chain([("le", "+Inf")]).collect();
        self.sample_suffixed("_bucket", &labels_inf, histogram.count as f64);
        self.sample_suffixed("_sum", labels, histogram.sum_s);
        self.sample_suffixed("_count", labels, histogram.count as f64);
    }

    fn sample_suffixed(&mut self, suffix: &str, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.out, "{}{suffix}", self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (index, (key, label)) in labels.iter().enumerate() {
                if index > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape_label(label));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Label values escape backslash, double quote and newline.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map_or_else(|_| format!("api_{key}"), |api| format!("{api:?}"))
}

/// Kafka's spelling of an error code's name, as in its own metrics:
/// `CORRUPT_MESSAGE`.
fn error_name(code: i16) -> String {
    if code == super::CONNECTION_CLOSED_CODE {
        return "CONNECTION_CLOSED".to_string();
    }
    let Some(error) = ResponseError::try_from_code(code) else {
        return "NONE".to_string();
    };
    let camel = format!("{error:?}");
    let mut name = String::with_capacity(camel.len() + 8);
    for (index, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

pub fn render(scrape: &Scrape) -> String {
    let mut out = String::with_capacity(64 * 1024);
    render_process(&mut out, scrape);
    render_topics(&mut out, scrape);
    render_requests(&mut out, scrape);
    render_cores(&mut out, scrape);
    render_storage(&mut out, scrape);
    render_groups(&mut out, scrape);
    out
}

fn render_process(out: &mut String, scrape: &Scrape) {
    Family::new(out, "ringlog_build_info", "gauge", "Version of the running broker.")
        .sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    Family::new(
        out,
        "ringlog_uptime_seconds",
        "gauge",
        "Seconds since the broker started.",
    )
    .sample(&[], scrape.uptime_s);
    let sum =
        |field: fn(&super::CoreMetrics) -> u64| -> f64 { scrape.cores.iter().map(|c| field(&c.counters) as f64).sum() };
    Family::new(out, "ringlog_connections", "gauge", "Open client connections.")
        .sample(&[], sum(|m| m.connections_open));
    Family::new(
        out,
        "ringlog_connections_accepted_total",
        "counter",
        "Client connections accepted.",
    )
    .sample(&[], sum(|m| m.connections_accepted));
    Family::new(
        out,
        "ringlog_connections_refused_total",
        "counter",
        "Client connections closed at accept by max.connections.",
    )
    .sample(&[], sum(|m| m.connections_refused));
    if let Some(huge) = scrape.request_frame_huge_pages {
        Family::new(
            out,
            "ringlog_request_frame_huge_pages",
            "gauge",
            "1 if large request frames are read into huge pages, 0 if into 4 KiB pages (socket.request.huge.pages).",
        )
        .sample(&[], f64::from(u8::from(huge)));
    }
}

fn render_topics(out: &mut String, scrape: &Scrape) {
    let mut topics: BTreeMap<&str, TopicTraffic> = BTreeMap::new();
    for core in &scrape.cores {
        for (topic, traffic) in &core.counters.topics {
            *topics.entry(topic).or_default() += *traffic;
        }
    }
    let families: [Described<TopicTraffic, u64>; 4] = [
        (
            "ringlog_topic_bytes_in_total",
            "Record batch bytes produced to the topic.",
            |t| t.bytes_in,
        ),
        (
            "ringlog_topic_records_in_total",
            "Records produced to the topic.",
            |t| t.records_in,
        ),
        (
            "ringlog_topic_bytes_out_total",
            "Record batch bytes fetched from the topic.",
            |t| t.bytes_out,
        ),
        (
            "ringlog_topic_records_out_total",
            "Offsets consumers moved past by fetching whole batches from the topic.",
            |t| t.records_out,
        ),
    ];
    for (name, help, field) in families {
        let mut family = Family::new(out, name, "counter", help);
        for (topic, traffic) in &topics {
            family.sample(&[("topic", topic)], field(traffic) as f64);
        }
    }
}

fn render_requests(out: &mut String, scrape: &Scrape) {
    let api_count = scrape.cores.first().map_or(0, |c| c.counters.apis.len());
    let mut totals = vec![LatencyHistogram::default(); api_count];
    for core in &scrape.cores {
        for (total, stats) in totals.iter_mut().zip(&core.counters.apis) {
            total.merge(stats);
        }
    }
    let used: Vec<(String, &LatencyHistogram)> = totals
        .iter()
        .enumerate()
        .filter(|(_, stats)| stats.count > 0)
        .map(|(key, stats)| (api_name(key as i16), stats))
        .collect();
    let mut family = Family::new(out, "ringlog_requests_total", "counter", "Requests answered, per API.");
    for (api, stats) in &used {
        family.sample(&[("api", api)], stats.count as f64);
    }
    let mut family = Family::new(
        out,
        "ringlog_request_duration_seconds",
        "histogram",
        "Time from a request's frame to its response, per API.",
    );
    for (api, stats) in &used {
        family.histogram(&[("api", api)], stats);
    }
    let mut errors: BTreeMap<(i16, i16), u64> = BTreeMap::new();
    for core in &scrape.cores {
        for (key, count) in &core.counters.errors {
            *errors.entry(*key).or_default() += count;
        }
    }
    let mut family = Family::new(
        out,
        "ringlog_request_errors_total",
        "counter",
        "Error codes returned (per partition where the API has partitions), and requests that closed their connection (error=\"CONNECTION_CLOSED\").",
    );
    for ((api, code), count) in errors {
        family.sample(&[("api", &api_name(api)), ("error", &error_name(code))], count as f64);
    }
}

fn render_cores(out: &mut String, scrape: &Scrape) {
    let per_core: [CoreFamily; 13] = [
        (
            "ringlog_core_busy_seconds_total",
            "counter",
            "CPU seconds used by the core's thread.",
            |c| c.busy_seconds,
        ),
        (
            "ringlog_core_queue_depth",
            "gauge",
            "Messages from other cores waiting for the core.",
            |c| c.queue_depth as f64,
        ),
        ("ringlog_core_partitions", "gauge", "Partitions the core owns.", |c| {
            c.partitions.len() as f64
        }),
        (
            "ringlog_core_segments",
            "gauge",
            "Segments of the partitions the core owns.",
            |c| c.partitions.iter().map(|p| p.segments as f64).sum(),
        ),
        (
            "ringlog_core_partitions_direct",
            "gauge",
            "Partitions the core owns whose active segment is written with O_DIRECT (log.io.mode=auto moves busy partitions there).",
            |c| c.partitions.iter().filter(|p| p.writes_direct).count() as f64,
        ),
        (
            "ringlog_core_segments_recycled_total",
            "counter",
            "New O_DIRECT segments that reused the file of a segment retention deleted (log.segment.recycle).",
            |c| c.segments_recycled as f64,
        ),
        (
            "ringlog_core_direct_written_bytes_total",
            "counter",
            "Batch bytes the core's partitions wrote with O_DIRECT.",
            |c| c.direct_write_bytes.written as f64,
        ),
        (
            "ringlog_core_direct_written_in_place_bytes_total",
            "counter",
            "Of those, bytes written from where the request frame put them, without a copy into an aligned buffer.",
            |c| c.direct_write_bytes.in_place as f64,
        ),
        (
            "ringlog_core_connections",
            "gauge",
            "Client connections the core serves.",
            |c| c.counters.connections_open as f64,
        ),
        (
            "ringlog_core_messages_to_other_cores_total",
            "counter",
            "Requests the core sent to another core (work on partitions or groups it does not own); near zero when clients connect through the core listeners.",
            |c| c.counters.messages_to_other_cores as f64,
        ),
        (
            "ringlog_core_cache_bytes",
            "gauge",
            "Bytes of recent batches the core's cache holds.",
            |c| c.cache_used_bytes as f64,
        ),
        (
            "ringlog_core_cache_budget_bytes",
            "gauge",
            "The core's cache budget now (log.cache.bytes.per.core=auto starts small and grows while consumers miss batches it evicted).",
            |c| c.cache_budget_bytes as f64,
        ),
        (
            "ringlog_core_log_bytes",
            "gauge",
            "Bytes on disk of the partitions the core owns.",
            |c| c.partitions.iter().map(|p| p.size_bytes as f64).sum(),
        ),
    ];
    for (name, kind, help, value) in per_core {
        let mut family = Family::new(out, name, kind, help);
        for core in &scrape.cores {
            family.sample(&[("core", &core.core_id.to_string())], value(core));
        }
    }
}

fn render_storage(out: &mut String, scrape: &Scrape) {
    let mut topic_bytes: BTreeMap<&str, u64> = BTreeMap::new();
    for partition in scrape.cores.iter().flat_map(|c| &c.partitions) {
        *topic_bytes.entry(&partition.topic).or_default() += partition.size_bytes;
    }
    let mut family = Family::new(
        out,
        "ringlog_topic_log_bytes",
        "gauge",
        "Bytes on disk of the topic's segments.",
    );
    for (topic, bytes) in &topic_bytes {
        family.sample(&[("topic", topic)], *bytes as f64);
    }
    Family::new(
        out,
        "ringlog_disk_used_bytes",
        "gauge",
        "Bytes on disk of all segments.",
    )
    .sample(&[], topic_bytes.values().sum::<u64>() as f64);
    let mut writes = LatencyHistogram::default();
    for core in &scrape.cores {
        writes.merge(&core.log_writes);
    }
    Family::new(
        out,
        "ringlog_log_write_duration_seconds",
        "histogram",
        "Time from handing a partition's appended bytes to the disk to the write (and fsync, if the flush policy asks) completing; acks=1 and acks=all wait for it.",
    )
    .histogram(&[], &writes);
    if let Some(free) = scrape.disk_free_bytes {
        Family::new(
            out,
            "ringlog_disk_free_bytes",
            "gauge",
            "Free bytes on the data dir's filesystem.",
        )
        .sample(&[], free as f64);
    }
}

fn render_groups(out: &mut String, scrape: &Scrape) {
    let families: [Described<GroupLag, f64>; 2] = [
        (
            "ringlog_group_offset_lag",
            "Records between a group's committed offset and the high watermark.",
            |lag| lag.offset_lag as f64,
        ),
        (
            "ringlog_group_time_lag_seconds",
            "Age of the oldest record a group has not consumed (its batch's first timestamp).",
            |lag| lag.time_lag_s,
        ),
    ];
    for (name, help, value) in families {
        let mut family = Family::new(out, name, "gauge", help);
        for lag in &scrape.lags {
            let partition = lag.partition.to_string();
            family.sample(
                &[("group", &lag.group), ("topic", &lag.topic), ("partition", &partition)],
                value(lag),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{CoreMetrics, PartitionStats};

    fn snapshot(core_id: usize) -> CoreSnapshot {
        let mut counters = CoreMetrics::default();
        counters.apis[0].observe(std::time::Duration::from_micros(300));
        counters.topics.insert(
            "orders".into(),
            TopicTraffic {
                bytes_in: 100,
                records_in: 2,
                bytes_out: 50,
                records_out: 1,
            },
        );
        counters.errors.insert((0, ResponseError::CorruptMessage.code()), 1);
        CoreSnapshot {
            core_id,
            counters,
            queue_depth: 3,
            busy_seconds: 1.5,
            partitions: vec![PartitionStats {
                topic: "orders".into(),
                partition: core_id as i32,
                high_watermark: 10,
                size_bytes: 4096,
                segments: 1,
                writes_direct: core_id == 1,
            }],
            committed: Vec::new(),
            cache_used_bytes: 100,
            cache_budget_bytes: 200,
            log_writes: {
                let mut writes = LatencyHistogram::default();
                writes.observe(std::time::Duration::from_millis(2));
                writes
            },
            segments_recycled: core_id as u64,
            direct_write_bytes: Default::default(),
        }
    }

    #[test]
    fn sums_cores_and_keeps_per_core_gauges_apart() {
        let text = render(&Scrape {
            uptime_s: 2.0,
            cores: vec![snapshot(0), snapshot(1)],
            lags: vec![GroupLag {
                group: "g\"1".into(),
                topic: "orders".into(),
                partition: 0,
                offset_lag: 7,
                time_lag_s: 0.25,
            }],
            disk_free_bytes: Some(1),
            request_frame_huge_pages: Some(false),
        });
        assert!(text.contains("ringlog_request_frame_huge_pages 0\n"), "{text}");
        assert!(
            text.contains("ringlog_topic_bytes_in_total{topic=\"orders\"} 200\n"),
            "{text}"
        );
        assert!(text.contains("ringlog_topic_records_in_total{topic=\"orders\"} 4\n"));
        assert!(text.contains("ringlog_topic_records_out_total{topic=\"orders\"} 2\n"));
        assert!(text.contains("ringlog_requests_total{api=\"Produce\"} 2\n"));
        assert!(text.contains("ringlog_request_duration_seconds_bucket{api=\"Produce\",le=\"0.00025\"} 0\n"));
        assert!(text.contains("ringlog_request_duration_seconds_bucket{api=\"Produce\",le=\"0.0005\"} 2\n"));
        assert!(text.contains("ringlog_request_duration_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("ringlog_request_errors_total{api=\"Produce\",error=\"CORRUPT_MESSAGE\"} 2\n"));
        assert!(text.contains("ringlog_core_queue_depth{core=\"1\"} 3\n"));
        assert!(text.contains("ringlog_core_partitions_direct{core=\"0\"} 0\n"));
        assert!(text.contains("ringlog_core_partitions_direct{core=\"1\"} 1\n"));
        assert!(text.contains("ringlog_core_segments_recycled_total{core=\"1\"} 1\n"));
        assert!(text.contains("ringlog_log_write_duration_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("ringlog_log_write_duration_seconds_bucket{le=\"0.0025\"} 2\n"));
        assert!(text.contains("ringlog_log_write_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("ringlog_log_write_duration_seconds_count 2\n"));
        assert!(text.contains("ringlog_disk_used_bytes 8192\n"));
        assert!(text.contains("ringlog_group_offset_lag{group=\"g\\\"1\",topic=\"orders\",partition=\"0\"} 7\n"));
        // Each family is declared once.
        assert_eq!(text.matches("# TYPE ringlog_requests_total counter").count(), 1);
    }
}
