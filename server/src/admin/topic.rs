//! `ringlog topic …`: create, list, describe (partitions, their core, log
//! start and end, size on disk, configs), alter, delete.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use serde::Serialize;

use super::client::AdminClient;
use super::group::GroupCommandError as CommandError;

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

fn string(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn refused(what: &str, code: i16, message: Option<&StrBytes>) -> CommandError {
    let error = ResponseError::try_from_code(code).map_or_else(|| code.to_string(), |e| e.to_string());
    let detail = message.map(|m| format!(": {}", m.as_str())).unwrap_or_default();
    CommandError::Refused(format!("{what}: {error}{detail}"))
}

pub fn create(
    client: &mut AdminClient,
    topic: &str,
    partitions: i32,
    configs: &[(String, String)],
) -> Result<(), CommandError> {
    let creatable = CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(string(k))
                        .with_value(Some(string(v)))
                })
                .collect(),
        );
    let response = client.request(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![creatable])
            .with_timeout_ms(30_000),
    )?;
    match response.topics.first() {
        Some(result) if result.error_code != 0 => Err(refused(
            &format!("creating {topic}"),
            result.error_code,
            result.error_message.as_ref(),
        )),
        _ => Ok(()),
    }
}

pub fn list(client: &mut AdminClient) -> Result<Vec<(String, usize, bool)>, CommandError> {
    let response = client.request(12, &MetadataRequest::default().with_topics(None))?;
    let mut topics: Vec<(String, usize, bool)> = response
        .topics
        .iter()
        .filter_map(|t| Some((t.name.as_ref()?.to_string(), t.partitions.len(), t.is_internal)))
        .collect();
    topics.sort();
    Ok(topics)
}

#[derive(Debug, Serialize)]
pub struct PartitionReport {
    pub partition: i32,
    pub core: Option<usize>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub size_bytes: i64,
    /// Uncompressed size over stored size of a sample of the partition's
    /// first batches (up to 1 MiB); `None` when empty.
    pub compression_ratio: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ConfigReport {
    pub name: String,
    pub value: Option<String>,
    pub source: &'static str,
}

#[derive(Debug, Serialize)]
pub struct TopicReport {
    pub topic: String,
    pub topic_id: String,
    pub partitions: Vec<PartitionReport>,
    pub configs: Vec<ConfigReport>,
}

fn source_name(source: i8) -> &'static str {
    match source {
        1 => "topic",
        4 => "broker",
        5 => "default",
        _ => "other",
    }
}

fn describe_configs(
    client: &mut AdminClient,
    resource_type: i8,
    resource: &str,
) -> Result<Vec<ConfigReport>, CommandError> {
    let request = DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(string(resource))
        .with_configuration_keys(None)]);
    let mut response = client.request(4, &request)?;
    let result = response
        .results
        .pop()
        .ok_or_else(|| CommandError::Refused("empty DescribeConfigs answer".into()))?;
    if result.error_code != 0 {
        return Err(refused(
            &format!("describing configs of {resource}"),
            result.error_code,
            result.error_message.as_ref(),
        ));
    }
    Ok(result
        .configs
        .into_iter()
        .map(|c| ConfigReport {
            name: c.name.to_string(),
            value: c.value.map(|v| v.to_string()),
            source: source_name(c.config_source),
        })
        .collect())
}

pub fn describe(client: &mut AdminClient, topic: &str) -> Result<TopicReport, CommandError> {
    let metadata = client.request(
        12,
        &MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))])),
    )?;
    let topic_metadata = metadata
        .topics
        .first()
        .ok_or_else(|| CommandError::Refused(format!("no metadata for {topic}")))?;
    if topic_metadata.error_code != 0 {
        return Err(refused(&format!("topic {topic}"), topic_metadata.error_code, None));
    }
    let partition_ids: Vec<i32> = topic_metadata.partitions.iter().map(|p| p.partition_index).collect();
    let offsets_at = |client: &mut AdminClient, timestamp: i64| -> Result<BTreeMap<i32, i64>, CommandError> {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name(topic))
                .with_partitions(
                    partition_ids
                        .iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        let response = client.request(6, &request)?;
        Ok(response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.offset)))
            .collect())
    };
    let starts = offsets_at(client, -2)?;
    let ends = offsets_at(client, -1)?;
    let dirs = client.request(
        4,
        &DescribeLogDirsRequest::default().with_topics(Some(vec![DescribableLogDirTopic::default()
            .with_topic(name(topic))
            .with_partitions(partition_ids.clone())])),
    )?;
    let sizes: BTreeMap<i32, i64> = dirs
        .results
        .iter()
        .flat_map(|r| r.topics.iter())
        .flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.partition_size)))
        .collect();
    let cores: Option<usize> = describe_configs(client, 4, "")
        .ok()
        .and_then(|configs| configs.into_iter().find(|c| c.name == "ringlog.cores"))
        .and_then(|c| c.value?.parse().ok());
    let ratios = sample_compression_ratios(client, topic, &partition_ids, &starts)?;
    let partitions = partition_ids
        .iter()
        .map(|&partition| PartitionReport {
            compression_ratio: ratios.get(&partition).copied(),
            partition,
            core: cores.map(|count| crate::runtime::router::owner_core(topic, partition, count)),
            log_start_offset: starts.get(&partition).copied().unwrap_or(-1),
            log_end_offset: ends.get(&partition).copied().unwrap_or(-1),
            size_bytes: sizes.get(&partition).copied().unwrap_or(-1),
        })
        .collect();
    Ok(TopicReport {
        topic: topic.to_string(),
        topic_id: topic_metadata.topic_id.to_string(),
        partitions,
        configs: describe_configs(client, 2, topic)?,
    })
}

/// Reads up to 1 MiB from each partition's start and compares the stored size
/// of its whole batches with their records' decompressed size.
fn sample_compression_ratios(
    client: &mut AdminClient,
    topic: &str,
    partitions: &[i32],
    starts: &BTreeMap<i32, i64>,
) -> Result<BTreeMap<i32, f64>, CommandError> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    const SAMPLE_BYTES: i32 = 1 << 20;
    const DECOMPRESSED_BYTES_MAX: usize = 64 << 20;
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(i32::MAX)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(
            partitions
                .iter()
                .map(|p| {
                    FetchPartition::default()
                        .with_partition(*p)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(starts.get(p).copied().unwrap_or(0))
                        .with_partition_max_bytes(SAMPLE_BYTES)
                })
                .collect(),
        )]);
    let response = client.request(12, &request)?;
    let mut ratios = BTreeMap::new();
    for partition in response.responses.iter().flat_map(|t| t.partitions.iter()) {
        let Some(mut records) = partition.records.as_deref() else {
            continue;
        };
        let (mut stored, mut uncompressed) = (0usize, 0usize);
        while let Ok(total) = ringlog_engine::batch::batch_total_bytes(records) {
            let Some(batch) = records.get(..total) else { break };
            if let Ok(decompressed) = ringlog_engine::compression::batch_records(batch, DECOMPRESSED_BYTES_MAX) {
                stored += total;
                uncompressed += ringlog_engine::batch::BATCH_HEADER_BYTES + decompressed.len();
            }
            records = &records[total..];
        }
        if stored > 0 {
            ratios.insert(partition.partition_index, uncompressed as f64 / stored as f64);
        }
    }
    Ok(ratios)
}

/// Sets (`Some`) or removes back to the default (`None`) topic configs.
pub fn alter(client: &mut AdminClient, topic: &str, changes: &[(String, Option<String>)]) -> Result<(), CommandError> {
    const OP_SET: i8 = 0;
    const OP_DELETE: i8 = 1;
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(string(topic))
        .with_configs(
            changes
                .iter()
                .map(|(key, value)| {
                    AlterableConfig::default()
                        .with_name(string(key))
                        .with_config_operation(if value.is_some() { OP_SET } else { OP_DELETE })
                        .with_value(value.as_deref().map(string))
                })
                .collect(),
        )]);
    let response = client.request(1, &request)?;
    match response.responses.first() {
        Some(result) if result.error_code != 0 => Err(refused(
            &format!("altering {topic}"),
            result.error_code,
            result.error_message.as_ref(),
        )),
        _ => Ok(()),
    }
}

pub fn delete(client: &mut AdminClient, topic: &str) -> Result<(), CommandError> {
    let response = client.request(
        4,
        &DeleteTopicsRequest::default()
            .with_topic_names(vec![name(topic)])
            .with_timeout_ms(30_000),
    )?;
    match response.responses.first() {
        Some(result) if result.error_code != 0 => Err(refused(
            &format!("deleting {topic}"),
            result.error_code,
            result.error_message.as_ref(),
        )),
        _ => Ok(()),
    }
}
