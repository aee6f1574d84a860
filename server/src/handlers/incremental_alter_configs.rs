//! IncrementalAlterConfigs (key 44), v0-v1: per key SET, DELETE (back to the
//! broker default), APPEND or SUBTRACT (list configs such as cleanup.policy).

use std::collections::BTreeMap;

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::VersionRange;
use kafka_protocol::ResponseError;

use super::alter_configs::{alter, alter_response, refuse_resource};
use super::describe_configs::RESOURCE_TOPIC;
use super::{HandlerOutcome, RequestContext};
use crate::topic_config::{self, Kind};

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// Applies one operation to a topic's configs.
fn apply(
    configs: &mut BTreeMap<String, String>,
    effective: impl Fn(&str) -> Option<String>,
    name: &str,
    operation: i8,
    value: Option<&str>,
) -> Result<(), (ResponseError, String)> {
    let invalid = |message: String| (ResponseError::InvalidConfig, message);
    let config = topic_config::find(name).ok_or_else(|| invalid(format!("unknown topic config {name:?}")))?;
    let is_list = matches!(config.kind, Kind::ListOf(_));
    match (operation, value) {
        (OP_SET, Some(value)) => {
            configs.insert(name.to_string(), value.to_string());
        }
        (OP_DELETE, _) => {
            configs.remove(name);
        }
        (OP_APPEND | OP_SUBTRACT, Some(value)) if is_list => {
            let current = effective(name).unwrap_or_default();
            let mut items: Vec<String> = current
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if operation == OP_APPEND && !items.iter().any(|i| i == item) {
                    items.push(item.to_string());
                } else if operation == OP_SUBTRACT {
                    items.retain(|i| i != item);
                }
            }
            configs.insert(name.to_string(), items.join(","));
        }
        (OP_APPEND | OP_SUBTRACT, _) => {
            return Err(invalid(format!(
                "{name} is not a list: APPEND and SUBTRACT do not apply"
            )))
        }
        _ => return Err(invalid(format!("operation {operation} on {name} needs a value"))),
    }
    Ok(())
}

pub async fn handle(body: IncrementalAlterConfigsRequest, request: RequestContext) -> HandlerOutcome {
    let broker = request.broker();
    let metadata = broker.metadata();
    let resources = body
        .resources
        .into_iter()
        .map(|resource| {
            let configs = if resource.resource_type != RESOURCE_TOPIC {
                Err(refuse_resource(resource.resource_type))
            } else {
                match metadata.topics.get(resource.resource_name.as_str()) {
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("topic {:?} does not exist", resource.resource_name.as_str()),
                    )),
                    Some(topic) => {
                        let mut configs = topic.configs.clone();
                        let effective = |name: &str| {
                            topic_config::find(name)
                                .map(|c| topic_config::effective(c, &topic.configs, &broker.config).value)
                        };
                        resource
                            .configs
                            .iter()
                            .try_for_each(|c| {
                                apply(
                                    &mut configs,
                                    effective,
                                    c.name.as_str(),
                                    c.config_operation,
                                    c.value.as_deref(),
                                )
                            })
                            .map(|()| configs)
                    }
                }
            };
            (resource.resource_type, resource.resource_name, configs)
        })
        .collect();
    let responses = alter(&request, resources, body.validate_only)
        .await
        .into_iter()
        .map(|outcome| alter_response!(AlterConfigsResourceResponse, outcome))
        .collect();
    request.respond(&IncrementalAlterConfigsResponse::default().with_responses(responses))
}
