//! Transactions with librdkafka: read_committed sees only committed data,
//! consume-transform-produce commits outputs and input offsets together, a
//! second producer fences the first, and a broker crash mid-transaction ends
//! with the transaction aborted everywhere.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};
use ringlog_tests::{assign_from_beginning, create_topic, manual_consumer_config, RunningBroker};

const TIMEOUT: Duration = Duration::from_secs(30);

fn broker() -> RunningBroker {
    RunningBroker::start(&[
        ("group.initial.rebalance.delay.ms", "200"),
        ("group.min.session.timeout.ms", "1000"),
    ])
}

fn transactional_producer(bootstrap: &str, transactional_id: &str) -> ThreadedProducer<DefaultProducerContext> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "60000")
        .create()
        .expect("transactional producer");
    producer.init_transactions(TIMEOUT).expect("init_transactions");
    producer
}

fn send(producer: &ThreadedProducer<DefaultProducerContext>, topic: &str, values: impl IntoIterator<Item = String>) {
    for value in values {
        let mut record = BaseRecord::<(), String>::to(topic).payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((error, returned)) => {
                    assert!(
                        matches!(
                            error,
                            rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "send failed: {error}"
                    );
                    record = returned;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
}

/// Everything a reader at `isolation` sees of `topic` (all partitions).
fn read_all(bootstrap: &str, topic: &str, partitions: i32, isolation: &str) -> Vec<String> {
    let consumer: BaseConsumer = manual_consumer_config(bootstrap, &format!("reader-{isolation}"))
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    assign_from_beginning(&consumer, topic, partitions);
    let mut values = Vec::new();
    let mut at_end = BTreeSet::new();
    let started = Instant::now();
    while at_end.len() < partitions as usize {
        assert!(
            started.elapsed() < TIMEOUT,
            "reading {topic} ({isolation}) never reached the end"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                values.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string())
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(error)) => panic!("consume: {error}"),
            None => {}
        }
    }
    values.sort();
    values
}

/// ListOffsets "latest" per partition at `isolation_level` (0: high
/// watermark, 1: last stable offset).
fn end_offsets(broker: &RunningBroker, topic: &str, partitions: i32, isolation_level: i8) -> Vec<i64> {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let mut connection = ringlog_tests::RawConnection::connect(broker.bootstrap());
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                (0..partitions)
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(-1)
                    })
                    .collect(),
            )]);
    let response = connection.request(6, &request);
    response.topics[0].partitions.iter().map(|p| p.offset).collect()
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i:04}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_data_is_visible_to_read_committed_and_aborted_data_is_not() {
    let broker = broker();
    create_topic(broker.bootstrap(), "ledger", 3).await;
    let producer = transactional_producer(broker.bootstrap(), "ledger-writer");

    producer.begin_transaction().expect("begin");
    send(&producer, "ledger", numbered("committed", 0..300));
    producer.commit_transaction(TIMEOUT).expect("commit");

    producer.begin_transaction().expect("begin");
    send(&producer, "ledger", numbered("aborted", 0..200));
    producer.flush(TIMEOUT).expect("flush");
    producer.abort_transaction(TIMEOUT).expect("abort");

    producer.begin_transaction().expect("begin");
    send(&producer, "ledger", numbered("later", 0..50));
    producer.commit_transaction(TIMEOUT).expect("commit");

    let mut expected_committed = numbered("committed", 0..300);
    expected_committed.extend(numbered("later", 0..50));
    expected_committed.sort();
    assert_eq!(
        read_all(broker.bootstrap(), "ledger", 3, "read_committed"),
        expected_committed
    );
    let mut everything = expected_committed.clone();
    everything.extend(numbered("aborted", 0..200));
    everything.sort();
    assert_eq!(
        read_all(broker.bootstrap(), "ledger", 3, "read_uncommitted"),
        everything
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_commits_outputs_and_input_offsets_together() {
    let broker = broker();
    create_topic(broker.bootstrap(), "input", 2).await;
    create_topic(broker.bootstrap(), "output", 2).await;
    let plain: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("producer");
    send(&plain, "input", numbered("in", 0..400));
    plain.flush(TIMEOUT).expect("flush");

    let consumer: BaseConsumer = manual_consumer_config(broker.bootstrap(), "transformers")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&["input"]).expect("subscribe");
    let producer = transactional_producer(broker.bootstrap(), "transformer-1");

    // Transform in transactions of up to 50 inputs; every third one aborts
    // and is redone from the last committed position.
    let mut committed_outputs = 0usize;
    let mut round = 0;
    let started = Instant::now();
    while committed_outputs < 400 {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{committed_outputs} of 400 transformed"
        );
        let mut inputs = Vec::new();
        while inputs.len() < 50 {
            match consumer.poll(Duration::from_millis(300)) {
                Some(Ok(message)) => inputs.push((
                    message.partition(),
                    message.offset(),
                    String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string(),
                )),
                Some(Err(error)) => panic!("consume: {error}"),
                None if !inputs.is_empty() => break,
                None => {}
            }
        }
        round += 1;
        producer.begin_transaction().expect("begin");
        send(
            &producer,
            "output",
            inputs.iter().map(|(_, _, value)| value.replace("in-", "out-")),
        );
        let mut positions = TopicPartitionList::new();
        for (partition, offset, _) in &inputs {
            positions
                .add_partition_offset("input", *partition, Offset::Offset(offset + 1))
                .expect("offset");
        }
        producer
            .send_offsets_to_transaction(&positions, &consumer.group_metadata().expect("group metadata"), TIMEOUT)
            .expect("send offsets");
        if round % 3 == 0 {
            producer.abort_transaction(TIMEOUT).expect("abort");
            // Rewind to what the group has committed and redo.
            let committed = consumer.committed(TIMEOUT).expect("committed");
            for element in committed.elements() {
                let offset = match element.offset() {
                    Offset::Offset(o) => Offset::Offset(o),
                    _ => Offset::Beginning,
                };
                consumer
                    .seek(element.topic(), element.partition(), offset, TIMEOUT)
                    .expect("seek back");
            }
        } else {
            producer.commit_transaction(TIMEOUT).expect("commit");
            committed_outputs += inputs.len();
        }
    }
    // Exactly one output per input, despite the aborted rounds.
    let mut expected = numbered("out", 0..400);
    expected.sort();
    assert_eq!(read_all(broker.bootstrap(), "output", 2, "read_committed"), expected);
    // And the group's offsets are exactly where the outputs end.
    let committed = consumer.committed(TIMEOUT).expect("committed");
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum();
    assert_eq!(total, 400, "input offsets committed with the outputs");
    consumer.commit_consumer_state(CommitMode::Sync).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_with_the_same_transactional_id_fences_the_first() {
    let broker = broker();
    create_topic(broker.bootstrap(), "fenced", 1).await;
    let first = transactional_producer(broker.bootstrap(), "shared-id");
    first.begin_transaction().expect("begin");
    send(&first, "fenced", numbered("zombie", 0..10));
    first.flush(TIMEOUT).expect("flush");

    // The second producer's init aborts the first's open transaction.
    let second = transactional_producer(broker.bootstrap(), "shared-id");
    second.begin_transaction().expect("begin");
    send(&second, "fenced", numbered("fresh", 0..10));
    second.commit_transaction(TIMEOUT).expect("commit");

    let zombie_commit = first.commit_transaction(TIMEOUT);
    assert!(zombie_commit.is_err(), "the fenced producer cannot commit");
    assert_eq!(
        read_all(broker.bootstrap(), "fenced", 1, "read_committed"),
        numbered("fresh", 0..10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_open_when_the_broker_is_killed_ends_aborted_everywhere() {
    let mut broker = broker();
    create_topic(broker.bootstrap(), "crashy", 2).await;
    {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("transactional.id", "crash-writer")
            .set("transaction.timeout.ms", "10000")
            .create()
            .expect("producer");
        producer.init_transactions(TIMEOUT).expect("init");
        producer.begin_transaction().expect("begin");
        send(&producer, "crashy", numbered("committed", 0..20));
        producer.commit_transaction(TIMEOUT).expect("commit");
        producer.begin_transaction().expect("begin");
        send(&producer, "crashy", numbered("in-flight", 0..40));
        producer
            .flush(TIMEOUT)
            .expect("flush: the data is in the log, uncommitted");
        broker.kill();
        std::mem::forget(producer); // it would try to abort on drop against a dead broker
    }
    broker.restart();
    // Until the coordinator acts, the open transaction holds the last stable
    // offset back. It times out (10 s) and is aborted: then the last stable
    // offset reaches the high watermark, with no new producer involved.
    let first_stable = end_offsets(&broker, "crashy", 2, 1);
    let first_high = end_offsets(&broker, "crashy", 2, 0);
    assert_ne!(first_stable, first_high, "recovery kept the transaction open");
    let started = Instant::now();
    loop {
        let stable = end_offsets(&broker, "crashy", 2, 1);
        let high = end_offsets(&broker, "crashy", 2, 0);
        if stable == high {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never aborted: LSO {stable:?}, HW {high:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        read_all(broker.bootstrap(), "crashy", 2, "read_committed"),
        numbered("committed", 0..20)
    );
    assert_eq!(
        read_all(broker.bootstrap(), "crashy", 2, "read_uncommitted").len(),
        60,
        "aborted data stays, hidden"
    );
    // A new producer with the same id works, and its commit is visible
    // (the LSO moved past the aborted transaction).
    let producer = transactional_producer(broker.bootstrap(), "crash-writer");
    producer.begin_transaction().expect("begin");
    send(&producer, "crashy", numbered("after", 0..5));
    producer.commit_transaction(TIMEOUT).expect("commit");
    let mut expected = numbered("committed", 0..20);
    expected.extend(numbered("after", 0..5));
    expected.sort();
    assert_eq!(read_all(broker.bootstrap(), "crashy", 2, "read_committed"), expected);
}
