//! `ringlog topic create|list|describe|alter|delete` against a running broker.

use std::process::Command;

use ringlog_tests::{ringlog_binary, RunningBroker};

fn ringlog(broker: &RunningBroker, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(ringlog_binary())
        .arg("topic")
        .args(args)
        .args(["--bootstrap", broker.bootstrap()])
        .output()
        .expect("running ringlog topic");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

fn config<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["configs"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("{name} described"))
}

#[test]
fn topics_are_created_described_altered_and_deleted() {
    let broker = RunningBroker::start(&[]);
    let (ok, _, stderr) = ringlog(
        &broker,
        &[
            "create",
            "events",
            "--partitions",
            "4",
            "--config",
            "retention.ms=3600000",
        ],
    );
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = ringlog(&broker, &["create", "events"]);
    assert!(!ok && stderr.contains("TopicAlreadyExists"), "{stderr}");
    let (ok, _, stderr) = ringlog(&broker, &["create", "broken", "--config", "cleanup.policy=shred"]);
    assert!(
        !ok && stderr.contains("cleanup.policy"),
        "the error names the key: {stderr}"
    );

    // Some data so sizes and offsets show.
    let mut producer = Command::new("kcat")
        .args(["-b", broker.bootstrap(), "-P", "-t", "events", "-p", "2"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kcat");
    {
        use std::io::Write;
        let mut stdin = producer.stdin.take().expect("stdin");
        stdin.write_all(b"a\nb\nc\n").expect("write");
    }
    assert!(producer.wait().expect("kcat").success());

    let (ok, listing, _) = ringlog(&broker, &["list"]);
    assert!(ok && listing.contains("events\t4"), "{listing}");
    let (ok, stdout, stderr) = ringlog(&broker, &["describe", "events", "--json"]);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let partitions = report["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 4);
    assert!(
        partitions.iter().all(|p| p["core"].as_u64().is_some_and(|c| c < 2)),
        "cores named: {report}"
    );
    assert_eq!(partitions[2]["log_end_offset"], 3);
    assert!(partitions[2]["size_bytes"].as_i64().is_some_and(|s| s > 0));
    assert_eq!(config(&report, "retention.ms")["value"], "3600000");
    assert_eq!(config(&report, "retention.ms")["source"], "topic");
    assert_eq!(config(&report, "segment.bytes")["source"], "default");

    let (ok, _, stderr) = ringlog(
        &broker,
        &[
            "alter",
            "events",
            "--config",
            "segment.ms=60000",
            "--delete-config",
            "retention.ms",
        ],
    );
    assert!(ok, "{stderr}");
    let (_, stdout, _) = ringlog(&broker, &["describe", "events", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(config(&report, "segment.ms")["value"], "60000");
    assert_eq!(config(&report, "retention.ms")["source"], "default");

    let (ok, _, stderr) = ringlog(&broker, &["delete", "events"]);
    assert!(ok, "{stderr}");
    let (_, listing, _) = ringlog(&broker, &["list"]);
    assert!(!listing.contains("events"), "{listing}");
}
