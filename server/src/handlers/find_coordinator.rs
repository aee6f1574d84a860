//! FindCoordinator (key 10), v0-v4 (v4: several keys per request). Every group
//! and transactional id is coordinated by this node; the owner core is found
//! per request later.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};

pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

/// Key types: 0 group, 1 transactional id; anything else is refused.
fn coordinates(key_type: i8) -> Result<(), (ResponseError, &'static str)> {
    match key_type {
        0 | 1 => Ok(()),
        _ => Err((ResponseError::InvalidRequest, "unknown coordinator key type")),
    }
}

pub async fn handle(body: FindCoordinatorRequest, request: RequestContext) -> HandlerOutcome {
    let broker = request.broker();
    let node_id = BrokerId(broker.metadata().node_id);
    let host = StrBytes::from_string(broker.advertised_host.clone());
    let port = broker.advertised_port;
    let outcome = coordinates(body.key_type);
    let mut response = FindCoordinatorResponse::default();
    if request.version >= 4 {
        response.coordinators = body
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let coordinator = Coordinator::default().with_key(key);
                match outcome {
                    Ok(()) => coordinator
                        .with_node_id(node_id)
                        .with_host(host.clone())
                        .with_port(port),
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
    match outcome {
        Ok(()) => {
            response.node_id = node_id;
            response.host = host;
            response.port = port;
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
