//! Retention by size and by time moves the log start offset; consumers that
//! ask below it get OFFSET_OUT_OF_RANGE and recover with auto.offset.reset.

use std::process::Command;
use std::time::{Duration, Instant};

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use ringlog_tests::{
    create_topic_raw, manual_consumer_config, python_script, python_venv, run_ok, RawConnection, RunningBroker,
};

fn create_topic_with(broker: &RunningBroker, name: &str, configs: &[(&str, &str)]) {
    assert_eq!(create_topic_raw(broker.bootstrap(), name, 1, configs), 0);
}

/// (log start, high watermark) of partition 0.
fn offsets(broker: &RunningBroker, topic: &str) -> (i64, i64) {
    let mut connection = RawConnection::connect(broker.bootstrap());
    let mut at = |timestamp: i64| {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp)])]);
        connection.request(6, &request).topics[0].partitions[0].offset
    };
    (at(-2), at(-1))
}

async fn produce(broker: &RunningBroker, topic: &str, count: usize, timestamp_ms: Option<i64>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("batch.num.messages", "10")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let value = vec![b'r'; 200];
    let mut deliveries = Vec::with_capacity(count);
    for _ in 0..count {
        let mut record = FutureRecord::<(), _>::to(topic).payload(&value);
        if let Some(timestamp) = timestamp_ms {
            record = record.timestamp(timestamp);
        }
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).expect("queued"));
    }
    for delivery in deliveries {
        delivery.await.expect("not cancelled").expect("delivered");
    }
}

/// Waits until retention has moved the log start and then left it alone for a
/// while: a check that ran mid-produce may move it once more after the last
/// segment rolls, so the first moved value is not yet the final one.
fn wait_for_start_to_settle(broker: &RunningBroker, topic: &str) -> (i64, i64) {
    const UNCHANGED_POLLS: usize = 5; // 5 x 100 ms, each spanning a retention check
    let started = Instant::now();
    let mut last = offsets(broker, topic);
    let mut unchanged = 0;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let current = offsets(broker, topic);
        unchanged = if current == last { unchanged + 1 } else { 0 };
        last = current;
        if last.0 > 0 && unchanged >= UNCHANGED_POLLS {
            return last;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "retention never settled on {topic}: {last:?}"
        );
    }
}

/// librdkafka from offset 0: out of range, reset to the earliest, reads the rest.
fn librdkafka_reads_from_reset(broker: &RunningBroker, topic: &str, start: i64, end: i64) {
    let consumer: BaseConsumer = manual_consumer_config(broker.bootstrap(), "retention-readers")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Offset(0))
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let mut offsets = Vec::new();
    let started = Instant::now();
    while offsets.last().is_none_or(|o| *o < end - 1) {
        assert!(started.elapsed() < Duration::from_secs(30), "read {offsets:?}");
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            offsets.push(message.expect("consume").offset());
        }
    }
    assert_eq!(offsets.first(), Some(&start), "reset to the log start");
    assert_eq!(offsets.len() as i64, end - start);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_bytes_moves_the_log_start_and_consumers_reset() {
    let broker = RunningBroker::start(&[("log.retention.check.interval.ms", "100")]);
    create_topic_with(
        &broker,
        "by-bytes",
        &[("segment.bytes", "4096"), ("retention.bytes", "8192")],
    );
    produce(&broker, "by-bytes", 400, None).await;
    let (start, end) = wait_for_start_to_settle(&broker, "by-bytes");
    assert_eq!(end, 400);
    librdkafka_reads_from_reset(&broker, "by-bytes", start, end);
    let output = run_ok(
        Command::new(python_venv("kafka-python-3"))
            .arg(python_script("kafka_python_reset.py"))
            .args([broker.bootstrap(), "by-bytes", &start.to_string(), &end.to_string()]),
    );
    assert!(output.starts_with("ok"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_time_deletes_old_segments_but_never_the_active_one() {
    let broker = RunningBroker::start(&[("log.retention.check.interval.ms", "100")]);
    create_topic_with(
        &broker,
        "by-time",
        &[("segment.bytes", "4096"), ("retention.ms", "60000")],
    );
    let an_hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
        - 3_600_000;
    produce(&broker, "by-time", 200, Some(an_hour_ago)).await;
    let (start, end) = wait_for_start_to_settle(&broker, "by-time");
    assert!(start < end, "the active segment stays: {start} < {end}");
    // Recent records are kept.
    produce(&broker, "by-time", 50, None).await;
    let (start_after, end_after) = wait_for_start_to_settle(&broker, "by-time");
    assert_eq!(end_after, 250);
    librdkafka_reads_from_reset(&broker, "by-time", start_after, end_after);
}
