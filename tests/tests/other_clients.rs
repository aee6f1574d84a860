//! Clients other than librdkafka-through-Rust, each against its own broker:
//! kcat, kafka-python 2.0 and 3.x, confluent-kafka and kafkajs.
//! `scripts/install-test-deps.sh` installs them; a missing one fails the test.

use std::process::Command;

use ringlog_tests::{python_script, python_venv, run_ok, workspace_root, RunningBroker};

#[test]
fn kcat_produces_lists_and_consumes() {
    let broker = RunningBroker::start(&[]);
    let input: String = (0..500).map(|i| format!("key{}:value-{i}\n", i % 9)).collect();
    let mut producer = Command::new("kcat")
        .args([
            "-b",
            broker.bootstrap(),
            "-P",
            "-t",
            "kcat-topic",
            "-K:",
            "-z",
            "snappy",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kcat installed (scripts/install-test-deps.sh)");
    {
        use std::io::Write;
        let mut stdin = producer.stdin.take().expect("stdin");
        stdin.write_all(input.as_bytes()).expect("writing to kcat");
    }
    assert!(producer.wait().expect("kcat producer").success());
    let listing = run_ok(Command::new("kcat").args(["-b", broker.bootstrap(), "-L", "-t", "kcat-topic"]));
    assert!(listing.contains("topic \"kcat-topic\" with 1 partitions"), "{listing}");
    let consumed = run_ok(Command::new("kcat").args([
        "-b",
        broker.bootstrap(),
        "-C",
        "-t",
        "kcat-topic",
        "-o",
        "beginning",
        "-e",
        "-q",
        "-f",
        "%k:%s\n",
    ]));
    assert_eq!(consumed, input);
}

/// `kcat -G`: a balanced consumer reads everything and commits; a second run
/// of the same group resumes after the commit.
#[test]
fn kcat_group_consumer_resumes_from_its_commit() {
    let broker = RunningBroker::start(&[("num.partitions", "3"), ("group.initial.rebalance.delay.ms", "200")]);
    let produce = |from: usize, to: usize| {
        let input: String = (from..to).map(|i| format!("m{i}\n")).collect();
        let mut producer = Command::new("kcat")
            .args(["-b", broker.bootstrap(), "-P", "-t", "kcat-group"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("kcat");
        use std::io::Write;
        producer
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write");
        assert!(producer.wait().expect("kcat").success());
    };
    let consume = || {
        let output = run_ok(Command::new("kcat").args([
            "-b",
            broker.bootstrap(),
            "-G",
            "kcat-readers",
            "kcat-group",
            "-e",
            "-q",
            "-X",
            "auto.offset.reset=earliest",
        ]));
        let mut lines: Vec<String> = output.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    produce(0, 300);
    assert_eq!(consume().len(), 300);
    produce(300, 320);
    let mut expected: Vec<String> = (300..320).map(|i| format!("m{i}")).collect();
    expected.sort();
    assert_eq!(consume(), expected, "only what came after the commit");
}

#[test]
fn kafka_python_2_0_produces_and_consumes() {
    let broker = RunningBroker::start(&[("num.partitions", "3")]);
    let script = python_script("kafka_python_client.py");
    let output = run_ok(Command::new(python_venv("kafka-python-2")).arg(script).args([
        broker.bootstrap(),
        "kp2",
        "3000",
        "gzip",
    ]));
    assert!(output.starts_with("ok 3000"), "{output}");
}

#[test]
fn kafka_python_3_produces_and_consumes() {
    let broker = RunningBroker::start(&[("num.partitions", "3")]);
    let script = python_script("kafka_python_client.py");
    for codec in ["none", "gzip"] {
        let topic = format!("kp3-{codec}");
        let output = run_ok(Command::new(python_venv("kafka-python-3")).arg(&script).args([
            broker.bootstrap(),
            &topic,
            "3000",
            codec,
        ]));
        assert!(output.starts_with("ok 3000"), "{output}");
    }
}

#[test]
fn confluent_kafka_produces_and_consumes() {
    let broker = RunningBroker::start(&[]);
    let script = python_script("confluent_kafka_client.py");
    let output =
        run_ok(
            Command::new(python_venv("confluent-kafka"))
                .arg(script)
                .args([broker.bootstrap(), "ck", "5000"]),
        );
    assert!(output.starts_with("ok 5000"), "{output}");
}

#[test]
fn kafka_python_group_consumers_share_and_commit() {
    let broker = RunningBroker::start(&[("num.partitions", "3"), ("group.initial.rebalance.delay.ms", "200")]);
    let script = python_script("kafka_python_group.py");
    for (venv, topic) in [("kafka-python-2", "kpg2"), ("kafka-python-3", "kpg3")] {
        let output = run_ok(
            Command::new(python_venv(venv))
                .arg(&script)
                .args([broker.bootstrap(), topic, "500"]),
        );
        assert!(output.starts_with("ok 500"), "{venv}: {output}");
    }
}

#[test]
fn kafkajs_group_consumer_reads_everything() {
    let broker = RunningBroker::start(&[("num.partitions", "2"), ("group.initial.rebalance.delay.ms", "200")]);
    let script = workspace_root().join("tests/js/kafkajs_group.js");
    let output = run_ok(
        Command::new("node")
            .arg(script)
            .args([broker.bootstrap(), "kjs-group", "300"]),
    );
    assert!(output.starts_with("ok 300"), "{output}");
}

#[test]
fn kafkajs_admin_and_producer_work() {
    let broker = RunningBroker::start(&[]);
    let script = workspace_root().join("tests/js/kafkajs_client.js");
    let output = run_ok(
        Command::new("node")
            .arg(script)
            .args([broker.bootstrap(), "kjs", "1000"]),
    );
    assert!(output.starts_with("ok 2000"), "{output}");
}

#[test]
fn confluent_kafka_admin_client_covers_every_topic_admin_api() {
    let broker = RunningBroker::start(&[]);
    let output = run_ok(
        Command::new(python_venv("confluent-kafka"))
            .arg(python_script("confluent_admin.py"))
            .arg(broker.bootstrap()),
    );
    assert!(output.starts_with("ok"), "{output}");
}

#[test]
fn kafka_python_admin_client_works() {
    for venv in ["kafka-python-2", "kafka-python-3"] {
        let broker = RunningBroker::start(&[]);
        let output = run_ok(
            Command::new(python_venv(venv))
                .arg(python_script("kafka_python_admin.py"))
                .arg(broker.bootstrap()),
        );
        assert!(output.starts_with("ok"), "{venv}: {output}");
    }
}
