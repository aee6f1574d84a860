//! DescribeLogDirs (key 35), v1-v4: the data dir, each partition's size on
//! disk, and (v4) the filesystem's total and usable bytes. Asked through a
//! core's own listener (that core's node), only the partitions that node
//! leads, so tools that ask every broker and add up count each once.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::{StrBytes, VersionRange};

use super::{HandlerOutcome, RequestContext};
use crate::runtime::messages::{ShardRequest, TopicPartition};

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };

pub async fn handle(body: DescribeLogDirsRequest, request: RequestContext) -> HandlerOutcome {
    let broker = request.broker();
    let sizes = broker
        .ask_every_core(|reply| ShardRequest::PartitionSizes { reply })
        .await;
    let node_core = request.connection.node_core;
    let wanted = |tp: &TopicPartition| {
        node_core.is_none_or(|core| broker.owner_core(tp) == core)
            && body.topics.as_ref().is_none_or(|topics| {
                topics
                    .iter()
                    .any(|t| t.topic.as_str() == &*tp.topic && t.partitions.contains(&tp.partition))
            })
    };
    let mut by_topic: BTreeMap<String, Vec<(i32, u64)>> = BTreeMap::new();
    for (tp, size) in sizes.into_iter().flatten() {
        if wanted(&tp) {
            by_topic
                .entry(tp.topic.to_string())
                .or_default()
                .push((tp.partition, size));
        }
    }
    let topics = by_topic
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            DescribeLogDirsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(partition, size)| {
                            DescribeLogDirsPartition::default()
                                .with_partition_index(partition)
                                .with_partition_size(size as i64)
                        })
                        .collect(),
                )
        })
        .collect();
    let data_dir = std::fs::canonicalize(&broker.data_dir).unwrap_or_else(|_| broker.data_dir.clone());
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(data_dir.display().to_string()))
        .with_topics(topics);
    if request.version >= 4 {
        let space = ringlog_engine::io::filesystem_space(&data_dir);
        let bytes = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        result.total_bytes = space.map_or(-1, |s| bytes(s.total_bytes));
        result.usable_bytes = space.map_or(-1, |s| bytes(s.available_bytes));
    }
    request.respond(&DescribeLogDirsResponse::default().with_results(vec![result]))
}
