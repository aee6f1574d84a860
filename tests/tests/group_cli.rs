//! `ringlog group list|describe|reset-offsets|delete` against a running broker,
//! with lag checked against known produced and committed positions.

use std::process::Command;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use ringlog_tests::{manual_consumer_config, ringlog_binary, RunningBroker};

/// Record i of partition p has timestamp BASE_MS + i seconds.
const BASE_MS: i64 = 1_600_000_000_000;

fn ringlog(broker: &RunningBroker, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(ringlog_binary())
        .arg("group")
        .args(args)
        .args(["--bootstrap", broker.bootstrap()])
        .output()
        .expect("running ringlog group");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

fn describe(broker: &RunningBroker, group: &str) -> serde_json::Value {
    let (ok, stdout, stderr) = ringlog(broker, &["describe", group, "--json"]);
    assert!(ok, "describe failed: {stderr}");
    serde_json::from_str(&stdout).expect("describe --json is JSON")
}

/// (committed, log end, lag, time lag ms) of a partition in a describe report.
fn partition_figures(report: &serde_json::Value, partition: i64) -> (i64, i64, i64, i64) {
    let entry = report["partitions"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["partition"].as_i64() == Some(partition)))
        .expect("partition reported");
    let number = |key: &str| entry[key].as_i64().unwrap_or_else(|| panic!("{key} in {entry}"));
    (
        number("committed_offset"),
        number("log_end_offset"),
        number("offset_lag"),
        number("time_lag_ms"),
    )
}

async fn produce_timed(broker: &RunningBroker, topic: &str, partitions: i32, per_partition: i64) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("producer");
    for partition in 0..partitions {
        for i in 0..per_partition {
            let value = format!("p{partition}-{i}");
            let record = FutureRecord::<(), _>::to(topic)
                .payload(&value)
                .partition(partition)
                .timestamp(BASE_MS + i * 1000);
            producer.send(record, Duration::from_secs(30)).await.expect("delivered");
        }
    }
}

fn commit(broker: &RunningBroker, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let consumer: BaseConsumer = manual_consumer_config(broker.bootstrap(), group)
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .expect("offset");
    }
    consumer.commit(&list, CommitMode::Sync).expect("commit");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_reports_offset_and_time_lag_and_reset_moves_offsets() {
    let broker = RunningBroker::start(&[("num.partitions", "2"), ("group.initial.rebalance.delay.ms", "200")]);
    produce_timed(&broker, "lagged", 2, 50).await;
    commit(&broker, "watchers", "lagged", &[(0, 20), (1, 50)]);

    let before = now_ms();
    let report = describe(&broker, "watchers");
    let after = now_ms();
    let (committed, end, lag, time_lag) = partition_figures(&report, 0);
    assert_eq!((committed, end, lag), (20, 50, 30));
    // The first uncommitted record is #20, stamped BASE_MS + 20 s.
    let expected = BASE_MS + 20_000;
    assert!(
        (before - expected..=after - expected).contains(&time_lag),
        "time lag {time_lag}"
    );
    assert_eq!(partition_figures(&report, 1), (50, 50, 0, 0), "caught up: no lag");

    let (ok, listing, _) = ringlog(&broker, &["list"]);
    assert!(ok && listing.contains("watchers"), "{listing}");

    for (args, expected) in [
        (vec!["--to-earliest"], [0, 0]),
        (vec!["--to-latest"], [50, 50]),
        (vec!["--to-offset", "10"], [10, 10]),
        (vec!["--to-offset", "999"], [50, 50]),
    ] {
        let mut command = vec!["reset-offsets", "watchers", "--topic", "lagged"];
        command.extend(args.iter());
        let (ok, _, stderr) = ringlog(&broker, &command);
        assert!(ok, "{args:?}: {stderr}");
        let report = describe(&broker, "watchers");
        assert_eq!(partition_figures(&report, 0).0, expected[0], "{args:?}");
        assert_eq!(partition_figures(&report, 1).0, expected[1], "{args:?}");
    }
    // By time: the first record at or after BASE_MS + 25 s is #25.
    let at = (BASE_MS + 25_000).to_string();
    let (ok, _, stderr) = ringlog(
        &broker,
        &["reset-offsets", "watchers", "--topic", "lagged", "--to-datetime", &at],
    );
    assert!(ok, "{stderr}");
    assert_eq!(partition_figures(&describe(&broker, "watchers"), 1).0, 25);
    let rfc3339 = "2020-09-13T12:26:40Z"; // = BASE_MS
    let (ok, _, stderr) = ringlog(
        &broker,
        &[
            "reset-offsets",
            "watchers",
            "--topic",
            "lagged",
            "--to-datetime",
            rfc3339,
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(partition_figures(&describe(&broker, "watchers"), 0).0, 0);

    let (ok, stdout, stderr) = ringlog(&broker, &["delete", "watchers"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("deleted"));
    let (_, listing, _) = ringlog(&broker, &["list"]);
    assert!(!listing.contains("watchers"), "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_and_delete_are_refused_while_the_group_has_members() {
    let broker = RunningBroker::start(&[("group.initial.rebalance.delay.ms", "200")]);
    produce_timed(&broker, "busy", 1, 5).await;
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "active")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    member.subscribe(&["busy"]).expect("subscribe");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while member.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        assert!(std::time::Instant::now() < deadline, "never assigned");
        let _ = member.poll(Duration::from_millis(100));
    }
    let report = describe(&broker, "active");
    assert_eq!(report["state"], "Stable");
    assert_eq!(report["members"].as_array().map(Vec::len), Some(1));
    let (ok, _, stderr) = ringlog(
        &broker,
        &["reset-offsets", "active", "--topic", "busy", "--to-earliest"],
    );
    assert!(!ok && stderr.contains("active member"), "{stderr}");
    let (ok, _, stderr) = ringlog(&broker, &["delete", "active"]);
    assert!(!ok && stderr.contains("NonEmptyGroup"), "{stderr}");
}
