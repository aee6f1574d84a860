//! Idempotent producers: retries never write a duplicate, across dropped
//! connections and broker restarts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use ringlog_tests::{
    assign_from_beginning, idempotent_batch, manual_consumer_config, topic_name, ChaosProxy, RawConnection,
    RunningBroker,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_through_a_connection_cutting_proxy_writes_each_message_once_in_order() {
    let proxy = ChaosProxy::start(Duration::from_millis(150));
    let broker = RunningBroker::start_advertising(proxy.address(), &[("num.partitions", "4")]);
    proxy.set_target(broker.bootstrap());
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", proxy.address())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("batch.num.messages", "200")
        .set("message.timeout.ms", "120000")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "100")
        .create()
        .expect("producer");
    proxy.set_chaos(true);
    const COUNT: usize = 20_000;
    let mut deliveries = Vec::with_capacity(COUNT);
    for i in 0..COUNT {
        let value = format!("{i:06}");
        let key = format!("k{}", i % 16);
        let mut record = FutureRecord::to("flaky").key(&key).payload(&value);
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break deliveries.push(delivery),
                Err((_, returned)) => {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        if i % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await; // let the proxy cut mid-stream
        }
    }
    let mut placed: BTreeMap<(i32, i64), String> = BTreeMap::new();
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let delivery = delivery.await.expect("not cancelled").expect("delivered despite cuts");
        assert!(placed
            .insert((delivery.partition, delivery.offset), format!("{i:06}"))
            .is_none());
    }
    proxy.set_chaos(false);
    assert!(proxy.cuts() >= 3, "the proxy cut connections {} times", proxy.cuts());

    // Read everything back: each message exactly once, dense offsets, and per
    // key the production order.
    let consumer: BaseConsumer = manual_consumer_config(proxy.address(), "idempotence-check")
        .create()
        .expect("consumer");
    assign_from_beginning(&consumer, "flaky", 4);
    let mut log: BTreeMap<(i32, i64), String> = BTreeMap::new();
    let started = Instant::now();
    while log.len() < COUNT {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "read {} of {COUNT}",
            log.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("consume");
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string();
            assert!(log.insert((message.partition(), message.offset()), value).is_none());
        }
    }
    if let Some(Ok(extra)) = consumer.poll(Duration::from_millis(500)) {
        panic!(
            "a duplicate or stray record at {}:{}",
            extra.partition(),
            extra.offset()
        );
    }
    assert_eq!(
        log, placed,
        "the log holds exactly the acknowledged messages, where acknowledged"
    );
    let mut last_per_partition: BTreeMap<i32, (i64, String)> = BTreeMap::new();
    for ((partition, offset), value) in &log {
        if let Some((previous_offset, previous_value)) = last_per_partition.get(partition) {
            assert_eq!(*offset, previous_offset + 1, "dense offsets");
            assert!(value > previous_value, "order kept within partition {partition}");
        }
        last_per_partition.insert(*partition, (*offset, value.clone()));
    }
}

/// An idempotent batch of `count` records from `producer_id` at `epoch`,
/// starting at `sequence`.
fn producer_batch(producer_id: i64, epoch: i16, sequence: i32, count: usize) -> Bytes {
    let values: Vec<String> = (0..count).map(|i| format!("s{}", sequence as usize + i)).collect();
    idempotent_batch(producer_id, epoch, sequence, &values)
}

fn produce(connection: &mut RawConnection, records: Bytes) -> (i16, i64) {
    connection.produce("dedupe", 0, records)
}

fn log_end(connection: &mut RawConnection) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name("dedupe"))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(-1)
                .with_timestamp(-1)])]);
    connection.request(6, &request).topics[0].partitions[0].offset
}

#[test]
fn retried_batches_are_deduplicated_across_restarts_and_sequences_are_checked() {
    // Small segments, so rolls write producer snapshots and recovery uses them.
    let mut broker = RunningBroker::start(&[("log.segment.bytes", "1024")]);
    let mut connection = RawConnection::connect(broker.bootstrap());
    let create = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(topic_name("dedupe"))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    assert_eq!(connection.request(7, &create).topics[0].error_code, 0);
    let producer_id = connection.init_producer_id();

    let mut sequence = 0;
    let mut expected_offset = 0;
    for _ in 0..30 {
        assert_eq!(
            produce(&mut connection, producer_batch(producer_id, 0, sequence, 3)),
            (0, expected_offset)
        );
        sequence += 3;
        expected_offset += 3;
    }
    // The last batch again: a retry, answered with its original offset.
    let retry = producer_batch(producer_id, 0, sequence - 3, 3);
    let retry_offset = expected_offset - 3;
    assert_eq!(produce(&mut connection, retry.clone()), (0, retry_offset));
    assert_eq!(log_end(&mut connection), expected_offset, "nothing written twice");
    // A gap: OUT_OF_ORDER_SEQUENCE_NUMBER; nothing written.
    assert_eq!(
        produce(&mut connection, producer_batch(producer_id, 0, sequence + 5, 1)).0,
        45
    );

    for crash in [true, false] {
        if crash {
            broker.kill();
        } else {
            broker.stop();
        }
        broker.restart();
        let mut connection = RawConnection::connect(broker.bootstrap());
        assert_eq!(log_end(&mut connection), expected_offset, "crash {crash}");
        assert_eq!(
            produce(&mut connection, retry.clone()),
            (0, retry_offset),
            "a retry after a restart (crash {crash}) is still a duplicate"
        );
        assert_eq!(log_end(&mut connection), expected_offset);
        assert_eq!(
            produce(&mut connection, producer_batch(producer_id, 0, sequence, 2)),
            (0, expected_offset)
        );
        sequence += 2;
        expected_offset += 2;
        let fresh = connection.init_producer_id();
        assert_ne!(fresh, producer_id, "producer ids are never reused");
    }
    // A new epoch restarts the sequence; the old epoch is then fenced.
    let mut connection = RawConnection::connect(broker.bootstrap());
    assert_eq!(
        produce(&mut connection, producer_batch(producer_id, 1, 0, 1)),
        (0, expected_offset)
    );
    assert_eq!(
        produce(&mut connection, producer_batch(producer_id, 0, sequence, 1)).0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    // An empty transactional id is refused, as Kafka does.
    let empty = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str(""))))
        .with_transaction_timeout_ms(60_000);
    assert_eq!(connection.request(4, &empty).error_code, 42, "INVALID_REQUEST");
}
