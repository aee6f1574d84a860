//! What operators see: Prometheus metrics on `--metrics-listen` and
//! `ringlog status`, checked against traffic of known size from librdkafka.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use ringlog_tests::{
    assign_from_beginning, create_topic, manual_consumer_config, ringlog_binary, run_ok, RawConnection, RunningBroker,
};

const TOPIC: &str = "metered";
const RECORDS_PER_PARTITION: i64 = 50;
const PARTITIONS: i32 = 4;
/// Every record is produced this many seconds before the scrape (at least).
const RECORD_AGE_S: i64 = 600;

/// `name{labels} value` lines, keyed by everything before the value.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn metric(metrics: &HashMap<String, f64>, series: &str) -> f64 {
    *metrics
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing from /metrics"))
}

async fn produce_aged(broker: &RunningBroker) -> u64 {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let timestamp_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        - RECORD_AGE_S * 1000;
    let mut value_bytes = 0;
    for partition in 0..PARTITIONS {
        for i in 0..RECORDS_PER_PARTITION {
            let value = format!("partition {partition} record {i}");
            value_bytes += value.len() as u64;
            let record = FutureRecord::<(), _>::to(TOPIC)
                .payload(&value)
                .partition(partition)
                .timestamp(timestamp_ms);
            producer.send(record, Duration::from_secs(30)).await.expect("delivered");
        }
    }
    value_bytes
}

fn consume_all_and_commit(broker: &RunningBroker, group: &str, committed: i64) {
    let consumer: BaseConsumer = manual_consumer_config(broker.bootstrap(), group)
        .create()
        .expect("consumer");
    assign_from_beginning(&consumer, TOPIC, PARTITIONS);
    let mut received = 0;
    while received < RECORDS_PER_PARTITION * i64::from(PARTITIONS) {
        if let Some(message) = consumer.poll(Duration::from_secs(10)) {
            message.expect("message");
            received += 1;
        } else {
            panic!("consumer stalled after {received} records");
        }
    }
    let mut offsets = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        offsets
            .add_partition_offset(TOPIC, partition, Offset::Offset(committed))
            .expect("offset");
    }
    consumer.commit(&offsets, CommitMode::Sync).expect("commit");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_traffic_requests_errors_and_lag() {
    let broker = RunningBroker::start(&[]);
    create_topic(broker.bootstrap(), TOPIC, PARTITIONS).await;
    let value_bytes = produce_aged(&broker).await;
    let committed = 20;
    consume_all_and_commit(&broker, "metered-readers", committed);
    // A partition that does not exist: one UNKNOWN_TOPIC_OR_PARTITION. The
    // connection stays open for the connection gauge.
    let mut raw = RawConnection::connect(broker.bootstrap());
    let batch = ringlog_engine::batch::build_batch(&[(None, Some(b"x"))], 1).freeze();
    assert_eq!(
        raw.produce(TOPIC, PARTITIONS + 3, batch).0,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    let text = broker.http_get("/metrics");
    let metrics = parse_metrics(&text);
    let topic = format!("{{topic=\"{TOPIC}\"}}");
    let total_records = RECORDS_PER_PARTITION * i64::from(PARTITIONS);
    assert_eq!(
        metric(&metrics, &format!("ringlog_topic_records_in_total{topic}")),
        total_records as f64
    );
    let bytes_in = metric(&metrics, &format!("ringlog_topic_bytes_in_total{topic}"));
    assert!(
        bytes_in > value_bytes as f64,
        "batches hold the values and more: {bytes_in}"
    );
    // The consumer read every batch once (a single pass from the beginning).
    assert!(metric(&metrics, &format!("ringlog_topic_bytes_out_total{topic}")) >= bytes_in);
    assert_eq!(
        metric(&metrics, &format!("ringlog_topic_records_out_total{topic}")),
        total_records as f64
    );
    assert!(metric(&metrics, &format!("ringlog_topic_log_bytes{topic}")) >= bytes_in);
    assert!(metric(&metrics, "ringlog_requests_total{api=\"Produce\"}") >= total_records as f64);
    assert!(metric(&metrics, "ringlog_requests_total{api=\"Fetch\"}") >= 1.0);
    assert_eq!(
        metric(&metrics, "ringlog_request_duration_seconds_count{api=\"Produce\"}"),
        metric(
            &metrics,
            "ringlog_request_duration_seconds_bucket{api=\"Produce\",le=\"+Inf\"}"
        )
    );
    assert!(
        metric(
            &metrics,
            "ringlog_request_errors_total{api=\"Produce\",error=\"UNKNOWN_TOPIC_OR_PARTITION\"}"
        ) >= 1.0
    );
    // Every partition was written at least once (group commit may fold
    // several produce requests into one write).
    let writes = metric(&metrics, "ringlog_log_write_duration_seconds_count");
    assert!(writes >= f64::from(PARTITIONS), "{writes} partition writes");
    assert_eq!(
        writes,
        metric(&metrics, "ringlog_log_write_duration_seconds_bucket{le=\"+Inf\"}")
    );
    assert!(metric(&metrics, "ringlog_log_write_duration_seconds_sum") > 0.0);
    for partition in 0..PARTITIONS {
        let labels = format!("{{group=\"metered-readers\",topic=\"{TOPIC}\",partition=\"{partition}\"}}");
        assert_eq!(
            metric(&metrics, &format!("ringlog_group_offset_lag{labels}")),
            (RECORDS_PER_PARTITION - committed) as f64
        );
        let time_lag_s = metric(&metrics, &format!("ringlog_group_time_lag_seconds{labels}"));
        assert!(
            (RECORD_AGE_S as f64..RECORD_AGE_S as f64 + 120.0).contains(&time_lag_s),
            "time lag {time_lag_s} s for records {RECORD_AGE_S} s old"
        );
    }
    for core in 0..2 {
        let labels = format!("{{core=\"{core}\"}}");
        assert!(metric(&metrics, &format!("ringlog_core_busy_seconds_total{labels}")) > 0.0);
        assert!(metrics.contains_key(&format!("ringlog_core_queue_depth{labels}")));
        // log.cache.bytes.per.core=auto starts each core at 256 MiB (it
        // grows only when consumers miss what it evicted), and the records
        // just produced are held.
        assert_eq!(
            metric(&metrics, &format!("ringlog_core_cache_budget_bytes{labels}")),
            f64::from(256u32 << 20)
        );
    }
    let cached: f64 = (0..2)
        .map(|core| metric(&metrics, &format!("ringlog_core_cache_bytes{{core=\"{core}\"}}")))
        .sum();
    assert!(cached >= value_bytes as f64, "{cached} bytes cached");
    let partitions: f64 = (0..2)
        .map(|core| metric(&metrics, &format!("ringlog_core_partitions{{core=\"{core}\"}}")))
        .sum();
    assert!(
        partitions >= f64::from(PARTITIONS),
        "internal topics count too: {partitions}"
    );
    assert!(
        metric(&metrics, "ringlog_connections") >= 1.0,
        "the raw connection is still open"
    );
    assert!(metric(&metrics, "ringlog_disk_free_bytes") > 0.0);
    // Every sample belongs to a declared family (Prometheus refuses strays).
    for series in metrics.keys() {
        let name = series.split(['{', ' ']).next().unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|base| text.contains(&format!("# TYPE {base} histogram")))
            })
            .unwrap_or(name);
        assert!(text.contains(&format!("# TYPE {family} ")), "{series} has no # TYPE");
    }
}

fn status_json(broker: &RunningBroker) -> serde_json::Value {
    let json = run_ok(Command::new(ringlog_binary()).args([
        "status",
        "--json",
        "--metrics-address",
        broker.metrics_address(),
    ]));
    serde_json::from_str(&json).expect("status --json is JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_the_running_broker() {
    let broker = RunningBroker::start(&[]);
    create_topic(broker.bootstrap(), TOPIC, PARTITIONS).await;
    produce_aged(&broker).await;
    let status = status_json(&broker);
    assert_eq!(status["cores"], 2);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    let per_core: i64 = status["partitions_per_core"]
        .as_array()
        .expect("partitions per core")
        .iter()
        .filter_map(serde_json::Value::as_i64)
        .sum();
    assert!(per_core >= i64::from(PARTITIONS));
    // The records were produced less than a minute ago, in whole seconds that
    // may not all have ended yet: wait for them to close.
    std::thread::sleep(Duration::from_millis(1100));
    let status = status_json(&broker);
    let records_per_s = status["last_minute"]["records_in_per_s"].as_f64().expect("rate");
    assert!(records_per_s > 0.0, "{status}");
    let table = run_ok(Command::new(ringlog_binary()).args(["status", "--metrics-address", broker.metrics_address()]));
    assert!(table.contains("cores          2"), "{table}");
    // A wrong address is a clear error, not a panic.
    let output = Command::new(ringlog_binary())
        .args(["status", "--metrics-address", "127.0.0.1:1"])
        .output()
        .expect("running ringlog status");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("connecting to the metrics endpoint"));
}
