//! Metadata (key 3), v0-v12: brokers, cluster id, topics with their ids,
//! partitions, leaders and leader epochs. Unknown topics are auto-created
//! when the request allows it and `auto.create.topics.enable` is on.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::broker::Broker;
use crate::metadata::{validate_topic_name, TopicMetadata};

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 12 };

/// Topics whose names start with `__` are Kafka's internal ones.
fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}

/// Each partition is led by the node of the core that owns it (see
/// `crate::nodes`), its only replica.
fn topic_response(broker: &Broker, topic: &TopicMetadata, version: i16) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|state| {
            let leader = BrokerId(broker.partition_leader(&topic.name, state.partition).node_id);
            let mut partition = MetadataResponsePartition::default()
                .with_partition_index(state.partition)
                .with_leader_id(leader)
                .with_replica_nodes(vec![leader])
                .with_isr_nodes(vec![leader]);
            if version >= 7 {
                partition.leader_epoch = state.leader_epoch;
            }
            partition
        })
        .collect();
    let mut response = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_partitions(partitions);
    if version >= 1 {
        response.is_internal = is_internal(&topic.name);
    }
    if version >= 10 {
        response.topic_id = topic.topic_id;
    }
    response
}

fn error_topic(
    name: Option<TopicName>,
    topic_id: uuid::Uuid,
    error: ResponseError,
    version: i16,
) -> MetadataResponseTopic {
    let mut response = MetadataResponseTopic::default()
        .with_name(name)
        .with_error_code(error.code());
    if version >= 10 {
        response.topic_id = topic_id;
    }
    response
}

pub async fn handle(body: MetadataRequest, request: RequestContext) -> HandlerOutcome {
    let version = request.version;
    let broker = request.broker();
    // v0: an empty list means all topics; v1+: null means all.
    let requested = match body.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(topics),
        _ => None,
    };
    let allow_create = version < 4 || body.allow_auto_topic_creation;
    let topics = match requested {
        None => broker
            .metadata()
            .topics
            .values()
            .map(|t| topic_response(broker, t, version))
            .collect(),
        Some(wanted) => {
            let mut topics = Vec::with_capacity(wanted.len());
            for wanted_topic in wanted {
                topics.push(match wanted_topic.name {
                    Some(name) => match validate_topic_name(name.as_str()) {
                        Err(_) => error_topic(
                            Some(name),
                            uuid::Uuid::nil(),
                            ResponseError::InvalidTopicException,
                            version,
                        ),
                        Ok(()) => match broker.topic_or_auto_create(name.as_str(), allow_create).await {
                            Some(topic) => topic_response(broker, &topic, version),
                            None => error_topic(
                                Some(name),
                                uuid::Uuid::nil(),
                                ResponseError::UnknownTopicOrPartition,
                                version,
                            ),
                        },
                    },
                    None => match broker.metadata().topic_by_id(wanted_topic.topic_id) {
                        Some(topic) => topic_response(broker, topic, version),
                        None => error_topic(None, wanted_topic.topic_id, ResponseError::UnknownTopicId, version),
                    },
                });
            }
            topics
        }
    };
    let metadata = broker.metadata();
    let brokers = broker
        .nodes
        .all()
        .iter()
        .map(|node| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(node.node_id))
                .with_host(StrBytes::from_string(node.host.clone()))
                .with_port(node.port)
        })
        .collect();
    let mut response = MetadataResponse::default().with_brokers(brokers).with_topics(topics);
    if version >= 1 {
        response.controller_id = BrokerId(broker.nodes.controller().node_id);
    }
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(metadata.cluster_id.clone()));
    }
    request.respond(&response)
}
