//! Storage-side compression: a topic with compression.type=zstd stores zstd
//! batches whatever the producer sent, and every client reads the same data.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::Message;
use ringlog_engine::batch::{batch_total_bytes, BatchHeader, Codec};
use ringlog_tests::{
    assign_from_beginning, python_script, python_venv, ringlog_binary, run_ok, RawConnection, RunningBroker,
};

const TOPIC: &str = "zipped";

fn stored_codecs(broker: &RunningBroker) -> Vec<Codec> {
    let mut connection = RawConnection::connect(broker.bootstrap());
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(i32::MAX)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_partition_max_bytes(16 << 20)])]);
    let response = connection.request(12, &request);
    let records = response.responses[0].partitions[0].records.clone().expect("records");
    let mut rest = &records[..];
    let mut codecs = Vec::new();
    while let Ok(total) = batch_total_bytes(rest) {
        let header = BatchHeader::parse(rest).expect("header");
        codecs.push(header.codec().expect("codec"));
        rest = &rest[total..];
    }
    codecs
}

fn librdkafka_dump(broker: &RunningBroker, count: usize) -> String {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "zstd-readers")
        .create()
        .expect("consumer");
    assign_from_beginning(&consumer, TOPIC, 1);
    let mut lines = Vec::new();
    let started = Instant::now();
    while lines.len() < count {
        assert!(started.elapsed() < Duration::from_secs(30));
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("consume");
            let key = String::from_utf8_lossy(message.key().unwrap_or_default()).to_string();
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string();
            lines.push(format!("{key}:{value}"));
        }
    }
    lines.sort();
    lines.join("\n")
}

#[test]
fn a_zstd_topic_stores_zstd_and_every_client_reads_the_same_records() {
    let broker = RunningBroker::start(&[]);
    let mut connection = RawConnection::connect(broker.bootstrap());
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("compression.type"))
            .with_value(Some(StrBytes::from_static_str("zstd")))]);
    assert_eq!(
        connection
            .request(7, &CreateTopicsRequest::default().with_topics(vec![topic]))
            .topics[0]
            .error_code,
        0
    );

    let mut expected: Vec<String> = (0..1000)
        .map(|i| format!("host-{}:GET /index.html 200 {i} bytes", i % 7))
        .collect();
    let mut producer = Command::new("kcat")
        .args([
            "-b",
            broker.bootstrap(),
            "-P",
            "-t",
            TOPIC,
            "-K:",
            "-z",
            "none",
            "-p",
            "0",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat");
    producer
        .stdin
        .take()
        .expect("stdin")
        .write_all((expected.join("\n") + "\n").as_bytes())
        .expect("write");
    assert!(producer.wait().expect("kcat").success());
    expected.sort();
    let expected = expected.join("\n");

    let codecs = stored_codecs(&broker);
    assert!(!codecs.is_empty());
    assert!(codecs.iter().all(|c| *c == Codec::Zstd), "stored as zstd: {codecs:?}");

    assert_eq!(librdkafka_dump(&broker, 1000), expected, "librdkafka");
    let kcat =
        run_ok(Command::new("kcat").args(["-b", broker.bootstrap(), "-C", "-t", TOPIC, "-e", "-q", "-f", "%k:%s\n"]));
    let mut kcat_lines: Vec<&str> = kcat.lines().collect();
    kcat_lines.sort();
    assert_eq!(kcat_lines.join("\n"), expected, "kcat");
    let python = run_ok(
        Command::new(python_venv("kafka-python-3"))
            .arg(python_script("kafka_python_dump.py"))
            .args([broker.bootstrap(), TOPIC]),
    );
    assert_eq!(python.trim_end(), expected, "kafka-python");

    let describe = run_ok(Command::new(ringlog_binary()).args([
        "topic",
        "describe",
        TOPIC,
        "--json",
        "--bootstrap",
        broker.bootstrap(),
    ]));
    let report: serde_json::Value = serde_json::from_str(&describe).expect("json");
    let ratio = report["partitions"][0]["compression_ratio"]
        .as_f64()
        .expect("ratio reported");
    assert!(ratio > 2.0, "repetitive logs compress: {ratio}");
}
