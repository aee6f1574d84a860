//! Admin commands of the `ringlog` binary that talk to a running broker over
//! the Kafka protocol (so they also work against other Kafka-compatible
//! brokers), and `status`, which reads ringlog's own metrics endpoint.

pub mod client;
pub mod group;
pub mod status;
pub mod topic;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Every group with its state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Members, assignments, committed offsets, log end, offset lag and time lag per partition.
    Describe {
        group: String,
        #[arg(long)]
        json: bool,
    },
    /// Move a group's committed offsets for one topic (refused while the group has members).
    ResetOffsets(ResetArgs),
    /// Delete an empty group and its committed offsets.
    Delete { group: String },
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime"])))]
pub struct ResetArgs {
    group: String,
    #[arg(long)]
    topic: String,
    #[arg(long)]
    to_earliest: bool,
    #[arg(long)]
    to_latest: bool,
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// Epoch milliseconds or RFC 3339 (2026-11-21T14:00:00Z): the first offset at or after it.
    #[arg(long, value_name = "TIME")]
    to_datetime: Option<String>,
}

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        topic: String,
        #[arg(long, default_value_t = -1)]
        partitions: i32,
        /// A topic config, KEY=VALUE; repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// Every topic with its partition count.
    List,
    /// Partitions (core, log start and end, size on disk) and configs with their sources.
    Describe {
        topic: String,
        #[arg(long)]
        json: bool,
    },
    /// Set topic configs (--config KEY=VALUE) or return them to the default (--delete-config KEY).
    Alter {
        topic: String,
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
    },
    /// Delete a topic and its data.
    Delete { topic: String },
}

pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}

/// Runs one `ringlog topic …` command against the broker at `bootstrap`.
pub fn run_topic_command(bootstrap: &str, command: TopicCommand) -> anyhow::Result<()> {
    let mut client = client::AdminClient::connect(bootstrap)?;
    match command {
        TopicCommand::Create {
            topic: name,
            partitions,
            configs,
        } => {
            topic::create(&mut client, &name, partitions, &configs)?;
            println!("created topic {name}");
        }
        TopicCommand::List => {
            for (name, partitions, internal) in topic::list(&mut client)? {
                println!("{name}\t{partitions}{}", if internal { "\tinternal" } else { "" });
            }
        }
        TopicCommand::Describe { topic: name, json } => {
            let report = topic::describe(&mut client, &name)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "topic {}  id {}  partitions {}",
                    report.topic,
                    report.topic_id,
                    report.partitions.len()
                );
                println!(
                    "{:>9} {:>5} {:>14} {:>14} {:>14}",
                    "PARTITION", "CORE", "LOG-START", "LOG-END", "SIZE-BYTES"
                );
                for p in &report.partitions {
                    let core = p.core.map_or_else(|| "-".to_string(), |c| c.to_string());
                    println!(
                        "{:>9} {:>5} {:>14} {:>14} {:>14}",
                        p.partition, core, p.log_start_offset, p.log_end_offset, p.size_bytes
                    );
                }
                println!("CONFIGS");
                for c in &report.configs {
                    println!("  {} = {} ({})", c.name, c.value.as_deref().unwrap_or("null"), c.source);
                }
            }
        }
        TopicCommand::Alter {
            topic: name,
            configs,
            delete_configs,
        } => {
            let mut changes: Vec<(String, Option<String>)> = configs.into_iter().map(|(k, v)| (k, Some(v))).collect();
            changes.extend(delete_configs.into_iter().map(|k| (k, None)));
            topic::alter(&mut client, &name, &changes)?;
            println!("altered topic {name}");
        }
        TopicCommand::Delete { topic: name } => {
            topic::delete(&mut client, &name)?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}

/// Runs one `ringlog group …` command against the broker at `bootstrap`.
pub fn run_group_command(bootstrap: &str, command: GroupCommand) -> anyhow::Result<()> {
    let mut client = client::AdminClient::connect(bootstrap)?;
    match command {
        GroupCommand::List { json } => {
            let groups = group::list(&mut client)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&groups)?);
            } else {
                println!("{:<40} {:<20} PROTOCOL-TYPE", "GROUP", "STATE");
                for g in groups {
                    println!("{:<40} {:<20} {}", g.group, g.state, g.protocol_type);
                }
            }
        }
        GroupCommand::Describe { group: group_id, json } => {
            let report = group::describe(&mut client, &group_id, crate::runtime::shard::now_ms())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_group_report(&report);
            }
        }
        GroupCommand::ResetOffsets(args) => {
            let target = match (args.to_earliest, args.to_latest, args.to_offset, &args.to_datetime) {
                (true, ..) => group::ResetTarget::Earliest,
                (_, true, ..) => group::ResetTarget::Latest,
                (_, _, Some(offset), _) => group::ResetTarget::Offset(offset),
                (_, _, _, Some(time)) => {
                    group::ResetTarget::Timestamp(group::parse_datetime_ms(time).map_err(anyhow::Error::msg)?)
                }
                _ => anyhow::bail!("one of --to-earliest, --to-latest, --to-offset, --to-datetime is needed"),
            };
            for (partition, offset) in group::reset_offsets(&mut client, &args.group, &args.topic, target)? {
                println!("{}\t{partition}\t{offset}", args.topic);
            }
        }
        GroupCommand::Delete { group: group_id } => {
            group::delete(&mut client, &group_id)?;
            println!("deleted group {group_id}");
        }
    }
    Ok(())
}

fn print_group_report(report: &group::GroupReport) {
    println!(
        "group {}  state {}  protocol {}  members {}",
        report.group,
        report.state,
        if report.protocol.is_empty() {
            "-"
        } else {
            &report.protocol
        },
        report.members.len()
    );
    let member_of = |id: &Option<String>| report.members.iter().find(|m| Some(&m.member_id) == id.as_ref());
    println!(
        "{:<30} {:>9} {:>12} {:>12} {:>10} {:>10}  {:<24} HOST",
        "TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "TIME-LAG", "CLIENT-ID"
    );
    let dash = || "-".to_string();
    for p in &report.partitions {
        let member = member_of(&p.member_id);
        println!(
            "{:<30} {:>9} {:>12} {:>12} {:>10} {:>10}  {:<24} {}",
            p.topic,
            p.partition,
            p.committed_offset.map_or_else(dash, |o| o.to_string()),
            p.log_end_offset,
            p.offset_lag.map_or_else(dash, |o| o.to_string()),
            p.time_lag_ms.map_or_else(dash, human_duration),
            member.map_or_else(dash, |m| m.client_id.clone()),
            member.map_or_else(dash, |m| m.host.clone()),
        );
    }
}

fn human_duration(ms: i64) -> String {
    match ms {
        ms if ms < 1_000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
        ms => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}
