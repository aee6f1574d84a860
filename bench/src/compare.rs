//! `ringlog-bench compare BASELINE CURRENT --max-regression 10%`: throughput
//! may not fall, nor tail latency rise, by more than the allowed share.

use crate::report::Report;

#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub metric: &'static str,
    pub baseline: f64,
    pub current: f64,
    /// Relative change, positive = better.
    pub improvement: f64,
    pub regression: bool,
}

/// Parses `10%`, `10` or `0.1` into 0.10.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let (number, percent) = match trimmed.strip_suffix('%') {
        Some(number) => (number, true),
        None => (trimmed, false),
    };
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a percentage"))?;
    let fraction = if percent || value > 1.0 { value / 100.0 } else { value };
    if !(0.0..=10.0).contains(&fraction) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(fraction)
}

/// Compares the metrics both reports have; throughput higher is better,
/// latency lower is better. Zero baselines are skipped.
pub fn compare(baseline: &Report, current: &Report, max_regression: f64) -> Vec<Difference> {
    const HIGHER_IS_BETTER: f64 = 1.0;
    const LOWER_IS_BETTER: f64 = -1.0;
    let metrics = [
        ("mb_per_s", HIGHER_IS_BETTER, baseline.mb_per_s, current.mb_per_s),
        (
            "records_per_s",
            HIGHER_IS_BETTER,
            baseline.records_per_s,
            current.records_per_s,
        ),
        (
            "latency_ms.p50",
            LOWER_IS_BETTER,
            baseline.latency_ms.p50,
            current.latency_ms.p50,
        ),
        (
            "latency_ms.p99",
            LOWER_IS_BETTER,
            baseline.latency_ms.p99,
            current.latency_ms.p99,
        ),
        (
            "latency_ms.p999",
            LOWER_IS_BETTER,
            baseline.latency_ms.p999,
            current.latency_ms.p999,
        ),
    ];
    // mixed: the tailing consumers' throughput too.
    let consumed = baseline.consumed.as_deref().zip(current.consumed.as_deref());
    let consumed_metrics = consumed.into_iter().flat_map(|(base, now)| {
        [
            ("consumed.mb_per_s", HIGHER_IS_BETTER, base.mb_per_s, now.mb_per_s),
            (
                "consumed.records_per_s",
                HIGHER_IS_BETTER,
                base.records_per_s,
                now.records_per_s,
            ),
        ]
    });
    metrics
        .into_iter()
        .chain(consumed_metrics)
        .filter(|(_, _, base, _)| *base > 0.0)
        .map(|(metric, direction, base, now)| {
            let improvement = direction * (now - base) / base;
            Difference {
                metric,
                baseline: base,
                current: now,
                improvement,
                regression: improvement < -max_regression,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Latency;

    fn report(mb_per_s: f64, p99: f64) -> Report {
        Report {
            workload: "produce".into(),
            mb_per_s,
            records_per_s: mb_per_s * 1000.0,
            latency_ms: Latency {
                p50: p99 / 4.0,
                p99,
                p999: p99 * 2.0,
                ..Latency::default()
            },
            ..Report::default()
        }
    }

    #[test]
    fn fractions_parse() {
        assert_eq!(parse_fraction("10%"), Ok(0.10));
        assert_eq!(parse_fraction("10"), Ok(0.10));
        assert_eq!(parse_fraction("0.05"), Ok(0.05));
        assert!(parse_fraction("ten").is_err());
    }

    #[test]
    fn a_throughput_drop_beyond_the_limit_is_a_regression() {
        let differences = compare(&report(1000.0, 2.0), &report(850.0, 2.0), 0.10);
        let mb = differences.iter().find(|d| d.metric == "mb_per_s").expect("compared");
        assert!(mb.regression);
        assert!((mb.improvement + 0.15).abs() < 1e-9);
        let within = compare(&report(1000.0, 2.0), &report(950.0, 2.0), 0.10);
        assert!(within.iter().all(|d| !d.regression));
    }

    #[test]
    fn a_latency_rise_beyond_the_limit_is_a_regression() {
        let differences = compare(&report(1000.0, 2.0), &report(1000.0, 2.5), 0.10);
        assert!(differences.iter().any(|d| d.metric == "latency_ms.p99" && d.regression));
        let faster = compare(&report(1000.0, 2.0), &report(1200.0, 1.0), 0.10);
        assert!(faster.iter().all(|d| !d.regression && d.improvement > 0.0));
    }

    #[test]
    fn a_mixed_run_compares_its_consumers_too() {
        let mixed = |consumed_mb_per_s: f64| Report {
            consumed: Some(Box::new(report(consumed_mb_per_s, 2.0))),
            ..report(1000.0, 2.0)
        };
        let differences = compare(&mixed(800.0), &mixed(600.0), 0.10);
        assert!(differences
            .iter()
            .any(|d| d.metric == "consumed.mb_per_s" && d.regression));
        assert!(differences
            .iter()
            .all(|d| d.metric.starts_with("consumed.") || !d.regression));
        // Only one side has consumers: nothing to compare there.
        let one_sided = compare(&report(1000.0, 2.0), &mixed(600.0), 0.10);
        assert!(one_sided.iter().all(|d| !d.metric.starts_with("consumed.")));
    }

    #[test]
    fn reports_round_trip_through_json() {
        let original = report(123.0, 4.0);
        let json = serde_json::to_string(&original).expect("serialise");
        let back: Report = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, original);
        let value: serde_json::Value = serde_json::from_str(&json).expect("value");
        for field in ["workload", "records", "bytes", "elapsed_s", "records_per_s", "mb_per_s"] {
            assert!(value.get(field).is_some(), "{field} in the JSON");
        }
        for field in ["p50", "p99", "p999", "max"] {
            assert!(value["latency_ms"].get(field).is_some(), "latency_ms.{field}");
        }
        assert!(value.get("acks_latency_ms").is_none(), "only e2e runs have it");
    }

    #[test]
    fn an_e2e_report_carries_its_acknowledgement_latency() {
        let e2e = Report {
            workload: "e2e".into(),
            acks_latency_ms: Some(Latency {
                p50: 0.25,
                ..Latency::default()
            }),
            ..report(50.0, 2.0)
        };
        let json = serde_json::to_string(&e2e).expect("serialise");
        let value: serde_json::Value = serde_json::from_str(&json).expect("value");
        assert_eq!(value["acks_latency_ms"]["p50"], 0.25);
        assert_eq!(serde_json::from_str::<Report>(&json).expect("parse"), e2e);
        let table = e2e.table();
        assert!(table.contains("\nacks ms      p50 0.250 "), "{table}");
        assert!(!report(50.0, 2.0).table().contains("acks ms"));
    }
}
