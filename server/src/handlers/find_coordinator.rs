//! FindCoordinator (key 10), v0-v4 (v4: several keys per request). A group or
//! transactional id is coordinated by the node of the core that owns it (see
//! `crate::nodes`); without core listeners that is the one node, and the
//! owner core is found per request later.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};
use crate::broker::Broker;
use crate::nodes::NodeAddress;

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

/// Key types: 0 group, 1 transactional id; anything else is refused.
fn coordinator_of<'a>(
    broker: &'a Broker,
    key_type: i8,
    key: &str,
) -> Result<&'a NodeAddress, (ResponseError, &'static str)> {
    match key_type {
        0 => Ok(broker.group_coordinator(key)),
        1 => Ok(broker.transaction_coordinator(key)),
        _ => Err((ResponseError::InvalidRequest, "unknown coordinator key type")),
    }
}

pub async fn handle(body: FindCoordinatorRequest, request: RequestContext) -> HandlerOutcome {
    let broker = request.broker();
    let mut response = FindCoordinatorResponse::default();
    if request.version >= 4 {
        response.coordinators = body
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let outcome = coordinator_of(broker, body.key_type, key.as_str());
                let coordinator = Coordinator::default().with_key(key);
                match outcome {
                    Ok(node) => coordinator
                        .with_node_id(BrokerId(node.node_id))
                        .with_host(StrBytes::from_string(node.host.clone()))
                        .with_port(node.port),
                    Err((error, message)) => coordinator
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(error.code())
                        .with_error_message(Some(StrBytes::from_static_str(message))),
                }
            })
            .collect();
        return request.respond(&response);
    }
    match coordinator_of(broker, body.key_type, body.key.as_str()) {
        Ok(node) => {
            response.node_id = BrokerId(node.node_id);
            response.host = StrBytes::from_string(node.host.clone());
            response.port = node.port;
        }
        Err((error, message)) => {
            response.error_code = error.code();
            response.node_id = BrokerId(-1);
            response.port = -1;
            if request.version >= 1 {
                response.error_message = Some(StrBytes::from_static_str(message));
            }
        }
    }
    request.respond(&response)
}
