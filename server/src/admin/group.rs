//! `ringlog group …`: list, describe with lag, reset offsets, delete.
//!
//! Offset lag = log end offset − committed offset. Time lag = now − timestamp
//! of the first record not yet committed; zero when caught up. For compressed
//! batches the timestamp is the batch's first record's (it may be a little
//! older than the exact record, so time lag errs on the high side).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use serde::Serialize;

use super::client::{AdminClient, ClientError};

#[derive(Debug, thiserror::Error)]
pub enum GroupCommandError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Refused(String),
}

fn refused(what: &str, code: i16) -> GroupCommandError {
    let name = ResponseError::try_from_code(code).map_or_else(|| code.to_string(), |e| e.to_string());
    GroupCommandError::Refused(format!("{what}: {name}"))
}

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

#[derive(Debug, Serialize)]
pub struct GroupListing {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
}

pub fn list(client: &mut AdminClient) -> Result<Vec<GroupListing>, GroupCommandError> {
    let response = client.request(4, &ListGroupsRequest::default())?;
    if response.error_code != 0 {
        return Err(refused("listing groups", response.error_code));
    }
    let mut groups: Vec<GroupListing> = response
        .groups
        .into_iter()
        .map(|g| GroupListing {
            group: g.group_id.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
        })
        .collect();
    groups.sort_by(|a, b| a.group.cmp(&b.group));
    Ok(groups)
}

#[derive(Debug, Serialize)]
pub struct MemberReport {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    pub assignment: Vec<(String, i32)>,
}

#[derive(Debug, Serialize)]
pub struct PartitionReport {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: Option<i64>,
    pub log_end_offset: i64,
    pub offset_lag: Option<i64>,
    pub time_lag_ms: Option<i64>,
    pub member_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct GroupReport {
    pub group: String,
    pub state: String,
    pub protocol: String,
    pub members: Vec<MemberReport>,
    pub partitions: Vec<PartitionReport>,
}

/// Partitions in a consumer-protocol assignment: version i16, then an array
/// of (topic string, array of partition i32), then user data.
pub fn parse_assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    fn take<'a>(rest: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
        let head = rest.get(..len)?;
        *rest = &rest[len..];
        Some(head)
    }
    let parse = |rest: &mut &[u8]| -> Option<Vec<(String, i32)>> {
        take(rest, 2)?;
        let topics = i32::from_be_bytes(take(rest, 4)?.try_into().ok()?);
        let mut assigned = Vec::new();
        for _ in 0..topics.max(0) {
            let len = i16::from_be_bytes(take(rest, 2)?.try_into().ok()?);
            let topic = String::from_utf8(take(rest, len.max(0) as usize)?.to_vec()).ok()?;
            let partitions = i32::from_be_bytes(take(rest, 4)?.try_into().ok()?);
            for _ in 0..partitions.max(0) {
                assigned.push((topic.clone(), i32::from_be_bytes(take(rest, 4)?.try_into().ok()?)));
            }
        }
        Some(assigned)
    };
    let mut rest = bytes;
    parse(&mut rest).unwrap_or_default()
}

fn describe_group(
    client: &mut AdminClient,
    group: &str,
) -> Result<describe_groups_response::DescribedGroup, GroupCommandError> {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let mut response = client.request(5, &request)?;
    let described = response
        .groups
        .pop()
        .ok_or_else(|| GroupCommandError::Refused("empty describe".into()))?;
    if described.error_code != 0 {
        return Err(refused("describing group", described.error_code));
    }
    Ok(described)
}

fn committed_offsets(client: &mut AdminClient, group: &str) -> Result<BTreeMap<(String, i32), i64>, GroupCommandError> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(None);
    let response = client.request(7, &request)?;
    if response.error_code != 0 {
        return Err(refused("fetching offsets", response.error_code));
    }
    Ok(response
        .topics
        .into_iter()
        .flat_map(|t| {
            let topic = t.name.to_string();
            t.partitions
                .into_iter()
                .filter(|p| p.committed_offset >= 0)
                .map(move |p| ((topic.clone(), p.partition_index), p.committed_offset))
        })
        .collect())
}

/// ListOffsets for each partition at `timestamp` (-1 latest, -2 earliest).
fn list_offsets(
    client: &mut AdminClient,
    partitions: &BTreeSet<(String, i32)>,
    timestamp: i64,
) -> Result<BTreeMap<(String, i32), i64>, GroupCommandError> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            ListOffsetsTopic::default().with_name(name(topic)).with_partitions(
                partitions
                    .into_iter()
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(p)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )
        })
        .collect();
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(topics);
    let response = client.request(6, &request)?;
    let mut offsets = BTreeMap::new();
    for topic in response.topics {
        for partition in topic.partitions {
            if partition.error_code != 0 {
                return Err(refused(
                    &format!(
                        "listing offsets of {}-{}",
                        topic.name.as_str(),
                        partition.partition_index
                    ),
                    partition.error_code,
                ));
            }
            offsets.insert((topic.name.to_string(), partition.partition_index), partition.offset);
        }
    }
    Ok(offsets)
}

/// Timestamps of the first record at or after each given offset.
fn record_timestamps(
    client: &mut AdminClient,
    positions: &BTreeMap<(String, i32), i64>,
) -> Result<BTreeMap<(String, i32), i64>, GroupCommandError> {
    const PARTITION_PEEK_BYTES: i32 = 64 * 1024;
    let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
    for ((topic, partition), offset) in positions {
        by_topic.entry(topic).or_default().push((*partition, *offset));
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, partitions)| {
            FetchTopic::default().with_topic(name(topic)).with_partitions(
                partitions
                    .into_iter()
                    .map(|(partition, offset)| {
                        FetchPartition::default()
                            .with_partition(partition)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(PARTITION_PEEK_BYTES)
                    })
                    .collect(),
            )
        })
        .collect();
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(i32::MAX)
        .with_session_epoch(-1)
        .with_topics(topics);
    let response = client.request(12, &request)?;
    let mut timestamps = BTreeMap::new();
    for topic in response.responses {
        for partition in topic.partitions {
            let key = (topic.topic.to_string(), partition.partition_index);
            let (Some(records), Some(&offset)) = (partition.records, positions.get(&key)) else {
                continue;
            };
            if let Some(timestamp) = first_timestamp_at_or_after(&records, offset) {
                timestamps.insert(key, timestamp);
            }
        }
    }
    Ok(timestamps)
}

fn first_timestamp_at_or_after(mut batches: &[u8], offset: i64) -> Option<i64> {
    use ringlog_engine::batch;
    while let Ok(total) = batch::batch_total_bytes(batches) {
        let whole = batches.get(..total)?;
        let header = batch::BatchHeader::parse(whole).ok()?;
        if header.next_offset() > offset {
            return match batch::parse_records(whole) {
                Some(records) => records.iter().find(|r| r.offset >= offset).map(|r| r.timestamp_ms),
                None => Some(header.base_timestamp),
            };
        }
        batches = &batches[total..];
    }
    None
}

pub fn describe(client: &mut AdminClient, group: &str, now_ms: i64) -> Result<GroupReport, GroupCommandError> {
    let described = describe_group(client, group)?;
    let committed = committed_offsets(client, group)?;
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    let members: Vec<MemberReport> = described
        .members
        .iter()
        .map(|m| {
            let assignment = parse_assignment(&m.member_assignment);
            for tp in &assignment {
                owner.insert(tp.clone(), m.member_id.to_string());
            }
            MemberReport {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                assignment,
            }
        })
        .collect();
    let partitions: BTreeSet<(String, i32)> = committed.keys().chain(owner.keys()).cloned().collect();
    let log_ends = if partitions.is_empty() {
        BTreeMap::new()
    } else {
        list_offsets(client, &partitions, -1)?
    };
    let lagging: BTreeMap<(String, i32), i64> = committed
        .iter()
        .filter(|(tp, offset)| log_ends.get(*tp).is_some_and(|end| end > *offset))
        .map(|(tp, offset)| (tp.clone(), *offset))
        .collect();
    let timestamps = if lagging.is_empty() {
        BTreeMap::new()
    } else {
        record_timestamps(client, &lagging)?
    };
    let partitions = partitions
        .into_iter()
        .map(|tp| {
            let log_end_offset = log_ends.get(&tp).copied().unwrap_or(-1);
            let committed_offset = committed.get(&tp).copied();
            let offset_lag = committed_offset.map(|c| (log_end_offset - c).max(0));
            let time_lag_ms = offset_lag.map(|lag| match (lag, timestamps.get(&tp)) {
                (0, _) => 0,
                (_, Some(timestamp)) => (now_ms - timestamp).max(0),
                (_, None) => 0,
            });
            PartitionReport {
                member_id: owner.get(&tp).cloned(),
                topic: tp.0,
                partition: tp.1,
                committed_offset,
                log_end_offset,
                offset_lag,
                time_lag_ms,
            }
        })
        .collect();
    Ok(GroupReport {
        group: group.to_string(),
        state: described.group_state.to_string(),
        protocol: described.protocol_data.to_string(),
        members,
        partitions,
    })
}

/// Where `reset-offsets` moves a group's position.
#[derive(Debug, Clone, Copy)]
pub enum ResetTarget {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

pub fn reset_offsets(
    client: &mut AdminClient,
    group: &str,
    topic: &str,
    target: ResetTarget,
) -> Result<Vec<(i32, i64)>, GroupCommandError> {
    let described = describe_group(client, group)?;
    if !described.members.is_empty() {
        return Err(GroupCommandError::Refused(format!(
            "group {group} has {} active member(s) ({}); stop them before resetting offsets",
            described.members.len(),
            described.group_state.as_str()
        )));
    }
    let metadata = client.request(
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic)))
        ])),
    )?;
    let topic_metadata = metadata
        .topics
        .first()
        .ok_or_else(|| GroupCommandError::Refused(format!("no metadata for {topic}")))?;
    if topic_metadata.error_code != 0 {
        return Err(refused(&format!("topic {topic}"), topic_metadata.error_code));
    }
    let partitions: BTreeSet<(String, i32)> = topic_metadata
        .partitions
        .iter()
        .map(|p| (topic.to_string(), p.partition_index))
        .collect();
    let earliest = list_offsets(client, &partitions, -2)?;
    let latest = list_offsets(client, &partitions, -1)?;
    let targets: BTreeMap<(String, i32), i64> = match target {
        ResetTarget::Earliest => earliest,
        ResetTarget::Latest => latest.clone(),
        ResetTarget::Offset(offset) => partitions
            .iter()
            .map(|tp| (tp.clone(), offset.clamp(earliest[tp], latest[tp])))
            .collect(),
        ResetTarget::Timestamp(timestamp_ms) => list_offsets(client, &partitions, timestamp_ms)?
            .into_iter()
            .map(|(tp, offset)| {
                let offset = if offset < 0 { latest[&tp] } else { offset };
                (tp, offset)
            })
            .collect(),
    };
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(name(topic))
            .with_partitions(
                targets
                    .iter()
                    .map(|((_, partition), offset)| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*partition)
                            .with_committed_offset(*offset)
                            .with_committed_leader_epoch(-1)
                    })
                    .collect(),
            )]);
    let response = client.request(8, &request)?;
    for topic_response in &response.topics {
        for partition in &topic_response.partitions {
            if partition.error_code != 0 {
                return Err(refused(
                    &format!("committing {topic}-{}", partition.partition_index),
                    partition.error_code,
                ));
            }
        }
    }
    Ok(targets
        .into_iter()
        .map(|((_, partition), offset)| (partition, offset))
        .collect())
}

pub fn delete(client: &mut AdminClient, group: &str) -> Result<(), GroupCommandError> {
    let request =
        DeleteGroupsRequest::default().with_groups_names(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let response = client.request(2, &request)?;
    match response.results.first() {
        Some(result) if result.error_code != 0 => Err(refused(&format!("deleting group {group}"), result.error_code)),
        _ => Ok(()),
    }
}

/// Parses `--to-datetime`: epoch milliseconds, or RFC 3339 such as
/// `2026-11-21T14:00:00Z`, `2026-11-21T14:00:00.250+01:00`.
pub fn parse_datetime_ms(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("{text:?} is neither epoch milliseconds nor an RFC 3339 time (2026-11-21T14:00:00Z)");
    let (date, rest) = text.split_once('T').ok_or_else(bad)?;
    let mut date_parts = date.split('-').map(|p| p.parse::<i64>());
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day)), None) = (
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
    ) else {
        return Err(bad());
    };
    let (time, offset_minutes) = if let Some(time) = rest.strip_suffix('Z') {
        (time, 0)
    } else {
        let split_at = rest.rfind(['+', '-']).ok_or_else(bad)?;
        let (time, zone) = rest.split_at(split_at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = zone[1..].split_once(':').ok_or_else(bad)?;
        let hours: i64 = hours.parse().map_err(|_| bad())?;
        let minutes: i64 = minutes.parse().map_err(|_| bad())?;
        (time, sign * (hours * 60 + minutes))
    };
    let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut clock_parts = clock.split(':').map(|p| p.parse::<i64>());
    let (Some(Ok(hour)), Some(Ok(minute)), Some(Ok(second)), None) = (
        clock_parts.next(),
        clock_parts.next(),
        clock_parts.next(),
        clock_parts.next(),
    ) else {
        return Err(bad());
    };
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().map_err(|_| bad())?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse() {
        assert_eq!(parse_datetime_ms("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_datetime_ms("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(parse_datetime_ms("2023-11-14T23:13:20.5+01:00"), Ok(1_700_000_000_500));
        assert!(parse_datetime_ms("yesterday").is_err());
    }

    #[test]
    fn assignments_parse() {
        let mut bytes = vec![0u8, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 5];
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(
            parse_assignment(&bytes),
            vec![("t".to_string(), 3), ("t".to_string(), 5)]
        );
        assert!(parse_assignment(&bytes[..9]).is_empty());
    }
}
