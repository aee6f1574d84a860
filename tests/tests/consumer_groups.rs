//! Consumer groups with real clients: assignment, rebalances on leave and on a
//! crashed member, cooperative-sticky, independent groups, and committed
//! offsets that survive a broker restart.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, TopicPartitionList};
use ringlog_tests::{create_topic, RunningBroker};

const DEADLINE: Duration = Duration::from_secs(90);

fn group_broker() -> RunningBroker {
    RunningBroker::start(&[
        ("group.initial.rebalance.delay.ms", "300"),
        ("group.min.session.timeout.ms", "1000"),
    ])
}

async fn produce(bootstrap: &str, topic: &str, values: impl Iterator<Item = String>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "2")
        .create()
        .expect("producer");
    let mut deliveries = Vec::new();
    for value in values {
        let record = FutureRecord::to(topic).key(&value).payload(&value);
        deliveries.push(producer.send_result(record).map_err(|(e, _)| e).expect("queued"));
    }
    for delivery in deliveries {
        delivery.await.expect("not cancelled").expect("delivered");
    }
}

fn group_member(bootstrap: &str, group: &str, topic: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "300")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

fn assigned(consumer: &BaseConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .expect("assignment")
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// Polls every member until `done(assignments)` holds; panics at the deadline.
fn poll_until(members: &[&BaseConsumer], what: &str, done: impl Fn(&[BTreeSet<i32>]) -> bool) -> Vec<BTreeSet<i32>> {
    let started = Instant::now();
    loop {
        for member in members {
            let _ = member.poll(Duration::from_millis(50));
        }
        let assignments: Vec<_> = members.iter().map(|m| assigned(m)).collect();
        if done(&assignments) {
            return assignments;
        }
        assert!(started.elapsed() < DEADLINE, "{what}: stuck at {assignments:?}");
    }
}

/// Disjoint assignments that together cover `0..partitions`, none empty.
fn is_partitioning(assignments: &[BTreeSet<i32>], partitions: i32) -> bool {
    let total: usize = assignments.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = assignments.iter().flatten().copied().collect();
    total == partitions as usize && union == (0..partitions).collect() && assignments.iter().all(|a| !a.is_empty())
}

fn kcat_group_member(bootstrap: &str, group: &str, topic: &str) -> Child {
    Command::new("kcat")
        .args([
            "-b",
            bootstrap,
            "-G",
            group,
            topic,
            "-q",
            "-X",
            "session.timeout.ms=6000",
            "-X",
            "heartbeat.interval.ms=300",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kcat installed (scripts/install-test-deps.sh)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_partitions_and_take_over_on_leave_and_on_crash() {
    let broker = group_broker();
    create_topic(broker.bootstrap(), "shared", 6).await;
    let a = group_member(broker.bootstrap(), "sharing", "shared", &[]);
    let b = group_member(broker.bootstrap(), "sharing", "shared", &[]);
    let c = group_member(broker.bootstrap(), "sharing", "shared", &[]);
    poll_until(&[&a, &b, &c], "three members", |s| is_partitioning(s, 6));

    // c leaves cleanly (LeaveGroup): a and b take over its partitions.
    drop(c);
    poll_until(&[&a, &b], "after a leave", |s| is_partitioning(s, 6));

    // A third member that dies without leaving: once its session times out,
    // a and b get everything back.
    let mut crashed = kcat_group_member(broker.bootstrap(), "sharing", "shared");
    poll_until(&[&a, &b], "kcat joined", |s| {
        s.iter().map(BTreeSet::len).sum::<usize>() < 6 && s.iter().all(|p| !p.is_empty())
    });
    crashed.kill().expect("kill -9 kcat");
    let _ = crashed.wait();
    poll_until(&[&a, &b], "after the crash", |s| is_partitioning(s, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_and_roundrobin_assignors_work() {
    let broker = group_broker();
    create_topic(broker.bootstrap(), "assignors", 4).await;
    for strategy in ["cooperative-sticky", "roundrobin"] {
        let options = [("partition.assignment.strategy", strategy)];
        let group = format!("group-{strategy}");
        let a = group_member(broker.bootstrap(), &group, "assignors", &options);
        let b = group_member(broker.bootstrap(), &group, "assignors", &options);
        poll_until(&[&a, &b], strategy, |s| is_partitioning(s, 4));
        let c = group_member(broker.bootstrap(), &group, "assignors", &options);
        poll_until(&[&a, &b, &c], strategy, |s| is_partitioning(s, 4));
    }
}

/// Consumes until `count` messages arrived; commits what it read when asked.
fn consume(consumer: &BaseConsumer, count: usize, commit: bool) -> Vec<String> {
    let mut values = Vec::new();
    let started = Instant::now();
    while values.len() < count {
        assert!(started.elapsed() < DEADLINE, "consumed {} of {count}", values.len());
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("consume");
        values.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string());
        if commit {
            let mut offsets = TopicPartitionList::new();
            offsets
                .add_partition_offset(
                    message.topic(),
                    message.partition(),
                    rdkafka::Offset::Offset(message.offset() + 1),
                )
                .expect("offset");
            consumer.commit(&offsets, CommitMode::Sync).expect("commit");
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_each_read_every_message() {
    let broker = group_broker();
    create_topic(broker.bootstrap(), "fanout", 3).await;
    produce(broker.bootstrap(), "fanout", (0..600).map(|i| format!("m{i:04}"))).await;
    let expected: BTreeSet<String> = (0..600).map(|i| format!("m{i:04}")).collect();
    for group in ["first", "second"] {
        let consumer = group_member(broker.bootstrap(), group, "fanout", &[]);
        let seen: BTreeSet<String> = consume(&consumer, 600, false).into_iter().collect();
        assert_eq!(seen, expected, "group {group}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_restart_and_kill_9() {
    let mut broker = group_broker();
    create_topic(broker.bootstrap(), "resume", 2).await;
    produce(broker.bootstrap(), "resume", (0..400).map(|i| format!("r{i:04}"))).await;
    let mut all_seen = Vec::new();
    {
        let consumer = group_member(broker.bootstrap(), "resumers", "resume", &[]);
        all_seen.extend(consume(&consumer, 150, true));
    }
    broker.stop();
    broker.restart();
    {
        let consumer = group_member(broker.bootstrap(), "resumers", "resume", &[]);
        all_seen.extend(consume(&consumer, 150, true));
    }
    broker.kill();
    broker.restart();
    let consumer = group_member(broker.bootstrap(), "resumers", "resume", &[]);
    all_seen.extend(consume(&consumer, 100, true));
    // Every message exactly once: commits were per message, so nothing is
    // read twice across the restarts and nothing is skipped.
    let distinct: BTreeSet<&String> = all_seen.iter().collect();
    assert_eq!(distinct.len(), 400, "no duplicate across restarts");
    assert_eq!(all_seen.len(), 400);
    // OffsetFetch after restart: the group's commits are where it stopped.
    let committed = consumer.committed(Duration::from_secs(10)).expect("committed offsets");
    let by_partition: BTreeMap<i32, i64> = committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect();
    assert_eq!(by_partition.values().sum::<i64>(), 400, "{by_partition:?}");
}

/// Churn, where other brokers' coordinators got stuck: eight members join at
/// once, then half of them leave at once; the group settles both times with
/// every partition assigned exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_and_leaves_settle() {
    let broker = group_broker();
    create_topic(broker.bootstrap(), "churn", 12).await;
    let mut members: Vec<BaseConsumer> = (0..8)
        .map(|_| group_member(broker.bootstrap(), "churners", "churn", &[]))
        .collect();
    {
        let all: Vec<&BaseConsumer> = members.iter().collect();
        poll_until(&all, "eight members", |s| is_partitioning(s, 12));
    }
    let leaving: Vec<BaseConsumer> = members.drain(4..).collect();
    std::thread::scope(|scope| {
        for member in leaving {
            scope.spawn(move || drop(member));
        }
    });
    let remaining: Vec<&BaseConsumer> = members.iter().collect();
    poll_until(&remaining, "four left", |s| is_partitioning(s, 12));
}
