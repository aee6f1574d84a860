//! Connection limits: `max.connections` closes connections beyond the limit
//! (and frees a slot when one closes); `connections.max.idle.ms` closes
//! connections that send nothing.

use std::time::Duration;

use kafka_protocol::messages::ApiVersionsRequest;
use ringlog_tests::{RawConnection, RunningBroker};

fn works(connection: &mut RawConnection) -> bool {
    connection.request(3, &ApiVersionsRequest::default()).error_code == 0
}

#[test]
fn connections_beyond_max_connections_are_closed_and_slots_come_back() {
    let broker = RunningBroker::start(&[("max.connections", "3")]);
    let mut open: Vec<RawConnection> = (0..3).map(|_| RawConnection::connect(broker.bootstrap())).collect();
    for connection in &mut open {
        assert!(works(connection));
    }
    let mut extra = RawConnection::connect(broker.bootstrap());
    assert!(extra.is_closed_by_peer(), "the fourth connection is refused");
    drop(open.pop());
    std::thread::sleep(Duration::from_millis(300));
    let mut again = RawConnection::connect(broker.bootstrap());
    assert!(works(&mut again), "a closed connection frees its slot");
    assert!(broker.log().contains("max.connections reached"));
}

#[test]
fn idle_connections_are_closed() {
    let broker = RunningBroker::start(&[("connections.max.idle.ms", "500")]);
    let mut busy = RawConnection::connect(broker.bootstrap());
    let mut idle = RawConnection::connect(broker.bootstrap());
    assert!(works(&mut idle));
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(200));
        assert!(works(&mut busy), "an active connection stays open");
    }
    assert!(idle.is_closed_by_peer(), "the silent connection was closed");
}

#[test]
fn a_connection_over_its_inflight_budget_is_paused_not_dropped() {
    use kafka_protocol::messages::ProduceRequest;
    use ringlog_tests::{create_topic_raw, idempotent_batch, produce_request};
    // Room for one 40 KiB request at a time: the rest wait in the socket.
    let broker = RunningBroker::start(&[("connection.max.inflight.bytes", "65536")]);
    assert_eq!(create_topic_raw(broker.bootstrap(), "budget", 1, &[]), 0);
    let mut connection = RawConnection::connect(broker.bootstrap());
    let producer_id = connection.init_producer_id();
    let request = |sequence: i32, value_bytes: usize| {
        produce_request(
            "budget",
            0,
            idempotent_batch(producer_id, 0, sequence, &["b".repeat(value_bytes)]),
        )
    };
    // 20 pipelined requests of 40 KiB, then one of 200 KiB (over the budget).
    let mut ids: Vec<i32> = (0..20)
        .map(|sequence| connection.send(9, &request(sequence, 40 * 1024)))
        .collect();
    ids.push(connection.send(9, &request(20, 200 * 1024)));
    for (expected_offset, id) in ids.into_iter().enumerate() {
        let response = connection
            .try_receive::<ProduceRequest>(9, id)
            .expect("every request is answered, in order");
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(
            (partition.error_code, partition.base_offset),
            (0, expected_offset as i64)
        );
    }
}
