//! SIGTERM: the broker stops reading requests, answers those it has read
//! (a waiting long poll at once), flushes, writes its clean-shutdown marker
//! and exits 0; everything it acknowledged is there after the restart.

use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, ProduceRequest};
use ringlog_tests::{create_topic_raw, idempotent_batch, produce_request, topic_name, RawConnection, RunningBroker};

const TOPIC: &str = "graceful";
const PIPELINED_REQUESTS: i32 = 40;

fn numbered_record(producer_id: i64, number: i32) -> ProduceRequest {
    let batch = idempotent_batch(producer_id, 0, number, &[format!("record-{number}")]);
    produce_request(TOPIC, 0, batch)
}

#[test]
fn sigterm_answers_in_flight_requests_and_shuts_down_clean() {
    let mut broker = RunningBroker::start(&[]);
    assert_eq!(create_topic_raw(broker.bootstrap(), TOPIC, 1, &[]), 0);
    // A long poll with nothing to return: it would wait 20 s.
    let mut consumer = RawConnection::connect(broker.bootstrap());
    let fetch = FetchRequest::default()
        .with_max_wait_ms(20_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(1_000_000)
                .with_partition_max_bytes(1 << 20)])]);
    let fetch_id = consumer.send(11, &fetch);
    // Produce requests in flight on another connection.
    let mut producer = RawConnection::connect(broker.bootstrap());
    let producer_id = producer.init_producer_id();
    let produce_ids: Vec<i32> = (0..PIPELINED_REQUESTS)
        .map(|number| producer.send(9, &numbered_record(producer_id, number)))
        .collect();
    std::thread::sleep(Duration::from_millis(200));

    let stop_requested = Instant::now();
    broker.request_stop();
    let fetched = consumer
        .try_receive::<FetchRequest>(11, fetch_id)
        .expect("the long poll is answered, not cut off");
    assert!(
        stop_requested.elapsed() < Duration::from_secs(5),
        "the long poll was answered at shutdown, not at its deadline"
    );
    assert_eq!(
        fetched.responses[0].partitions[0].error_code, 1,
        "OFFSET_OUT_OF_RANGE at 1000000"
    );
    let mut acked = 0;
    for id in produce_ids {
        match producer.try_receive::<ProduceRequest>(9, id) {
            Ok(response) => {
                assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
                acked += 1;
            }
            Err(_) => break, // the rest were not read before the shutdown
        }
    }
    assert!(consumer.is_closed_by_peer(), "connections close after answering");
    let status = broker.wait_for_exit();
    assert!(status.success(), "exit status {status}");
    assert!(
        broker.data_dir().join(".clean-shutdown").exists(),
        "clean-shutdown marker written"
    );
    assert!(broker.log().contains("stopped clean=true"), "{}", broker.log());

    broker.restart();
    let records = RawConnection::connect(broker.bootstrap()).read_partition(TOPIC, 0);
    assert!(
        records.len() >= acked,
        "{} records kept, {acked} acknowledged",
        records.len()
    );
    for (index, (_, value)) in records.iter().enumerate() {
        assert_eq!(String::from_utf8_lossy(value), format!("record-{index}"));
    }
}
