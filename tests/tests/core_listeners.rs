//! Core listeners: each core is advertised as a node of its own that leads
//! the partitions it owns, so clients reach the core that serves a request
//! without a hop between cores. The broker counts the requests a core sends
//! to another (`ringlog_core_messages_to_other_cores_total`); these tests
//! check leadership through that counter, and that each node describes
//! only its own partitions' log dirs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{DescribeLogDirsRequest, MetadataRequest, MetadataResponse};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use ringlog_tests::{create_topic_raw, idempotent_batch, topic_name, RawConnection, RunningBroker};

const PARTITIONS: i32 = 8;

fn metadata(address: &str, topic: &str) -> MetadataResponse {
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
    ]));
    RawConnection::connect(address).request(4, &request)
}

/// `host:port` of node `node_id` in `response`.
fn node_address(response: &MetadataResponse, node_id: i32) -> String {
    let node = response
        .brokers
        .iter()
        .find(|b| b.node_id.0 == node_id)
        .unwrap_or_else(|| panic!("node {node_id} is not among the brokers"));
    format!("{}:{}", node.host.as_str(), node.port)
}

/// Partition index -> its leader's node id.
fn leaders(response: &MetadataResponse) -> Vec<i32> {
    let mut leaders = vec![-1; PARTITIONS as usize];
    for partition in &response.topics[0].partitions {
        leaders[partition.partition_index as usize] = partition.leader_id.0;
    }
    leaders
}

fn messages_to_other_cores(broker: &RunningBroker) -> u64 {
    broker.metric_sum("ringlog_core_messages_to_other_cores_total") as u64
}

#[test]
fn each_core_is_a_node_that_serves_the_partitions_it_leads_without_a_hop() {
    let broker = RunningBroker::start(&[]);
    assert_eq!(create_topic_raw(broker.bootstrap(), "owned", PARTITIONS, &[]), 0);
    let response = metadata(broker.bootstrap(), "owned");
    assert_eq!(response.brokers.len(), 2, "one node per core (the harness runs two)");
    let ports: BTreeSet<i32> = response.brokers.iter().map(|b| b.port).collect();
    let bootstrap_port: i32 = broker
        .bootstrap()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert_eq!(ports.len(), 2, "each core listens on a port of its own");
    assert!(!ports.contains(&bootstrap_port), "the shared listener is not a node");
    assert_eq!(response.controller_id.0, 0);
    let leaders = leaders(&response);
    let led: BTreeSet<i32> = leaders.iter().copied().collect();
    assert_eq!(led, BTreeSet::from([0, 1]), "both cores lead partitions: {leaders:?}");
    // `ringlog status` (its /status endpoint) lists the same nodes.
    let status: serde_json::Value = serde_json::from_str(&broker.http_get("/status")).expect("status JSON");
    let status_ports: BTreeSet<i32> = status["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|node| node["port"].as_i64().map(|port| port as i32))
        .collect();
    assert_eq!(status_ports, ports);

    // A produce sent to a partition's leader is appended by the core that
    // accepted it; sent to the other node, it has to cross.
    for partition in 0..PARTITIONS {
        let leader = leaders[partition as usize];
        for (node, expected_hops) in [(leader, 0), (1 - leader, 1)] {
            let mut connection = RawConnection::connect(&node_address(&response, node));
            let before = messages_to_other_cores(&broker);
            let (error, _) = connection.produce("owned", partition, idempotent_batch(-1, -1, -1, &["v".into()]));
            assert_eq!(error, 0);
            assert_eq!(
                messages_to_other_cores(&broker) - before,
                expected_hops,
                "partition {partition} produced through node {node} (leader {leader})"
            );
        }
    }
}

/// Partitions of `topic` that DescribeLogDirs through `address` reports.
fn log_dir_partitions(address: &str, topic: &str) -> BTreeSet<i32> {
    let response = RawConnection::connect(address).request(1, &DescribeLogDirsRequest::default().with_topics(None));
    response
        .results
        .iter()
        .flat_map(|dir| dir.topics.iter())
        .filter(|t| t.name.as_str() == topic)
        .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
        .collect()
}

#[test]
fn each_node_describes_the_log_dirs_of_the_partitions_it_leads() {
    let broker = RunningBroker::start(&[]);
    assert_eq!(create_topic_raw(broker.bootstrap(), "dirs", PARTITIONS, &[]), 0);
    let response = metadata(broker.bootstrap(), "dirs");
    let leaders = leaders(&response);
    for node in [0, 1] {
        let led: BTreeSet<i32> = (0..PARTITIONS).filter(|p| leaders[*p as usize] == node).collect();
        assert_eq!(
            log_dir_partitions(&node_address(&response, node), "dirs"),
            led,
            "node {node}"
        );
    }
    let all: BTreeSet<i32> = (0..PARTITIONS).collect();
    assert_eq!(
        log_dir_partitions(broker.bootstrap(), "dirs"),
        all,
        "the shared listener reports all"
    );
}

fn produce_and_consume_with_librdkafka(broker: &RunningBroker, topic: &str) {
    assert_eq!(create_topic_raw(broker.bootstrap(), topic, PARTITIONS, &[]), 0);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    const COUNT: usize = 2_000;
    runtime.block_on(async {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("linger.ms", "2")
            .create()
            .expect("producer");
        let mut deliveries = Vec::with_capacity(COUNT);
        for i in 0..COUNT {
            let value = format!("{i:05}");
            let record = FutureRecord::to(topic).key(&value).payload(&value);
            deliveries.push(producer.send_result(record).map_err(|(e, _)| e).expect("queued"));
        }
        for delivery in deliveries {
            delivery.await.expect("not cancelled").expect("delivered");
        }
    });
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "readers")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut seen = BTreeSet::new();
    let started = Instant::now();
    while seen.len() < COUNT {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "read {} of {COUNT}",
            seen.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("message");
            seen.insert(message.payload().expect("payload").to_vec());
        }
    }
    consumer.commit_consumer_state(CommitMode::Sync).expect("commit");
}

#[test]
fn librdkafka_producers_and_group_consumers_reach_each_core_directly() {
    let broker = RunningBroker::start(&[("group.initial.rebalance.delay.ms", "0")]);
    // Creating a topic crosses cores once per core that opens partitions;
    // measure from after that.
    assert_eq!(create_topic_raw(broker.bootstrap(), "warm-up", 1, &[]), 0);
    let before = messages_to_other_cores(&broker);
    produce_and_consume_with_librdkafka(&broker, "direct");
    // Topic creation (the controller opens partitions on the other core)
    // crosses once; produce, fetch, ListOffsets, the group's joins, syncs,
    // heartbeats, offset fetches and commits do not.
    let crossed = messages_to_other_cores(&broker) - before;
    assert!(crossed <= 1, "{crossed} requests crossed cores");

    let forwarding = RunningBroker::start(&[("group.initial.rebalance.delay.ms", "0"), ("core.listeners", "false")]);
    let before = messages_to_other_cores(&forwarding);
    produce_and_consume_with_librdkafka(&forwarding, "forwarded");
    let crossed = messages_to_other_cores(&forwarding) - before;
    assert!(
        crossed > 10,
        "without core listeners the same work crosses cores ({crossed})"
    );
}

#[test]
fn without_core_listeners_or_behind_an_advertised_listener_there_is_one_node() {
    let broker = RunningBroker::start(&[("core.listeners", "false")]);
    assert_eq!(create_topic_raw(broker.bootstrap(), "single", PARTITIONS, &[]), 0);
    let response = metadata(broker.bootstrap(), "single");
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(node_address(&response, 0), broker.bootstrap());
    assert!(leaders(&response).iter().all(|&leader| leader == 0));

    // auto (the default) stays off when clients are told another address:
    // a proxy there would not carry the cores' ports.
    let advertised = RunningBroker::start_advertising("proxy.example:9092", &[]);
    let response = metadata(advertised.bootstrap(), "anything");
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(node_address(&response, 0), "proxy.example:9092");
}
