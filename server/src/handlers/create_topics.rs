//! CreateTopics (key 19), v2-v7: topics with partition counts, configs and
//! validate-only. Errors as Kafka gives them: TOPIC_ALREADY_EXISTS,
//! INVALID_TOPIC_EXCEPTION, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR,
//! INVALID_CONFIG (naming the key), INVALID_REQUEST for a name given twice.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::runtime::messages::{NewTopic, TopicResult};

pub const VERSIONS: VersionRange = VersionRange { min: 2, max: 7 };

/// DescribeConfigs' source for a config set on the topic.
const CONFIG_SOURCE_TOPIC: i8 = 1;

pub async fn handle(body: CreateTopicsRequest, request: RequestContext) -> HandlerOutcome {
    let version = request.version;
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = body
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.to_string()))
        .map(|t| t.name.to_string())
        .collect();
    let mut new_topics = Vec::new();
    for topic in &body.topics {
        if duplicates.contains(topic.name.as_str()) {
            continue;
        }
        let configs: BTreeMap<String, String> = topic
            .configs
            .iter()
            .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
            .collect();
        let num_partitions = if topic.assignments.is_empty() {
            topic.num_partitions
        } else {
            topic.assignments.len() as i32
        };
        new_topics.push(NewTopic {
            name: topic.name.to_string(),
            num_partitions,
            replication_factor: topic.replication_factor,
            configs,
        });
    }
    let mut results = request
        .broker()
        .create_topics(new_topics, body.validate_only)
        .await
        .into_iter();
    let topics = body
        .topics
        .iter()
        .map(|topic| {
            let result: TopicResult = if duplicates.contains(topic.name.as_str()) {
                Err((
                    ResponseError::InvalidRequest,
                    format!("topic {} is named more than once", topic.name.as_str()),
                ))
            } else {
                results
                    .next()
                    .unwrap_or(Err((ResponseError::UnknownServerError, "no result".into())))
            };
            let mut response = CreatableTopicResult::default().with_name(topic.name.clone());
            match result {
                Ok(created) => {
                    if version >= 5 {
                        response.num_partitions = created.partitions.len() as i32;
                        response.replication_factor = 1;
                        response.configs = Some(
                            created
                                .configs
                                .iter()
                                .map(|(key, value)| {
                                    CreatableTopicConfigs::default()
                                        .with_name(StrBytes::from_string(key.clone()))
                                        .with_value(Some(StrBytes::from_string(value.clone())))
                                        .with_config_source(CONFIG_SOURCE_TOPIC)
                                })
                                .collect(),
                        );
                    }
                    if version >= 7 {
                        response.topic_id = created.topic_id;
                    }
                }
                Err((error, message)) => {
                    response.error_code = error.code();
                    response.error_message = Some(StrBytes::from_string(message));
                    if version >= 5 {
                        response.num_partitions = -1;
                        response.replication_factor = -1;
                    }
                }
            }
            response
        })
        .collect();
    request.respond(&CreateTopicsResponse::default().with_topics(topics))
}
