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
