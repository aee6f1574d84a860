//! DeleteTopics (key 20), v1-v6 (v6 names topics by name or by id).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::{StrBytes, VersionRange};
use kafka_protocol::ResponseError;

use super::{HandlerOutcome, RequestContext};

pub const VERSIONS: VersionRange = VersionRange { min: 1, max: 6 };

pub async fn handle(body: DeleteTopicsRequest, request: RequestContext) -> HandlerOutcome {
    let version = request.version;
    let broker = request.broker();
    let metadata = broker.metadata();
    // (name as given, id as given, resolved name)
    let wanted: Vec<(Option<TopicName>, uuid::Uuid, Option<String>)> = if version >= 6 {
        body.topics
            .iter()
            .map(|t| {
                let resolved = match &t.name {
                    Some(name) => Some(name.to_string()),
                    None => metadata.topic_by_id(t.topic_id).map(|m| m.name.clone()),
                };
                (t.name.clone(), t.topic_id, resolved)
            })
            .collect()
    } else {
        body.topic_names
            .iter()
            .map(|name| (Some(name.clone()), uuid::Uuid::nil(), Some(name.to_string())))
            .collect()
    };
    let names: Vec<String> = wanted.iter().filter_map(|(_, _, resolved)| resolved.clone()).collect();
    let mut results = broker.delete_topics(names).await.into_iter();
    let responses = wanted
        .into_iter()
        .map(|(name, topic_id, resolved)| {
            let outcome = match resolved {
                Some(_) => results
                    .next()
                    .unwrap_or(Err((ResponseError::UnknownServerError, "no result".into()))),
                None => Err((ResponseError::UnknownTopicId, format!("no topic has id {topic_id}"))),
            };
            let mut response = DeletableTopicResult::default();
            response.name = match (&outcome, version >= 6) {
                (Ok(deleted), _) => Some(TopicName(StrBytes::from_string(deleted.name.clone()))),
                (Err(_), _) => name,
            };
            if version >= 6 {
                response.topic_id = outcome.as_ref().map_or(topic_id, |deleted| deleted.topic_id);
            }
            if let Err((error, message)) = outcome {
                response.error_code = error.code();
                if version >= 5 {
                    response.error_message = Some(StrBytes::from_string(message));
                }
            }
            response
        })
        .collect();
    request.respond(&DeleteTopicsResponse::default().with_responses(responses))
}
