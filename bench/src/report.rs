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
    pub fn row(&self) -> String {
        format!(
            "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  p99.99 {:.3}  max {:.3}",
            self.p50, self.p90, self.p99, self.p999, self.p9999, self.max
        )
    }

    /// From a histogram of microseconds, in milliseconds.
    pub fn from_micros(histogram: &Histogram<u64>) -> Self {
        Self::in_ms(histogram, 1e3)
    }

    /// From a histogram of nanoseconds, in milliseconds.
    pub fn from_nanos(histogram: &Histogram<u64>) -> Self {
        Self::in_ms(histogram, 1e6)
    }

    fn in_ms(histogram: &Histogram<u64>, units_per_ms: f64) -> Self {
        let ms = |value: u64| value as f64 / units_per_ms;
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

/// What the figures depend on beyond the code. The idle-state fields matter
/// on virtual machines: whether an idle vCPU polls before it halts decides
/// what waking it costs, which moved the e2e p99 by 2-8x on the development
/// VM (docs/PERFORMANCE.md, session 11).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    pub cores: usize,
    pub kernel: String,
    /// The cpuidle driver (`haltpoll` on KVM guests that may poll), empty
    /// when the kernel has none.
    #[serde(default)]
    pub cpuidle_driver: String,
    /// The guest's halt polling window, when the haltpoll driver is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_halt_poll_ns: Option<u64>,
}

impl Machine {
    pub fn current() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).map(|text| text.trim().to_string());
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease").unwrap_or_default(),
            cpuidle_driver: read("/sys/devices/system/cpu/cpuidle/current_driver").unwrap_or_default(),
            guest_halt_poll_ns: read("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
                .ok()
                .and_then(|ns| ns.parse().ok()),
        }
    }

    /// How `other` differs, field by field (`cores 2 -> 4`); empty if alike.
    pub fn differences(&self, other: &Machine) -> Vec<String> {
        let poll = |machine: &Machine| {
            machine
                .guest_halt_poll_ns
                .map_or("none".to_string(), |ns| ns.to_string())
        };
        [
            ("cores", self.cores.to_string(), other.cores.to_string()),
            ("kernel", self.kernel.clone(), other.kernel.clone()),
            (
                "cpuidle_driver",
                self.cpuidle_driver.clone(),
                other.cpuidle_driver.clone(),
            ),
            ("guest_halt_poll_ns", poll(self), poll(other)),
        ]
        .into_iter()
        .filter(|(_, mine, theirs)| mine != theirs)
        .map(|(field, mine, theirs)| format!("{field} {mine} -> {theirs}"))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(cores: usize, guest_halt_poll_ns: Option<u64>) -> Machine {
        Machine {
            cores,
            kernel: "6.1".into(),
            cpuidle_driver: "haltpoll".into(),
            guest_halt_poll_ns,
        }
    }

    #[test]
    fn machine_differences_name_each_changed_field() {
        assert!(machine(2, Some(0)).differences(&machine(2, Some(0))).is_empty());
        assert_eq!(
            machine(2, Some(0)).differences(&machine(4, Some(200000))),
            vec!["cores 2 -> 4", "guest_halt_poll_ns 0 -> 200000"]
        );
        assert_eq!(
            machine(2, None).differences(&machine(2, Some(0))),
            vec!["guest_halt_poll_ns none -> 0"]
        );
    }

    #[test]
    fn results_written_before_the_idle_fields_still_parse() {
        let old = r#"{"cores": 2, "kernel": "6.1.0"}"#;
        let parsed: Machine = serde_json::from_str(old).expect("parse");
        assert_eq!(parsed.cpuidle_driver, "");
        assert_eq!(parsed.guest_halt_poll_ns, None);
        let baseline = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/baselines/produce-1k.json"))
            .expect("baseline");
        let report: Report = serde_json::from_str(&baseline).expect("baseline parses");
        assert_eq!(report.machine.cores, 2);
    }
}
