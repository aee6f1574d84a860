//! `ringlog status`: a running broker at a glance, from its `/status` endpoint.

use crate::metrics::http::{fetch_status, Status};

pub fn run(metrics_address: &str, json: bool) -> anyhow::Result<()> {
    let status = fetch_status(metrics_address)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}

fn render(status: &Status) -> String {
    let minute = &status.last_minute;
    let partitions: Vec<String> = status
        .partitions_per_core
        .iter()
        .enumerate()
        .map(|(core, count)| format!("core {core}: {count}"))
        .collect();
    let nodes: Vec<String> = status
        .nodes
        .iter()
        .map(|node| format!("{} at {}:{}", node.node_id, node.host, node.port))
        .collect();
    format!(
        "version        {}\n\
         uptime         {}\n\
         cores          {}\n\
         partitions     {} ({})\n\
         connections    {}\n\
         nodes          {}\n\
         last minute    in {:.2} MB/s ({:.0} records/s), out {:.2} MB/s ({:.0} records/s)\n",
        status.version,
        human_duration(status.uptime_s),
        status.cores,
        status.partitions_per_core.iter().sum::<usize>(),
        partitions.join(", "),
        status.connections,
        nodes.join(", "),
        minute.bytes_in_per_s / 1e6,
        minute.records_in_per_s,
        minute.bytes_out_per_s / 1e6,
        minute.records_out_per_s,
    )
}

fn human_duration(seconds: f64) -> String {
    let total = seconds as u64;
    let (days, hours, minutes, secs) = (total / 86_400, total / 3_600 % 24, total / 60 % 60, total % 60);
    if days > 0 {
        format!("{days}d {hours}h {minutes}m")
    } else if hours > 0 {
        format!("{hours}h {minutes}m {secs}s")
    } else {
        format!("{minutes}m {secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::http::Throughput;
    use crate::nodes::NodeAddress;

    #[test]
    fn renders_every_field() {
        let text = render(&Status {
            version: "0.1.0".into(),
            uptime_s: 3_725.0,
            cores: 2,
            partitions_per_core: vec![3, 5],
            connections: 4,
            last_minute: Throughput {
                bytes_in_per_s: 2_500_000.0,
                records_in_per_s: 2_441.0,
                bytes_out_per_s: 1_250_000.0,
                records_out_per_s: 1_220.0,
            },
            nodes: vec![
                NodeAddress {
                    node_id: 0,
                    host: "127.0.0.1".into(),
                    port: 9101,
                },
                NodeAddress {
                    node_id: 1,
                    host: "127.0.0.1".into(),
                    port: 9102,
                },
            ],
        });
        assert!(text.contains("uptime         1h 2m 5s"), "{text}");
        assert!(text.contains("partitions     8 (core 0: 3, core 1: 5)"));
        assert!(
            text.contains("nodes          0 at 127.0.0.1:9101, 1 at 127.0.0.1:9102"),
            "{text}"
        );
        assert!(text.contains("in 2.50 MB/s (2441 records/s), out 1.25 MB/s (1220 records/s)"));
    }
}
