//! librdkafka's in-process mock broker, served on loopback until killed: a
//! memory-only Kafka-compatible broker (no disk, no CRC check) that any
//! client or `ringlog-bench` can be pointed at, as a floor to compare with.
//!
//! `cargo run --release -p ringlog-tests --example mock_broker -- e2e:8`
//! creates topic `e2e` with 8 partitions (the mock has no CreateTopics),
//! prints `mock broker on HOST:PORT` and serves until stopped.

use rdkafka::mocking::MockCluster;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = MockCluster::new(1)?;
    for topic in std::env::args().skip(1) {
        let (name, partitions) = topic
            .split_once(':')
            .ok_or_else(|| format!("{topic:?}: expected NAME:PARTITIONS"))?;
        cluster.create_topic(name, partitions.parse()?, 1)?;
    }
    println!("mock broker on {}", cluster.bootstrap_servers());
    loop {
        std::thread::park();
    }
}
