//! The closed set of messages between cores. A request naming a partition goes
//! to the core that owns it ([`crate::runtime::router::owner_core`]); metadata
//! changes go to the controller on core 0.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use ringlog_engine::{AppendResult, Isolation, LogOffsets, ReadChunk};
use tokio::sync::oneshot;

use crate::coordinator::transaction::TxnMetadata;
use crate::metadata::TopicMetadata;

/// A topic partition as cores name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: Arc<str>,
    pub partition: i32,
}

pub type PartitionResult<T> = Result<T, ResponseError>;

#[derive(Debug)]
pub struct ProduceOutcome {
    pub append: AppendResult,
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

#[derive(Debug, Default)]
pub struct PartitionRead {
    pub chunks: Vec<ReadChunk>,
    pub total_bytes: usize,
    /// Offsets the reader moves past: up to the end of the last whole batch.
    pub records: u64,
    pub offsets: Option<LogOffsets>,
    /// read_committed: `(producer id, first offset)` of aborted transactions.
    pub aborted: Vec<(i64, i64)>,
}

/// One partition of a [`ShardRequest::ReadPartitions`].
pub struct PartitionToRead {
    pub tp: TopicPartition,
    pub offset: i64,
    pub max_bytes: usize,
}

/// The answer to a [`ShardRequest::ReadPartitions`]: a result per partition,
/// in request order.
pub struct PartitionReads {
    pub results: Vec<PartitionResult<PartitionRead>>,
    /// With `watch`: the same partitions read again, by their owner, once one
    /// of them advances past this read (that answer watches again in turn).
    /// `None` when nothing could be watched. Dropping it cancels the watch.
    pub next: Option<oneshot::Receiver<PartitionReads>>,
}

/// Work for the core that owns `tp`.
pub enum ShardRequest {
    /// Append validated batches; the reply comes once they are durable, even
    /// for acks=0, so a connection's in-flight bound is its backpressure.
    Produce {
        tp: TopicPartition,
        /// Slices of the request frame, never copied before the log stamps them.
        batches: Vec<Bytes>,
        /// What the handler added to this core's `append_positions` for
        /// them (0 when the partition lives on another core).
        queued_bytes: u64,
        reply: oneshot::Sender<PartitionResult<ProduceOutcome>>,
    },
    Read {
        tp: TopicPartition,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        isolation: Isolation,
        reply: oneshot::Sender<PartitionResult<PartitionRead>>,
    },
    /// Reads every listed partition (all owned by this core) in one message:
    /// a fetch sends one per core, not one per partition. With `watch`, each
    /// partition also gets a watcher past what this read saw, registered in
    /// the same turn as the read, so no append can slip between the two; the
    /// owner reads again when one fires and sends that to the waiting fetch
    /// itself, so a wake costs one message between cores, not three.
    ReadPartitions {
        reads: Vec<PartitionToRead>,
        isolation: Isolation,
        watch: bool,
        reply: oneshot::Sender<PartitionReads>,
    },
    /// Kafka's ListOffsets: -2 earliest, -1 latest, else the first offset at or
    /// after the timestamp. Replies `(offset, timestamp)`.
    ListOffset {
        tp: TopicPartition,
        timestamp: i64,
        isolation: Isolation,
        reply: oneshot::Sender<PartitionResult<(i64, i64)>>,
    },
    EpochEndOffset {
        tp: TopicPartition,
        epoch: i32,
        reply: oneshot::Sender<PartitionResult<(i32, i64)>>,
    },
    OpenPartitions {
        partitions: Vec<TopicPartition>,
        reply: oneshot::Sender<()>,
    },
    DeletePartitions {
        partitions: Vec<TopicPartition>,
        reply: oneshot::Sender<()>,
    },
    Group {
        group_id: String,
        request: GroupRequest,
    },
    ListGroups {
        reply: oneshot::Sender<Vec<crate::coordinator::GroupListing>>,
    },
    Transaction {
        transactional_id: String,
        request: TxnRequest,
    },
    ListTransactions {
        reply: oneshot::Sender<Vec<(String, TxnMetadata)>>,
    },
    /// Close `producer_id`'s transaction on these partitions (all owned here).
    WriteMarkers {
        partitions: Vec<TopicPartition>,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        reply: oneshot::Sender<Result<(), ResponseError>>,
    },
    /// DeleteRecords: move the log start to `offset` (-1: the high watermark);
    /// replies the new log start.
    DeleteRecords {
        tp: TopicPartition,
        offset: i64,
        reply: oneshot::Sender<PartitionResult<i64>>,
    },
    /// Topic configs changed: re-resolve the settings of these topics' partitions.
    ReloadTopicSettings {
        topics: Vec<String>,
        reply: oneshot::Sender<()>,
    },
    /// A write failed on some core (the disk may be full): give back the
    /// space of every spare segment file this core's partitions keep.
    RemoveSpareSegments,
    /// Size on disk of every partition this core owns.
    PartitionSizes {
        reply: oneshot::Sender<Vec<(TopicPartition, u64)>>,
    },
    /// A copy of the core's metrics and the state a scrape reports.
    Metrics {
        reply: oneshot::Sender<crate::metrics::CoreSnapshot>,
    },
    /// Shutdown, first step: stop accepting, let this core's connections
    /// finish the requests they have read (they read no more), then reply.
    Drain {
        reply: oneshot::Sender<()>,
    },
    /// Shutdown, second step (once every core drained): flush and seal every
    /// partition, then stop the core.
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A topic to create, as CreateTopics and auto-creation ask for it.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 means the broker's `num.partitions`.
    pub num_partitions: i32,
    /// -1 means the broker default (1 on a single node).
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

pub type TopicResult = Result<TopicMetadata, (ResponseError, String)>;

/// Metadata changes, handled one at a time by the controller on core 0.
pub enum ControlRequest {
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
        reply: oneshot::Sender<Vec<TopicResult>>,
    },
    DeleteTopics {
        names: Vec<String>,
        reply: oneshot::Sender<Vec<TopicResult>>,
    },
    /// Replace each topic's configs (already merged by the caller).
    AlterTopicConfigs {
        changes: Vec<(String, BTreeMap<String, String>)>,
        validate_only: bool,
        reply: oneshot::Sender<Vec<Result<(), (ResponseError, String)>>>,
    },
    /// Grow each topic to the given partition count.
    CreatePartitions {
        topics: Vec<(String, i32)>,
        validate_only: bool,
        reply: oneshot::Sender<Vec<Result<(), (ResponseError, String)>>>,
    },
    /// A producer id never handed out before, on this node, across restarts.
    AllocateProducerId {
        reply: oneshot::Sender<Result<i64, ResponseError>>,
    },
}

/// Work for the core that owns a consumer group.
pub enum GroupRequest {
    Join {
        request: crate::coordinator::group::JoinRequest,
        reply: oneshot::Sender<crate::coordinator::group::JoinResult>,
    },
    Sync {
        request: crate::coordinator::group::SyncRequest,
        reply: oneshot::Sender<crate::coordinator::group::SyncResult>,
    },
    Heartbeat {
        member_id: String,
        group_instance_id: Option<String>,
        generation_id: i32,
        reply: oneshot::Sender<Result<(), ResponseError>>,
    },
    /// `(member id, group instance id)` of each leaving member.
    Leave {
        members: Vec<(String, Option<String>)>,
        reply: oneshot::Sender<Vec<Result<(), ResponseError>>>,
    },
    /// Replies once the commit is durable, with one result for all partitions.
    CommitOffsets {
        member_id: String,
        group_instance_id: Option<String>,
        generation_id: i32,
        offsets: Vec<(String, i32, crate::coordinator::offsets_log::CommittedOffset)>,
        reply: oneshot::Sender<Result<(), ResponseError>>,
    },
    /// `None` asks for every committed partition of the group.
    FetchOffsets {
        partitions: Option<Vec<(String, i32)>>,
        reply: oneshot::Sender<Vec<(String, i32, Option<crate::coordinator::offsets_log::CommittedOffset>)>>,
    },
    Describe {
        reply: oneshot::Sender<crate::coordinator::GroupDescription>,
    },
    Delete {
        reply: oneshot::Sender<Result<(), ResponseError>>,
    },
    /// TxnOffsetCommit: written as part of the producer's transaction, applied
    /// when its commit marker is.
    TxnCommitOffsets {
        producer_id: i64,
        producer_epoch: i16,
        offsets: Vec<(String, i32, crate::coordinator::offsets_log::CommittedOffset)>,
        reply: oneshot::Sender<Result<(), ResponseError>>,
    },
    /// OffsetDelete: refused for topics the group's members subscribe to.
    DeleteOffsets {
        partitions: Vec<(String, i32)>,
        reply: oneshot::Sender<Result<Vec<Result<(), ResponseError>>, ResponseError>>,
    },
}

/// Work for the core that owns a transactional id.
pub enum TxnRequest {
    /// Replies `(producer id, epoch)`. `requested` is the producer's own id
    /// and epoch (KIP-360), when it names them.
    InitProducerId {
        timeout_ms: i32,
        requested: Option<(i64, i16)>,
        reply: oneshot::Sender<Result<(i64, i16), ResponseError>>,
    },
    AddPartitions {
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<(String, i32)>,
        reply: oneshot::Sender<Result<(), ResponseError>>,
    },
    End {
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        reply: oneshot::Sender<Result<(), ResponseError>>,
    },
    Describe {
        reply: oneshot::Sender<Option<TxnMetadata>>,
    },
}
