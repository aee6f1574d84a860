//! ringlog-bench against the real broker: every workload runs, writes the
//! documented JSON, and the consumers read back exactly what was produced.
//! And against a broker that is not ringlog (librdkafka's mock), which has
//! no CreateTopics. No timing is asserted; speed is measured by
//! scripts/bench.sh.

use std::path::Path;
use std::process::Command;

use rdkafka::mocking::MockCluster;
use ringlog_tests::{bench_binary, RunningBroker};

/// Runs `workload` on the test topic; returns its JSON report.
fn run(broker: &RunningBroker, dir: &Path, workload: &str, args: &[&str]) -> serde_json::Value {
    run_against(broker.bootstrap(), dir, workload, args)
}

fn run_against(bootstrap: &str, dir: &Path, workload: &str, args: &[&str]) -> serde_json::Value {
    let json = dir.join(format!("{workload}.json"));
    let output = Command::new(bench_binary())
        .arg(workload)
        .args(["--bootstrap", bootstrap, "--warmup-s", "0"])
        .args(["--topic", "bench-smoke", "--partitions", "4", "--record-bytes", "100"])
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running ringlog-bench");
    assert!(
        output.status.success(),
        "{workload} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json parses")
}

fn records(report: &serde_json::Value) -> u64 {
    report["records"]
        .as_u64()
        .unwrap_or_else(|| panic!("records missing in {report}"))
}

#[test]
fn every_workload_runs_and_consumers_read_what_producers_wrote() {
    let broker = RunningBroker::start(&[]);
    let dir = tempfile::tempdir().expect("tempdir");

    // Small batches: many requests in a second, across all partitions.
    let produced = run(
        &broker,
        dir.path(),
        "produce",
        &["--duration-s", "1", "--batch-bytes", "20000"],
    );
    assert!(records(&produced) > 0);
    for field in [
        "workload",
        "bytes",
        "elapsed_s",
        "records_per_s",
        "mb_per_s",
        "git_commit",
    ] {
        assert!(!produced[field].is_null(), "{field} missing in {produced}");
    }
    for field in ["p50", "p99", "p999", "max"] {
        assert!(produced["latency_ms"][field].as_f64().is_some(), "latency_ms.{field}");
    }

    // From every partition's start to its end: exactly what was acknowledged
    // (with no warm-up every acknowledged record was counted), read through
    // the copy-free fetch reader.
    let consumed = run(&broker, dir.path(), "consume", &["--duration-s", "60"]);
    assert_eq!(records(&consumed), records(&produced));
    assert_eq!(consumed["bytes"], produced["bytes"], "the same batches, byte for byte");

    let e2e = run(&broker, dir.path(), "e2e", &["--duration-s", "1", "--rate-mb-s", "1"]);
    assert!(records(&e2e) > 0);
    assert!(e2e["latency_ms"]["p50"].as_f64().is_some_and(|p50| p50 > 0.0));

    // Tailing consumers see what is produced while they run (they stop with
    // the producers, so the last requests in flight may be missed).
    let mixed = run(
        &broker,
        dir.path(),
        "mixed",
        &["--duration-s", "1", "--batch-bytes", "20000"],
    );
    let tailed = records(&mixed["consumed"]);
    assert!(tailed > 0 && tailed <= records(&mixed), "{mixed}");
}

/// The tool is for any Kafka-compatible broker: librdkafka's mock broker has
/// no CreateTopics (an unknown API closes the connection), so the tool asks
/// ApiVersions first and uses the topic as it is.
#[test]
fn workloads_run_against_a_broker_without_create_topics() {
    let mock = MockCluster::new(1).expect("mock broker");
    mock.create_topic("bench-smoke", 4, 1).expect("mock topic");
    let bootstrap = mock.bootstrap_servers();
    let dir = tempfile::tempdir().expect("tempdir");
    // The mock keeps the last 5 MB of each partition: stay well under that.
    let produced = run_against(
        &bootstrap,
        dir.path(),
        "produce",
        &["--duration-s", "1", "--batch-bytes", "20000", "--rate-mb-s", "2"],
    );
    assert!(records(&produced) > 0);
    let consumed = run_against(&bootstrap, dir.path(), "consume", &["--duration-s", "60"]);
    assert_eq!(records(&consumed), records(&produced));
    let e2e = run_against(
        &bootstrap,
        dir.path(),
        "e2e",
        &["--duration-s", "1", "--rate-mb-s", "1", "--fetch-max-wait-ms", "0"],
    );
    assert!(records(&e2e) > 0);
}
