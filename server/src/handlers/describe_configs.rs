//! DescribeConfigs (key 32), v1-v4: a topic's configs with their sources
//! (topic override, broker setting, default) and synonyms, or this broker's
//! settings (read-only: broker settings are static, set at start).

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::topic_config::{self, Kind, Source, TopicConfig};

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// DescribeConfigs' config types (v3+).
fn config_type(kind: Kind) -> i8 {
    match kind {
        Kind::Long { .. } => 5,
        Kind::Ratio => 6,
        Kind::OneOf(_) => 2,
        Kind::ListOf(_) => 7,
        Kind::SegmentBytes => 3,
    }
}

fn text(value: &str) -> Option<StrBytes> {
    Some(StrBytes::from_string(value.to_string()))
}

fn topic_entry(
    config: &TopicConfig,
    topic: &crate::metadata::TopicMetadata,
    request: &RequestContext,
    with_synonyms: bool,
) -> DescribeConfigsResourceResult {
    let effective = topic_config::effective(config, &topic.configs, &request.broker().config);
    let mut entry = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(config.name))
        .with_value(text(&effective.value))
        .with_config_source(effective.source as i8);
    if with_synonyms {
        let mut synonyms = Vec::new();
        if effective.source == Source::TopicOverride {
            synonyms.push((config.name, effective.value.clone(), Source::TopicOverride));
        }
        synonyms.push((
            config.broker_key,
            effective.broker_value.clone(),
            effective.broker_source,
        ));
        entry.synonyms = synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_static_str(name))
                    .with_value(text(&value))
                    .with_source(source as i8)
            })
            .collect();
    }
    if request.version >= 3 {
        entry.config_type = config_type(config.kind);
    }
    entry
}

pub async fn handle(body: DescribeConfigsRequest, request: RequestContext) -> HandlerOutcome {
    let broker = request.broker();
    let metadata = broker.metadata();
    let mut results = Vec::with_capacity(body.resources.len());
    for resource in body.resources {
        let wanted = |name: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
        };
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        match resource.resource_type {
            RESOURCE_TOPIC => match metadata.topics.get(resource.resource_name.as_str()) {
                None => {
                    result.error_code = ResponseError::UnknownTopicOrPartition.code();
                    result.error_message = text(&format!("topic {:?} does not exist", resource.resource_name.as_str()));
                }
                Some(topic) => {
                    result.configs = topic_config::TOPIC_CONFIGS
                        .iter()
                        .filter(|c| wanted(c.name))
                        .map(|c| topic_entry(c, topic, &request, body.include_synonyms))
                        .collect();
                }
            },
            RESOURCE_BROKER
                if resource.resource_name.is_empty()
                    || resource
                        .resource_name
                        .parse::<i32>()
                        .is_ok_and(|node_id| broker.nodes.contains(node_id)) =>
            {
                let cores = broker.core_count().to_string();
                result.configs = broker
                    .config
                    .all_values()
                    .chain(std::iter::once(("ringlog.cores", cores.as_str(), true)))
                    .filter(|(key, _, _)| wanted(key))
                    .map(|(key, value, explicit)| {
                        DescribeConfigsResourceResult::default()
                            .with_name(StrBytes::from_string(key.to_string()))
                            .with_value(text(value))
                            .with_read_only(true)
                            .with_config_source(if explicit {
                                Source::BrokerSetting
                            } else {
                                Source::Default
                            } as i8)
                    })
                    .collect();
            }
            other => {
                result.error_code = ResponseError::InvalidRequest.code();
                result.error_message = text(&format!(
                    "resource type {other} / name {:?} is not described here",
                    resource.resource_name.as_str()
                ));
            }
        }
        results.push(result);
    }
    request.respond(&DescribeConfigsResponse::default().with_results(results))
}
