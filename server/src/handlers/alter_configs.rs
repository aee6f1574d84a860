//! AlterConfigs (key 33), v0-v2: replaces a topic's configs with the given set
//! (those left out return to the broker default). IncrementalAlterConfigs is
//! the API that changes single keys. Broker settings are static: refused.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::describe_configs::RESOURCE_TOPIC;
use super::{HandlerOutcome, RequestContext};

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

/// The answer for a resource this broker cannot alter.
pub fn refuse_resource(resource_type: i8) -> (ResponseError, String) {
    (
        ResponseError::InvalidRequest,
        format!("only topic configs can be altered (resource type {resource_type}); broker settings are set at start"),
    )
}

/// One resource to alter: type, name, and its new configs or why not.
pub type AlterRequest = (i8, StrBytes, Result<BTreeMap<String, String>, (ResponseError, String)>);

/// One resource's outcome: type, name, and the refusal if refused.
pub type AlterOutcome = (i8, StrBytes, Result<(), (ResponseError, String)>);

/// Applies the topic config replacements (through the controller) and pairs
/// every resource with its outcome, in request order.
pub async fn alter(request: &RequestContext, resources: Vec<AlterRequest>, validate_only: bool) -> Vec<AlterOutcome> {
    let changes: Vec<(String, BTreeMap<String, String>)> = resources
        .iter()
        .filter_map(|(_, name, configs)| configs.as_ref().ok().map(|c| (name.to_string(), c.clone())))
        .collect();
    let mut outcomes = request
        .broker()
        .alter_topic_configs(changes, validate_only)
        .await
        .into_iter();
    resources
        .into_iter()
        .map(|(resource_type, name, configs)| {
            let outcome = match configs {
                Ok(_) => outcomes.next().unwrap_or(Ok(())),
                Err(refusal) => Err(refusal),
            };
            (resource_type, name, outcome)
        })
        .collect()
}

/// Fills a response entry's fields from an outcome (both alter APIs have
/// entries of the same shape but distinct types).
macro_rules! alter_response {
    ($type:ty, $outcome:expr) => {{
        let (resource_type, name, outcome) = $outcome;
        let mut response = <$type>::default()
            .with_resource_type(resource_type)
            .with_resource_name(name);
        if let Err((error, message)) = outcome {
            response.error_code = error.code();
            response.error_message = Some(kafka_protocol::protocol::StrBytes::from_string(message));
        }
        response
    }};
}
pub(crate) use alter_response;

pub async fn handle(body: AlterConfigsRequest, request: RequestContext) -> HandlerOutcome {
    let resources = body
        .resources
        .into_iter()
        .map(|resource| {
            let configs = if resource.resource_type == RESOURCE_TOPIC {
                Ok(resource
                    .configs
                    .iter()
                    .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                    .collect())
            } else {
                Err(refuse_resource(resource.resource_type))
            };
            (resource.resource_type, resource.resource_name, configs)
        })
        .collect();
    let responses = alter(&request, resources, body.validate_only)
        .await
        .into_iter()
        .map(|outcome| alter_response!(AlterConfigsResourceResponse, outcome))
        .collect();
    request.respond(&AlterConfigsResponse::default().with_responses(responses))
}
