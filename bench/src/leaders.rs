//! Where each partition's requests go: to its leader, as Metadata names it,
//! the way every Kafka client routes. Against a cluster that is the broker
//! holding the partition; against ringlog with core listeners it is the core
//! that owns the partition, so no request hops between the broker's cores.
//! `--bootstrap-only` sends everything to the bootstrap address instead.

use std::collections::BTreeMap;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::Connection;
use crate::Params;

/// Metadata v4: topics by name, no auto-creation (the topic exists by now).
const METADATA_VERSION: i16 = 4;

/// The leader's `host:port` for each partition of `--topic`, index =
/// partition; the bootstrap address where the broker names no live leader.
pub async fn discover(params: &Params) -> anyhow::Result<Vec<String>> {
    let fallback = vec![params.bootstrap.clone(); params.partitions.max(0) as usize];
    if params.bootstrap_only {
        return Ok(fallback);
    }
    let mut connection = Connection::connect(&params.bootstrap, 1).await?;
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(params.topic.clone()))))
    ]));
    let response = connection.call(METADATA_VERSION, &request).await?;
    let addresses: BTreeMap<i32, String> = response
        .brokers
        .iter()
        .map(|broker| (broker.node_id.0, format!("{}:{}", broker.host.as_str(), broker.port)))
        .collect();
    let mut leaders = fallback;
    for partition in response.topics.iter().flat_map(|topic| topic.partitions.iter()) {
        let slot = usize::try_from(partition.partition_index)
            .ok()
            .and_then(|index| leaders.get_mut(index));
        if let (Some(slot), Some(address)) = (slot, addresses.get(&partition.leader_id.0)) {
            slot.clone_from(address);
        }
    }
    Ok(leaders)
}

/// `partitions` grouped by leader address, each group in the given order,
/// groups in the order of their first partition.
pub fn by_leader(leaders: &[String], partitions: &[i32], fallback: &str) -> Vec<(String, Vec<i32>)> {
    let mut groups: Vec<(String, Vec<i32>)> = Vec::new();
    for &partition in partitions {
        let address = usize::try_from(partition)
            .ok()
            .and_then(|index| leaders.get(index))
            .map_or(fallback, String::as_str);
        match groups.iter_mut().find(|(leader, _)| leader == address) {
            Some((_, group)) => group.push(partition),
            None => groups.push((address.to_string(), vec![partition])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_group_by_leader_in_first_seen_order() {
        let leaders: Vec<String> = ["b:2", "a:1", "b:2", "a:1"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            by_leader(&leaders, &[0, 1, 2, 3], "boot:9"),
            vec![("b:2".to_string(), vec![0, 2]), ("a:1".to_string(), vec![1, 3])]
        );
    }

    #[test]
    fn a_partition_without_a_known_leader_goes_to_the_fallback() {
        let leaders = vec!["a:1".to_string()];
        assert_eq!(
            by_leader(&leaders, &[0, 5], "boot:9"),
            vec![("a:1".to_string(), vec![0]), ("boot:9".to_string(), vec![5])]
        );
    }
}
