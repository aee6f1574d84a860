//! Results of one run: what a human reads at the end and what scripts and
//! `compare` read from `--json`. Field names are a stable interface.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
}

impl Latency {
    fn row(&self) -> String {
        format!(
            "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  p99.99 {:.3}  max {:.3}",
            self.p50, self.p90, self.p99, self.p999, self.p9999, self.max
        )
    }

    /// From a histogram of microseconds, in milliseconds.
    pub fn from_micros(histogram: &Histogram<u64>) -> Self {
        let ms = |value: u64| value as f64 / 1000.0;
        Self {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            p9999: ms(histogram.value_at_quantile(0.9999)),
            max: ms(histogram.max()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
}

impl Machine {
    pub fn current() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|k| k.trim().to_string())
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub workload: String,
    pub records: u64,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub records_per_s: f64,
    /// Megabytes (10^6 bytes) per second.
    pub mb_per_s: f64,
    pub latency_ms: Latency,
    /// The parameters of the run, as given.
    pub parameters: serde_json::Value,
    pub version: String,
    pub git_commit: String,
    pub machine: Machine,
    /// mixed: what the tailing consumers read meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed: Option<Box<Report>>,
    /// e2e: produce request sent to its response (the producer's share of
    /// `latency_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acks_latency_ms: Option<Latency>,
}

impl Report {
    pub fn new(
        workload: &str,
        records: u64,
        bytes: u64,
        elapsed_s: f64,
        latency: &Histogram<u64>,
        parameters: serde_json::Value,
    ) -> Self {
        let elapsed = elapsed_s.max(1e-9);
        Self {
            workload: workload.to_string(),
            records,
            bytes,
            elapsed_s,
            records_per_s: records as f64 / elapsed,
            mb_per_s: bytes as f64 / elapsed / 1e6,
            latency_ms: Latency::from_micros(latency),
            parameters,
            version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: env!("RINGLOG_GIT_COMMIT").to_string(),
            machine: Machine::current(),
            consumed: None,
            acks_latency_ms: None,
        }
    }

    pub fn table(&self) -> String {
        match &self.consumed {
            Some(consumed) => format!("{}\n{}", self.own_table(), consumed.own_table()),
            None => self.own_table(),
        }
    }

    fn own_table(&self) -> String {
        let mut table = format!(
            "{workload}: {records} records, {bytes} bytes in {elapsed:.2} s\n\
             throughput   {rps:.0} records/s   {mbps:.1} MB/s\n\
             latency ms   {latency}",
            workload = self.workload,
            records = self.records,
            bytes = self.bytes,
            elapsed = self.elapsed_s,
            rps = self.records_per_s,
            mbps = self.mb_per_s,
            latency = self.latency_ms.row(),
        );
        if let Some(acks) = &self.acks_latency_ms {
            table += &format!("\nacks ms      {}  (produce sent to response)", acks.row());
        }
        table
    }
}
