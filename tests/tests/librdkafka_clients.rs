//! librdkafka (through the `rdkafka` crate) against the real broker: no loss,
//! no duplicate, per-partition order, every codec, and restarts.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use ringlog_tests::{assign_from_beginning, create_topic, RunningBroker};

const DEADLINE: Duration = Duration::from_secs(120);

fn producer(bootstrap: &str, codec: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.codec", codec)
        .set("linger.ms", "5")
        .set("acks", "all")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer")
}

/// Produces `(key, value)` pairs; returns `(partition, offset) -> value`.
async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    messages: &[(String, String)],
) -> BTreeMap<(i32, i64), String> {
    let mut deliveries = Vec::with_capacity(messages.len());
    for (key, value) in messages {
        let record = FutureRecord::to(topic).key(key).payload(value);
        let delivery = producer
            .send_result(record)
            .map_err(|(error, _)| error)
            .expect("queued");
        deliveries.push((value.clone(), delivery));
    }
    let mut placed = BTreeMap::new();
    for (value, delivery) in deliveries {
        let delivery = delivery.await.expect("delivery not cancelled").expect("delivered");
        assert!(
            placed.insert((delivery.partition, delivery.offset), value).is_none(),
            "offset given twice"
        );
    }
    placed
}

/// Reads every partition of `topic` from the beginning until `expected`
/// messages arrived; returns `(partition, offset) -> value`.
fn consume_all(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> BTreeMap<(i32, i64), String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.partition.eof", "false")
        // librdkafka's assign() wants a group id; offsets are explicit and never
        // committed, so no coordinator is involved (consumer groups: issue 3).
        .set("group.id", "ringlog-tests")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .expect("consumer");
    assign_from_beginning(&consumer, topic, partitions);
    let mut seen = BTreeMap::new();
    let started = Instant::now();
    while seen.len() < expected {
        assert!(
            started.elapsed() < DEADLINE,
            "consumed only {} of {expected}",
            seen.len()
        );
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("consume error");
        let value = String::from_utf8(message.payload().expect("payload").to_vec()).expect("utf8");
        let previous = seen.insert((message.partition(), message.offset()), value);
        assert!(
            previous.is_none(),
            "duplicate at {}:{}",
            message.partition(),
            message.offset()
        );
    }
    // Nothing beyond what was produced shows up.
    if let Some(Ok(extra)) = consumer.poll(Duration::from_millis(500)) {
        panic!("unexpected extra message at {}:{}", extra.partition(), extra.offset());
    }
    seen
}

fn keyed_messages(count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| (format!("key-{}", i % 997), format!("value-{i:07}")))
        .collect()
}

/// Per partition, offsets are dense from 0 and each key's values are in the
/// order they were produced.
fn assert_dense_and_ordered(consumed: &BTreeMap<(i32, i64), String>, messages: &[(String, String)]) {
    let key_of: HashMap<&str, &str> = messages.iter().map(|(k, v)| (v.as_str(), k.as_str())).collect();
    let mut next_offset: HashMap<i32, i64> = HashMap::new();
    let mut last_per_key: HashMap<&str, &str> = HashMap::new();
    for ((partition, offset), value) in consumed {
        let expected = next_offset.entry(*partition).or_insert(0);
        assert_eq!(offset, expected, "offsets of partition {partition} must be dense");
        *expected += 1;
        let key = key_of[value.as_str()];
        if let Some(previous) = last_per_key.insert(key, value) {
            assert!(previous < value.as_str(), "key {key}: {previous} came after {value}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_keyed_messages_round_trip_without_loss_or_duplicate() {
    let broker = RunningBroker::start(&[]);
    create_topic(broker.bootstrap(), "keyed", 8).await;
    let messages = keyed_messages(100_000);
    let produced = produce_all(&producer(broker.bootstrap(), "none"), "keyed", &messages).await;
    assert_eq!(produced.len(), messages.len());
    let bootstrap = broker.bootstrap().to_string();
    let consumed = tokio::task::spawn_blocking(move || consume_all(&bootstrap, "keyed", 8, 100_000))
        .await
        .expect("consumer thread");
    assert_eq!(
        consumed, produced,
        "every message exactly once, where it was acknowledged"
    );
    assert_dense_and_ordered(&consumed, &messages);
    let partitions_used = consumed
        .keys()
        .map(|(p, _)| *p)
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(partitions_used.len(), 8, "keys spread over all partitions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_compression_codec_round_trips() {
    let broker = RunningBroker::start(&[]);
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(broker.bootstrap(), &topic, 2).await;
        let messages = keyed_messages(5_000);
        let produced = produce_all(&producer(broker.bootstrap(), codec), &topic, &messages).await;
        let bootstrap = broker.bootstrap().to_string();
        let consumed = tokio::task::spawn_blocking(move || consume_all(&bootstrap, &topic, 2, 5_000))
            .await
            .expect("consumer thread");
        assert_eq!(consumed, produced, "codec {codec}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_reads_back_after_restart_and_after_kill_9() {
    let mut broker = RunningBroker::start(&[]);
    create_topic(broker.bootstrap(), "durable", 4).await;
    let first = keyed_messages(20_000);
    let mut produced = produce_all(&producer(broker.bootstrap(), "lz4"), "durable", &first).await;

    broker.stop();
    broker.restart();
    let bootstrap = broker.bootstrap().to_string();
    let consumed = tokio::task::spawn_blocking(move || consume_all(&bootstrap, "durable", 4, 20_000))
        .await
        .expect("consumer thread");
    assert_eq!(consumed, produced, "after a clean restart");

    // Acknowledged with the default flush policy (page cache), then SIGKILL:
    // a process crash loses nothing that was acknowledged.
    let second: Vec<(String, String)> = (0..10_000)
        .map(|i| (format!("k{i}"), format!("second-{i:07}")))
        .collect();
    produced.extend(produce_all(&producer(broker.bootstrap(), "none"), "durable", &second).await);
    broker.kill();
    broker.restart();
    let bootstrap = broker.bootstrap().to_string();
    let consumed = tokio::task::spawn_blocking(move || consume_all(&bootstrap, "durable", 4, 30_000))
        .await
        .expect("consumer thread");
    assert_eq!(consumed, produced, "after kill -9");

    // And the log keeps going at the right offsets.
    let third = keyed_messages(100);
    let placed = produce_all(&producer(broker.bootstrap(), "none"), "durable", &third).await;
    for (partition, offset) in placed.keys() {
        assert!(
            !produced.contains_key(&(*partition, *offset)),
            "offset {partition}:{offset} reused"
        );
    }
}
