//! Compacted topics with librdkafka: only the latest value per key stays,
//! tombstones go after delete.retention.ms, keyless records are refused, and
//! kill -9 while the cleaner works loses no key's latest value.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use ringlog_tests::{assign_from_beginning, create_topic_raw, RunningBroker};

const CLEANER: [(&str, &str); 1] = [("log.cleaner.backoff.ms", "50")];

fn create_compacted(broker: &RunningBroker, name: &str) {
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "2048"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", "1000"),
    ];
    assert_eq!(create_topic_raw(broker.bootstrap(), name, 1, &configs), 0);
}

/// Sends `(key, value)` pairs (value `None`: a tombstone) one by one, in order.
async fn produce(broker: &RunningBroker, topic: &str, records: &[(String, Option<String>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for (key, value) in records {
        let mut record = FutureRecord::to(topic).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        producer.send(record, Duration::from_secs(30)).await.expect("delivered");
    }
}

/// Every record of partition 0 as (key, value).
fn read_all(broker: &RunningBroker, topic: &str) -> Vec<(String, Option<String>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "compaction-readers")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    assign_from_beginning(&consumer, topic, 1);
    let mut records = Vec::new();
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < Duration::from_secs(30), "never reached the end");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => records.push((
                String::from_utf8_lossy(message.key().unwrap_or_default()).to_string(),
                message.payload().map(|p| String::from_utf8_lossy(p).to_string()),
            )),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => return records,
            Some(Err(error)) => panic!("consume: {error}"),
            None => {}
        }
    }
}

fn latest_per_key(records: &[(String, Option<String>)]) -> BTreeMap<String, Option<String>> {
    records.iter().cloned().collect()
}

fn dataset() -> Vec<(String, Option<String>)> {
    let mut records = Vec::new();
    for round in 0..30 {
        for key in 0..10 {
            records.push((format!("k{key}"), Some(format!("k{key}-v{round}"))));
        }
    }
    records.push(("k0".into(), None)); // delete k0
    for filler in 0..60 {
        records.push((format!("f{filler}"), Some(format!("f{filler}"))));
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_latest_value_per_key_stays_and_old_tombstones_go() {
    let broker = RunningBroker::start(&CLEANER);
    create_compacted(&broker, "state");
    let records = dataset();
    produce(&broker, "state", &records).await;
    let expected = latest_per_key(&records);
    // Once the tombstone is older than delete.retention.ms (1 s), new writes
    // make the log dirty again and the next pass removes it, as in Kafka.
    std::thread::sleep(Duration::from_millis(1500));
    let more: Vec<(String, Option<String>)> = (0..60).map(|i| (format!("g{i}"), Some(format!("g{i}")))).collect();
    produce(&broker, "state", &more).await;
    let mut expected = expected;
    expected.extend(more.iter().cloned());
    let started = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = read_all(&broker, "state");
        let mut latest = latest_per_key(&now);
        let tombstone_gone = !now.iter().any(|(k, _)| k == "k0");
        let mostly_compacted = now.len() < (records.len() + more.len()) / 2;
        if tombstone_gone && mostly_compacted {
            // Every live key keeps its latest value; k0 is gone entirely.
            let mut expected_live = expected.clone();
            expected_live.remove("k0");
            latest.remove("k0");
            assert_eq!(latest, expected_live);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not compacted: {} records, k0 present: {}",
            now.len(),
            !tombstone_gone
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_are_refused_on_compacted_topics() {
    let broker = RunningBroker::start(&CLEANER);
    create_compacted(&broker, "keyed-only");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("message.send.max.retries", "0")
        .create()
        .expect("producer");
    let outcome = producer
        .send(
            FutureRecord::<(), _>::to("keyed-only").payload("no key"),
            Duration::from_secs(10),
        )
        .await;
    let (error, _) = outcome.expect_err("refused");
    assert!(
        error.to_string().contains("Invalid record") || error.to_string().contains("InvalidRecord"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_cleaning_loses_no_latest_value() {
    let mut broker = RunningBroker::start(&CLEANER);
    create_compacted(&broker, "crashing");
    let records = dataset();
    produce(&broker, "crashing", &records).await;
    let mut expected = latest_per_key(&records);
    expected.remove("k0");
    for round in 0..6u64 {
        std::thread::sleep(Duration::from_millis(40 + round * 53 % 200));
        broker.kill();
        broker.restart();
    }
    std::thread::sleep(Duration::from_millis(300));
    let now = read_all(&broker, "crashing");
    let mut latest = latest_per_key(&now);
    let k0 = latest.remove("k0");
    assert!(
        matches!(k0, None | Some(None)),
        "k0 is deleted or its tombstone remains"
    );
    assert_eq!(latest, expected, "every key's latest value survived the crashes");
}
