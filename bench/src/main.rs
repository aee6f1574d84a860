//! ringlog-bench: a Kafka-protocol load generator (its own async client, not
//! librdkafka) for produce throughput, consume throughput and end-to-end
//! latency against any Kafka-compatible broker, with hdrhistogram latencies,
//! JSON results and a compare mode for performance-regression CI.

mod client;
mod compare;
mod e2e;
mod fetch_stream;
mod leaders;
mod report;
mod wakeup;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ringlog-bench", version, about = "Kafka-protocol load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce throughput.
    Produce(Params),
    /// Consume throughput, from the start of each partition to its end when the run began.
    Consume(Params),
    /// End-to-end latency at a fixed rate (--rate-mb-s, default 50).
    E2e(Params),
    /// Produce (as `produce`) while --consumers tail the log from its end;
    /// the JSON's `consumed` holds what they read.
    Mixed(Params),
    /// The machine's wake-up floor: a byte passed back and forth between
    /// threads on two CPUs (no broker involved), as fio and iperf3 give the
    /// disk's and loopback's limits.
    Wakeup {
        #[arg(long, default_value_t = 5.0)]
        duration_s: f64,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Compare two JSON results; exits 1 on a regression.
    Compare {
        baseline: PathBuf,
        current: PathBuf,
        #[arg(long, default_value = "10%")]
        max_regression: String,
    },
}

/// Workload parameters. Names are an interface scripts rely on.
#[derive(Args, Debug, Clone, serde::Serialize)]
pub struct Params {
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    #[arg(long, default_value = "ringlog-bench")]
    pub topic: String,
    #[arg(long, default_value_t = 8)]
    pub partitions: i32,
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: usize,
    /// 0, 1 or all.
    #[arg(long, default_value = "1")]
    pub acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    #[arg(long, default_value_t = 10.0)]
    pub duration_s: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup_s: f64,
    /// Total produce rate limit (e2e: its fixed rate).
    #[arg(long)]
    pub rate_mb_s: Option<f64>,
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    #[arg(long, default_value_t = 2)]
    pub consumers: usize,
    /// Bytes of records per produce batch (with record overhead it stays under
    /// Kafka's default max.message.bytes, 1048588).
    #[arg(long, default_value_t = 1_000_000)]
    pub batch_bytes: usize,
    /// e2e: the producer wakes this often and sends every record due in one
    /// batch (a client's linger).
    #[arg(long, default_value_t = 100)]
    pub linger_us: u64,
    /// e2e: the consumer's fetch.max.wait.ms (0: poll without waiting).
    #[arg(long, default_value_t = 100)]
    pub fetch_max_wait_ms: i32,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// none, sequential or random.
    #[arg(long, default_value = "none")]
    pub key_distribution: String,
    /// produce: this many extra connections, each producing one 100-byte
    /// record every --background-interval-ms (slow clients); not counted in
    /// the results, reported on their own line.
    #[arg(long, default_value_t = 0)]
    pub background_connections: usize,
    #[arg(long, default_value_t = 1000)]
    pub background_interval_ms: u64,
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Send every request to --bootstrap instead of each partition's leader
    /// (for a proxy that carries only that address).
    #[arg(long)]
    pub bootstrap_only: bool,
    /// Each partition's leader address (index = partition), found at start.
    #[arg(skip)]
    #[serde(skip)]
    pub leaders: Vec<String>,
}

impl Params {
    /// `partitions` grouped by the leader address their requests go to.
    pub fn routes(&self, partitions: &[i32]) -> Vec<(String, Vec<i32>)> {
        leaders::by_leader(&self.leaders, partitions, &self.bootstrap)
    }
}

fn run_compare(baseline: &PathBuf, current: &PathBuf, max_regression: &str) -> anyhow::Result<bool> {
    let read = |path: &PathBuf| -> anyhow::Result<report::Report> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))
    };
    let limit = compare::parse_fraction(max_regression).map_err(anyhow::Error::msg)?;
    let (baseline, current) = (read(baseline)?, read(current)?);
    let machine_changes = baseline.machine.differences(&current.machine);
    if !machine_changes.is_empty() {
        // Not a failure: a CI job may move hosts, but its reader should know.
        println!("machine differs: {}", machine_changes.join(", "));
    }
    let differences = compare::compare(&baseline, &current, limit);
    let mut regressed = false;
    for d in &differences {
        regressed |= d.regression;
        println!(
            "{:<18} baseline {:>12.3} current {:>12.3} {:>+8.1}%{}",
            d.metric,
            d.baseline,
            d.current,
            d.improvement * 100.0,
            if d.regression { "  REGRESSION" } else { "" }
        );
    }
    Ok(!regressed)
}

fn main() {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Compare {
            baseline,
            current,
            max_regression,
        } => run_compare(&baseline, &current, &max_regression).map(|ok| if ok { 0 } else { 1 }),
        Command::Wakeup { duration_s, json } => run_wakeup(duration_s, json.as_deref()),
        Command::Produce(params) => run("produce", params),
        Command::Consume(params) => run("consume", params),
        Command::E2e(params) => run("e2e", params),
        Command::Mixed(params) => run("mixed", params),
    };
    match outcome {
        Ok(code) => std::process::exit(code),
        Err(error) => {
            eprintln!("ringlog-bench: {error:#}");
            std::process::exit(2);
        }
    }
}

fn run_wakeup(duration_s: f64, json: Option<&std::path::Path>) -> anyhow::Result<i32> {
    anyhow::ensure!(duration_s > 0.0, "--duration-s must be positive");
    let measured = wakeup::measure(std::time::Duration::from_secs_f64(duration_s))?;
    let round_trips = measured.latency_ns.len();
    let mut report = report::Report::new(
        "wakeup",
        round_trips,
        0,
        measured.elapsed.as_secs_f64(),
        &workload::new_histogram(),
        serde_json::json!({ "duration_s": duration_s, "cpus": measured.cpus }),
    );
    report.latency_ms = report::Latency::from_nanos(&measured.latency_ns);
    let between = measured
        .cpus
        .map_or("on one CPU".to_string(), |(a, b)| format!("between CPUs {a} and {b}"));
    println!(
        "wakeup: {round_trips} round trips {between} in {:.2} s\nround trip ms {}",
        report.elapsed_s,
        report.latency_ms.row()
    );
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(0)
}

fn run(workload: &'static str, params: Params) -> anyhow::Result<i32> {
    workload::acks(&params.acks)?;
    anyhow::ensure!(params.partitions > 0, "--partitions must be positive");
    anyhow::ensure!(
        params.producers > 0 && params.consumers > 0,
        "--producers and --consumers must be positive"
    );
    let mut params = params;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    params.leaders = runtime.block_on(async {
        if workload != "consume" {
            workload::ensure_topic(&params).await?;
        }
        leaders::discover(&params).await
    })?;
    let params = Arc::new(params);
    let (totals, consumed) = runtime.block_on(async {
        anyhow::Ok(match workload {
            "produce" => (workload::produce(params.clone()).await?, None),
            "consume" => (workload::consume(params.clone()).await?, None),
            "mixed" => {
                let (produced, consumed) = workload::mixed(params.clone()).await?;
                (produced, Some(consumed))
            }
            _ => (e2e::e2e(params.clone()).await?, None),
        })
    })?;
    let parameters = serde_json::to_value(&*params)?;
    let mut report = report::Report::new(
        workload,
        totals.records,
        totals.bytes,
        totals.elapsed_s,
        &totals.latency_us,
        parameters.clone(),
    );
    report.acks_latency_ms = totals.acks_latency_us.as_ref().map(report::Latency::from_micros);
    let mut errors = totals.errors;
    if let Some(consumed) = consumed {
        errors += consumed.errors;
        report.consumed = Some(Box::new(report::Report::new(
            "mixed-consume",
            consumed.records,
            consumed.bytes,
            consumed.elapsed_s,
            &consumed.latency_us,
            parameters,
        )));
    }
    println!("{}", report.table());
    if errors > 0 {
        eprintln!("ringlog-bench: {errors} requests failed");
    }
    if let Some(path) = &params.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(if errors > 0 { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_interface_parses() {
        let cli = Cli::try_parse_from([
            "ringlog-bench",
            "produce",
            "--bootstrap",
            "127.0.0.1:9",
            "--topic",
            "t",
            "--partitions",
            "8",
            "--record-bytes",
            "1024",
            "--acks",
            "all",
            "--compression",
            "zstd",
            "--duration-s",
            "30",
            "--rate-mb-s",
            "50",
            "--json",
            "out.json",
        ])
        .expect("parses");
        let Command::Produce(params) = cli.command else {
            panic!("produce")
        };
        assert_eq!(params.partitions, 8);
        assert_eq!(params.rate_mb_s, Some(50.0));
        assert_eq!(workload::acks(&params.acks).expect("acks"), -1);
        assert!(
            Cli::try_parse_from(["ringlog-bench", "compare", "a.json", "b.json", "--max-regression", "5%"]).is_ok()
        );
        assert!(Cli::try_parse_from(["ringlog-bench", "produce", "--partitions", "x"]).is_err());
        let wakeup = Cli::try_parse_from(["ringlog-bench", "wakeup", "--duration-s", "2", "--json", "w.json"]);
        assert!(matches!(wakeup.map(|cli| cli.command), Ok(Command::Wakeup { duration_s, .. }) if duration_s == 2.0));
    }

    #[test]
    fn histograms_report_in_milliseconds() {
        let mut histogram = workload::new_histogram();
        for micros in 1..=1000 {
            histogram.record(micros).expect("record");
        }
        let report = report::Report::new("produce", 10, 10_000_000, 2.0, &histogram, serde_json::json!({}));
        assert!((report.mb_per_s - 5.0).abs() < 1e-9);
        assert!((report.latency_ms.p50 - 0.5).abs() < 0.01);
        assert!((report.latency_ms.max - 1.0).abs() < 0.01);
        let table = report.table();
        assert!(table.contains("MB/s") && table.contains("p99.9"));
    }

    #[test]
    fn a_mixed_report_carries_the_consumed_side_and_old_json_still_reads() {
        let histogram = workload::new_histogram();
        let mut report = report::Report::new("mixed", 10, 10_000_000, 2.0, &histogram, serde_json::json!({}));
        report.consumed = Some(Box::new(report::Report::new(
            "mixed-consume",
            8,
            8_000_000,
            2.0,
            &histogram,
            serde_json::json!({}),
        )));
        let json = serde_json::to_string(&report).expect("json");
        let back: report::Report = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, report);
        assert_eq!(back.consumed.as_ref().map(|c| c.mb_per_s), Some(4.0));
        assert!(report.table().contains("mixed-consume: 8 records"));
        let without: report::Report =
            serde_json::from_str(&serde_json::to_string(&report::Report::default()).expect("json")).expect("parses");
        assert!(without.consumed.is_none() && !serde_json::to_string(&without).expect("json").contains("consumed"));
    }

    #[test]
    fn compare_exits_non_zero_on_a_regression() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, mb_per_s: f64| {
            let report = report::Report {
                workload: "produce".into(),
                mb_per_s,
                ..report::Report::default()
            };
            let path = dir.path().join(name);
            std::fs::write(&path, serde_json::to_string(&report).expect("json")).expect("write");
            path
        };
        let baseline = write("base.json", 1000.0);
        assert!(run_compare(&baseline, &write("same.json", 990.0), "10%").expect("compares"));
        assert!(!run_compare(&baseline, &write("slow.json", 800.0), "10%").expect("compares"));
    }
}
