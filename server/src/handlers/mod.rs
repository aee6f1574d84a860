//! One module per Kafka API, named after it, each declaring the versions it
//! implements in full. [`SUPPORTED_APIS`] is the single list: ApiVersions
//! advertises exactly it, and dispatch refuses anything outside it.
//!
//! Invariant: handlers never touch sockets or files; they talk to partition
//! owners through [`crate::broker::Broker`] and return [`Response`]s.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_configs;
pub mod api_versions;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_transactions;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, VersionRange};
use kafka_protocol::ResponseError;

use tokio::sync::oneshot;

use crate::broker::Broker;
use crate::metadata::ClusterMetadata;
use crate::net::connection::ConnectionContext;
use crate::protocol::{encode_response, EncodeError, Response};
use crate::runtime::messages::{PartitionResult, ShardRequest, TopicPartition};

pub type HandlerOutcome = Result<Option<Response>, HandlerError>;
pub type ResponseFuture = Pin<Box<dyn Future<Output = HandlerOutcome>>>;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("{api:?} v{version} is not supported")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed { api: ApiKey, version: i16, reason: String },
    #[error("request shorter than its fixed header")]
    Truncated,
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Every API this broker implements, with the versions it advertises.
pub const SUPPORTED_APIS: &[(ApiKey, VersionRange)] = &[
    (ApiKey::Produce, produce::VERSIONS),
    (ApiKey::Fetch, fetch::VERSIONS),
    (ApiKey::ListOffsets, list_offsets::VERSIONS),
    (ApiKey::Metadata, metadata::VERSIONS),
    (ApiKey::OffsetCommit, offset_commit::VERSIONS),
    (ApiKey::OffsetFetch, offset_fetch::VERSIONS),
    (ApiKey::FindCoordinator, find_coordinator::VERSIONS),
    (ApiKey::JoinGroup, join_group::VERSIONS),
    (ApiKey::Heartbeat, heartbeat::VERSIONS),
    (ApiKey::LeaveGroup, leave_group::VERSIONS),
    (ApiKey::SyncGroup, sync_group::VERSIONS),
    (ApiKey::DescribeGroups, describe_groups::VERSIONS),
    (ApiKey::ListGroups, list_groups::VERSIONS),
    (ApiKey::ApiVersions, api_versions::VERSIONS),
    (ApiKey::CreateTopics, create_topics::VERSIONS),
    (ApiKey::DeleteTopics, delete_topics::VERSIONS),
    (ApiKey::InitProducerId, init_producer_id::VERSIONS),
    (ApiKey::OffsetForLeaderEpoch, offset_for_leader_epoch::VERSIONS),
    (ApiKey::AddPartitionsToTxn, add_partitions_to_txn::VERSIONS),
    (ApiKey::AddOffsetsToTxn, add_offsets_to_txn::VERSIONS),
    (ApiKey::EndTxn, end_txn::VERSIONS),
    (ApiKey::TxnOffsetCommit, txn_offset_commit::VERSIONS),
    (ApiKey::DeleteGroups, delete_groups::VERSIONS),
    (ApiKey::OffsetDelete, offset_delete::VERSIONS),
    (ApiKey::DescribeTransactions, describe_transactions::VERSIONS),
    (ApiKey::ListTransactions, list_transactions::VERSIONS),
    (ApiKey::DescribeConfigs, describe_configs::VERSIONS),
    (ApiKey::AlterConfigs, alter_configs::VERSIONS),
    (ApiKey::IncrementalAlterConfigs, incremental_alter_configs::VERSIONS),
    (ApiKey::CreatePartitions, create_partitions::VERSIONS),
    (ApiKey::DeleteRecords, delete_records::VERSIONS),
    (ApiKey::DescribeLogDirs, describe_log_dirs::VERSIONS),
];

pub fn is_supported(api: ApiKey, version: i16) -> bool {
    SUPPORTED_APIS
        .iter()
        .any(|(key, range)| *key == api && (range.min..=range.max).contains(&version))
}

/// One decoded request's identity, handed to its handler.
pub struct RequestContext {
    pub connection: Rc<ConnectionContext>,
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
    pub client_id: String,
}

impl RequestContext {
    pub fn broker(&self) -> &Broker {
        &self.connection.broker
    }

    pub fn respond<M: Encodable>(&self, body: &M) -> HandlerOutcome {
        Ok(Some(encode_response(
            self.api,
            self.version,
            self.correlation_id,
            body,
        )?))
    }
}

/// Decodes a request body as `T` at `version`.
fn decode_body<T: Decodable>(body: &mut Bytes, api: ApiKey, version: i16) -> Result<T, HandlerError> {
    T::decode(body, version).map_err(|e| HandlerError::Malformed {
        api,
        version,
        reason: e.to_string(),
    })
}

/// Decodes a body as the request type `handler` takes (named by the handler,
/// so the type is written once, in the handler's signature).
fn decode_for<T: Decodable, C, F>(
    _handler: impl FnOnce(T, C) -> F,
    body: &mut Bytes,
    api: ApiKey,
    version: i16,
) -> Result<T, HandlerError> {
    decode_body(body, api, version)
}

/// What a frame's request header says; `frame` is left at the request body.
struct FrameHead {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
}

/// Reads the fixed start of a request (api key, version, correlation id).
/// `Ok(Err(head))` for an ApiVersions request of an unsupported version,
/// which gets an answer rather than a closed connection.
fn read_frame_head(frame: &Bytes) -> Result<Result<FrameHead, i32>, HandlerError> {
    let fixed = frame.get(..8).ok_or(HandlerError::Truncated)?;
    let api_key = i16::from_be_bytes([fixed[0], fixed[1]]);
    let version = i16::from_be_bytes([fixed[2], fixed[3]]);
    let correlation_id = i32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    let api = ApiKey::try_from(api_key).map_err(|_| HandlerError::UnknownApi(api_key))?;
    if !is_supported(api, version) {
        if api == ApiKey::ApiVersions {
            return Ok(Err(correlation_id));
        }
        return Err(HandlerError::UnsupportedVersion { api, version });
    }
    Ok(Ok(FrameHead {
        api,
        version,
        correlation_id,
    }))
}

fn decode_request_header(body: &mut Bytes, head: &FrameHead) -> Result<RequestHeader, HandlerError> {
    RequestHeader::decode(body, head.api.request_header_version(head.version)).map_err(|e| HandlerError::Malformed {
        api: head.api,
        version: head.version,
        reason: format!("request header: {e}"),
    })
}

/// Every API whose handler module has `handle(request, context)`: expands to
/// a match on `$api` calling `$on!(module)`. Produce and ApiVersions, whose
/// handlers have other shapes, are matched by the callers first.
macro_rules! route_api {
    ($api:expr, $on:ident) => {
        match $api {
            ApiKey::Fetch => $on!(fetch),
            ApiKey::ListOffsets => $on!(list_offsets),
            ApiKey::Metadata => $on!(metadata),
            ApiKey::CreateTopics => $on!(create_topics),
            ApiKey::DeleteTopics => $on!(delete_topics),
            ApiKey::OffsetForLeaderEpoch => $on!(offset_for_leader_epoch),
            ApiKey::OffsetCommit => $on!(offset_commit),
            ApiKey::OffsetFetch => $on!(offset_fetch),
            ApiKey::FindCoordinator => $on!(find_coordinator),
            ApiKey::JoinGroup => $on!(join_group),
            ApiKey::Heartbeat => $on!(heartbeat),
            ApiKey::LeaveGroup => $on!(leave_group),
            ApiKey::SyncGroup => $on!(sync_group),
            ApiKey::DescribeGroups => $on!(describe_groups),
            ApiKey::ListGroups => $on!(list_groups),
            ApiKey::DeleteGroups => $on!(delete_groups),
            ApiKey::OffsetDelete => $on!(offset_delete),
            ApiKey::InitProducerId => $on!(init_producer_id),
            ApiKey::AddPartitionsToTxn => $on!(add_partitions_to_txn),
            ApiKey::AddOffsetsToTxn => $on!(add_offsets_to_txn),
            ApiKey::EndTxn => $on!(end_txn),
            ApiKey::TxnOffsetCommit => $on!(txn_offset_commit),
            ApiKey::DescribeTransactions => $on!(describe_transactions),
            ApiKey::ListTransactions => $on!(list_transactions),
            ApiKey::DescribeConfigs => $on!(describe_configs),
            ApiKey::AlterConfigs => $on!(alter_configs),
            ApiKey::IncrementalAlterConfigs => $on!(incremental_alter_configs),
            ApiKey::CreatePartitions => $on!(create_partitions),
            ApiKey::DeleteRecords => $on!(delete_records),
            ApiKey::DescribeLogDirs => $on!(describe_log_dirs),
            other => unreachable!("{other:?} is in SUPPORTED_APIS without a handler"),
        }
    };
}

/// Stage one of a request: parse it and start it. Returns the future that
/// produces its response (stage two). Produce appends are handed to their
/// partitions here, before the connection reads its next request.
pub async fn dispatch(connection: &Rc<ConnectionContext>, frame: Bytes) -> Result<ResponseFuture, HandlerError> {
    let head = match read_frame_head(&frame)? {
        Ok(head) => head,
        Err(correlation_id) => {
            // Clients downgrade from the v0-format error; see api_versions.rs.
            let response = api_versions::unsupported_version_response(correlation_id);
            return Ok(Box::pin(async move { response }));
        }
    };
    let mut body = frame;
    let header = decode_request_header(&mut body, &head)?;
    let FrameHead {
        api,
        version,
        correlation_id,
    } = head;
    let request = RequestContext {
        connection: connection.clone(),
        api,
        version,
        correlation_id,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
    };
    // Decodes the body as the API's request and starts its handler.
    macro_rules! start {
        ($handler:ident) => {
            Box::pin($handler::handle(decode_body(&mut body, api, version)?, request))
        };
    }
    Ok(match api {
        ApiKey::Produce => produce::dispatch(decode_body(&mut body, api, version)?, request).await,
        ApiKey::ApiVersions => Box::pin(api_versions::handle(request)),
        other => route_api!(other, start),
    })
}

/// Decodes a whole request frame as [`dispatch`] would, without starting
/// anything: what the fuzz target `request` drives. Errors, never panics, on
/// any input.
pub fn decode_request(frame: Bytes) -> Result<(), HandlerError> {
    let Ok(head) = read_frame_head(&frame)? else {
        return Ok(()); // an ApiVersions of an unknown version: answered, not decoded
    };
    let mut body = frame;
    decode_request_header(&mut body, &head)?;
    let (api, version) = (head.api, head.version);
    macro_rules! decode {
        ($handler:ident) => {
            decode_for($handler::handle, &mut body, api, version).map(drop)
        };
    }
    match api {
        ApiKey::Produce => decode_for(produce::dispatch, &mut body, api, version).map(drop),
        ApiKey::ApiVersions => {
            decode_body::<kafka_protocol::messages::ApiVersionsRequest>(&mut body, api, version).map(drop)
        }
        other => route_api!(other, decode),
    }
}

/// For requests about one partition: finds it in `metadata`, checks the
/// client's leader epoch, asks the owner core. Returns the owner's answer with
/// the partition's leader epoch.
pub async fn ask_partition_owner<T>(
    broker: &Broker,
    metadata: &ClusterMetadata,
    topic: &Arc<str>,
    partition: i32,
    current_leader_epoch: i32,
    make: impl FnOnce(TopicPartition, oneshot::Sender<PartitionResult<T>>) -> ShardRequest,
) -> PartitionResult<(T, i32)> {
    let state = metadata
        .partition_state(topic, partition)
        .ok_or(ResponseError::UnknownTopicOrPartition)?;
    check_leader_epoch(current_leader_epoch, state.leader_epoch)?;
    let tp = TopicPartition {
        topic: topic.clone(),
        partition,
    };
    let answer = broker
        .call_owner(tp, make)
        .await
        .unwrap_or(Err(ResponseError::NotLeaderOrFollower))?;
    Ok((answer, state.leader_epoch))
}

/// Checks a client's `current_leader_epoch` against the partition's, as Kafka:
/// -1 skips the check; older is fenced; newer is unknown to this broker.
pub fn check_leader_epoch(requested: i32, current: i32) -> Result<(), ResponseError> {
    match requested {
        -1 => Ok(()),
        e if e < current => Err(ResponseError::FencedLeaderEpoch),
        e if e > current => Err(ResponseError::UnknownLeaderEpoch),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Message, Request};

    /// Encodes `value` at `version` and decodes it back.
    fn round_trip<T: Encodable + Decodable + PartialEq + std::fmt::Debug>(value: &T, version: i16) {
        let mut buf = bytes::BytesMut::new();
        value.encode(&mut buf, version).expect("encodes");
        let mut bytes = buf.freeze();
        let decoded = T::decode(&mut bytes, version).expect("decodes");
        assert!(bytes.is_empty(), "v{version}: trailing bytes");
        assert_eq!(&decoded, value, "v{version}");
    }

    /// Every advertised version of every API decodes its request and encodes its
    /// response (the codec supports it), except the Produce versions we advertise
    /// only to refuse.
    fn check_api<R>(refused_below: i16)
    where
        R: Request + Default + PartialEq + std::fmt::Debug,
        R::Response: Default + PartialEq + std::fmt::Debug,
    {
        let (_, range) = SUPPORTED_APIS
            .iter()
            .find(|(api, _)| *api as i16 == R::KEY)
            .expect("advertised");
        for version in range.min..=range.max {
            if version < refused_below {
                assert!(
                    version < <R as Message>::VERSIONS.min,
                    "v{version} is decodable: serve it"
                );
                continue;
            }
            round_trip(&R::default(), version);
            round_trip(&R::Response::default(), version);
        }
    }

    /// A frame of `api` at `version` with a client id and an empty body.
    fn header_only_frame(api: ApiKey, version: i16) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_client_id(Some(kafka_protocol::protocol::StrBytes::from_static_str("fuzz")));
        let mut buf = bytes::BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .expect("encodes");
        buf.freeze()
    }

    #[test]
    fn every_supported_api_is_routed_and_bad_frames_are_errors() {
        for (api, range) in SUPPORTED_APIS {
            for version in range.min..=range.max {
                // An empty body is an error or a request of defaults, never a panic.
                let _ = decode_request(header_only_frame(*api, version));
            }
        }
        assert!(matches!(
            decode_request(Bytes::from_static(b"\x00")),
            Err(HandlerError::Truncated)
        ));
        let unknown = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert!(matches!(decode_request(unknown), Err(HandlerError::UnknownApi(0x7f00))));
    }

    #[test]
    fn every_advertised_version_has_a_codec() {
        check_api::<ProduceRequest>(3);
        check_api::<FetchRequest>(0);
        check_api::<ListOffsetsRequest>(0);
        check_api::<MetadataRequest>(0);
        check_api::<ApiVersionsRequest>(0);
        check_api::<CreateTopicsRequest>(0);
        check_api::<DeleteTopicsRequest>(0);
        check_api::<OffsetForLeaderEpochRequest>(0);
        check_api::<OffsetCommitRequest>(0);
        check_api::<OffsetFetchRequest>(0);
        check_api::<FindCoordinatorRequest>(0);
        check_api::<JoinGroupRequest>(0);
        check_api::<HeartbeatRequest>(0);
        check_api::<LeaveGroupRequest>(0);
        check_api::<SyncGroupRequest>(0);
        check_api::<DescribeGroupsRequest>(0);
        check_api::<ListGroupsRequest>(0);
        check_api::<DeleteGroupsRequest>(0);
        check_api::<OffsetDeleteRequest>(0);
        check_api::<InitProducerIdRequest>(0);
        check_api::<AddPartitionsToTxnRequest>(0);
        check_api::<AddOffsetsToTxnRequest>(0);
        check_api::<EndTxnRequest>(0);
        check_api::<TxnOffsetCommitRequest>(0);
        check_api::<DescribeTransactionsRequest>(0);
        check_api::<ListTransactionsRequest>(0);
        check_api::<DescribeConfigsRequest>(0);
        check_api::<AlterConfigsRequest>(0);
        check_api::<IncrementalAlterConfigsRequest>(0);
        check_api::<CreatePartitionsRequest>(0);
        check_api::<DeleteRecordsRequest>(0);
        check_api::<DescribeLogDirsRequest>(0);
        assert_eq!(SUPPORTED_APIS.len(), 32, "a new API needs a line here");
    }

    #[test]
    fn leader_epoch_checks_follow_kafka() {
        assert_eq!(check_leader_epoch(-1, 5), Ok(()));
        assert_eq!(check_leader_epoch(5, 5), Ok(()));
        assert_eq!(check_leader_epoch(4, 5), Err(ResponseError::FencedLeaderEpoch));
        assert_eq!(check_leader_epoch(6, 5), Err(ResponseError::UnknownLeaderEpoch));
    }
}
