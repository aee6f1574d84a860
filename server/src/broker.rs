//! What every core shares: settings, the metadata snapshot, and the senders that
//! reach each core and the controller. Read-only after start except the
//! metadata snapshot, which only the controller replaces.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ringlog_engine::cache::BatchCache;
use ringlog_engine::IoPolicy;
use tokio::sync::{mpsc, oneshot};

use crate::config::{BrokerConfig, CacheBudget};
use crate::coordinator::transaction::TRANSACTION_TOPIC;
use crate::coordinator::{self, offsets_log::OFFSETS_TOPIC};
use crate::metadata::{ClusterMetadata, MetadataSnapshot, TopicMetadata};
use crate::nodes::{NodeAddress, Nodes};
use crate::runtime::messages::{
    ControlRequest, GroupRequest, NewTopic, ShardRequest, TopicPartition, TopicResult, TxnRequest,
};
use crate::runtime::router;

pub struct Broker {
    pub config: BrokerConfig,
    pub data_dir: PathBuf,
    /// `log.io.mode` after probing the data dir's filesystem.
    pub io_policy: IoPolicy,
    /// The brokers clients are told about (one per core with core listeners).
    pub nodes: Nodes,
    /// Partitions of `__consumer_offsets`, fixed when the topic was created.
    pub offsets_partitions: i32,
    /// Partitions of `__transaction_state`, likewise.
    pub transaction_partitions: i32,
    /// Open client connections, all cores together (for `max.connections`).
    pub connections: std::sync::atomic::AtomicUsize,
    metadata: ArcSwap<ClusterMetadata>,
    cores: Vec<mpsc::UnboundedSender<ShardRequest>>,
    controller: mpsc::UnboundedSender<ControlRequest>,
}

impl Broker {
    /// `log.cache.bytes.per.core`, resolved.
    pub fn cache_bytes_per_core(&self) -> usize {
        self.config
            .log_cache_bytes_per_core
            .bytes_per_core(self.cores.len(), crate::config::usable_memory_bytes())
    }

    /// A core's batch cache. `auto` starts at
    /// [`crate::config::AUTO_CACHE_START_BYTES_PER_CORE`] and grows to its
    /// share of memory while consumers miss batches it evicted for room; a
    /// number of bytes is a fixed budget.
    pub fn new_batch_cache(&self) -> BatchCache {
        let max_bytes = self.cache_bytes_per_core();
        match self.config.log_cache_bytes_per_core {
            CacheBudget::Auto => BatchCache::growing(crate::config::AUTO_CACHE_START_BYTES_PER_CORE, max_bytes),
            CacheBudget::BytesPerCore(_) => BatchCache::new(max_bytes),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: BrokerConfig,
        data_dir: PathBuf,
        io_policy: IoPolicy,
        nodes: Nodes,
        metadata: ClusterMetadata,
        cores: Vec<mpsc::UnboundedSender<ShardRequest>>,
        controller: mpsc::UnboundedSender<ControlRequest>,
    ) -> Self {
        let offsets_partitions = metadata
            .topics
            .get(OFFSETS_TOPIC)
            .map_or(1, |t| t.partitions.len() as i32);
        let transaction_partitions = metadata
            .topics
            .get(TRANSACTION_TOPIC)
            .map_or(1, |t| t.partitions.len() as i32);
        Self {
            offsets_partitions,
            transaction_partitions,
            config,
            data_dir,
            io_policy,
            nodes,
            connections: std::sync::atomic::AtomicUsize::new(0),
            metadata: ArcSwap::from_pointee(metadata),
            cores,
            controller,
        }
    }

    pub fn metadata(&self) -> MetadataSnapshot {
        self.metadata.load_full()
    }

    /// Only the controller calls this, after persisting `metadata`.
    pub fn publish_metadata(&self, metadata: ClusterMetadata) {
        self.metadata.store(Arc::new(metadata));
    }

    pub fn owner_core(&self, tp: &TopicPartition) -> usize {
        router::owner_core(&tp.topic, tp.partition, self.cores.len())
    }

    /// The node clients should send a partition's produce and fetch requests to.
    pub fn partition_leader(&self, topic: &str, partition: i32) -> &NodeAddress {
        self.nodes
            .of_core(router::owner_core(topic, partition, self.cores.len()))
    }

    /// The node that coordinates `group_id`.
    pub fn group_coordinator(&self, group_id: &str) -> &NodeAddress {
        self.nodes.of_core(self.group_core(group_id))
    }

    /// The node that coordinates `transactional_id`.
    pub fn transaction_coordinator(&self, transactional_id: &str) -> &NodeAddress {
        self.nodes.of_core(self.transaction_core(transactional_id))
    }

    /// The core that owns `transactional_id`: the owner of its
    /// `__transaction_state` partition.
    fn transaction_core(&self, transactional_id: &str) -> usize {
        self.owner_core(&self.transaction_partition(transactional_id))
    }

    pub fn core_count(&self) -> usize {
        self.cores.len()
    }

    /// The core that owns `group_id`: the owner of its offsets partition.
    pub fn group_core(&self, group_id: &str) -> usize {
        let tp = TopicPartition {
            topic: OFFSETS_TOPIC.into(),
            partition: coordinator::offsets_partition(group_id, self.offsets_partitions),
        };
        self.owner_core(&tp)
    }

    /// Sends a request to the core that owns `group_id`; `None` when it is
    /// shutting down.
    pub async fn call_group<T>(
        &self,
        group_id: &str,
        make: impl FnOnce(oneshot::Sender<T>) -> GroupRequest,
    ) -> Option<T> {
        let (sender, receiver) = oneshot::channel();
        let request = ShardRequest::Group {
            group_id: group_id.to_string(),
            request: make(sender),
        };
        self.send_to_core(self.group_core(group_id), request);
        receiver.await.ok()
    }

    /// The `__transaction_state` partition of `transactional_id`.
    pub fn transaction_partition(&self, transactional_id: &str) -> TopicPartition {
        TopicPartition {
            topic: TRANSACTION_TOPIC.into(),
            partition: coordinator::offsets_partition(transactional_id, self.transaction_partitions),
        }
    }

    /// Sends a request to the core that owns `transactional_id`.
    pub async fn call_transaction<T>(
        &self,
        transactional_id: &str,
        make: impl FnOnce(oneshot::Sender<T>) -> TxnRequest,
    ) -> Option<T> {
        let (sender, receiver) = oneshot::channel();
        let core = self.transaction_core(transactional_id);
        let request = ShardRequest::Transaction {
            transactional_id: transactional_id.to_string(),
            request: make(sender),
        };
        self.send_to_core(core, request);
        receiver.await.ok()
    }

    /// Asks every core the same question; answers in core order.
    pub async fn ask_every_core<T>(&self, make: impl Fn(oneshot::Sender<T>) -> ShardRequest) -> Vec<T> {
        let mut receivers = Vec::with_capacity(self.cores.len());
        for core in 0..self.cores.len() {
            let (sender, receiver) = oneshot::channel();
            self.send_to_core(core, make(sender));
            receivers.push(receiver);
        }
        let mut answers = Vec::with_capacity(receivers.len());
        for receiver in receivers {
            if let Ok(answer) = receiver.await {
                answers.push(answer);
            }
        }
        answers
    }

    /// Sends `request` to core `core`. A core only goes away at shutdown; then
    /// the reply sender is dropped and the caller sees the channel closed.
    pub fn send_to_core(&self, core: usize, request: ShardRequest) {
        crate::metrics::count_message_to_core(core);
        if self.cores[core].send(request).is_err() {
            tracing::debug!(core, "core is shutting down; request dropped");
        }
    }

    /// Sends a request to the owner of `tp` and awaits its reply; `None` when
    /// the owner is shutting down.
    pub async fn call_owner<T>(
        &self,
        tp: TopicPartition,
        make: impl FnOnce(TopicPartition, oneshot::Sender<T>) -> ShardRequest,
    ) -> Option<T> {
        let core = self.owner_core(&tp);
        let (sender, receiver) = oneshot::channel();
        self.send_to_core(core, make(tp, sender));
        receiver.await.ok()
    }

    pub async fn create_topics(&self, topics: Vec<NewTopic>, validate_only: bool) -> Vec<TopicResult> {
        let (reply, receiver) = oneshot::channel();
        let count = topics.len();
        let _ = self.controller.send(ControlRequest::CreateTopics {
            topics,
            validate_only,
            reply,
        });
        receiver.await.unwrap_or_else(|_| vec![Err(shutting_down()); count])
    }

    pub async fn alter_topic_configs(
        &self,
        changes: Vec<(String, std::collections::BTreeMap<String, String>)>,
        validate_only: bool,
    ) -> Vec<Result<(), (kafka_protocol::ResponseError, String)>> {
        let (reply, receiver) = oneshot::channel();
        let count = changes.len();
        let _ = self.controller.send(ControlRequest::AlterTopicConfigs {
            changes,
            validate_only,
            reply,
        });
        receiver.await.unwrap_or_else(|_| vec![Err(shutting_down()); count])
    }

    pub async fn create_partitions(
        &self,
        topics: Vec<(String, i32)>,
        validate_only: bool,
    ) -> Vec<Result<(), (kafka_protocol::ResponseError, String)>> {
        let (reply, receiver) = oneshot::channel();
        let count = topics.len();
        let _ = self.controller.send(ControlRequest::CreatePartitions {
            topics,
            validate_only,
            reply,
        });
        receiver.await.unwrap_or_else(|_| vec![Err(shutting_down()); count])
    }

    pub async fn allocate_producer_id(&self) -> Result<i64, kafka_protocol::ResponseError> {
        let (reply, receiver) = oneshot::channel();
        let _ = self.controller.send(ControlRequest::AllocateProducerId { reply });
        receiver
            .await
            .unwrap_or(Err(kafka_protocol::ResponseError::CoordinatorNotAvailable))
    }

    pub async fn delete_topics(&self, names: Vec<String>) -> Vec<TopicResult> {
        let (reply, receiver) = oneshot::channel();
        let count = names.len();
        let _ = self.controller.send(ControlRequest::DeleteTopics { names, reply });
        receiver.await.unwrap_or_else(|_| vec![Err(shutting_down()); count])
    }

    /// Looks `name` up, creating it when auto-creation is on and `allow_create`.
    pub async fn topic_or_auto_create(&self, name: &str, allow_create: bool) -> Option<TopicMetadata> {
        if let Some(topic) = self.metadata().topics.get(name) {
            return Some(topic.clone());
        }
        if !(allow_create && self.config.auto_create_topics_enable) {
            return None;
        }
        let new_topic = NewTopic {
            name: name.to_string(),
            num_partitions: -1,
            replication_factor: -1,
            configs: Default::default(),
        };
        let mut results = self.create_topics(vec![new_topic], false).await;
        match results.pop() {
            Some(Ok(topic)) => Some(topic),
            // Created concurrently by another request: fine.
            Some(Err((kafka_protocol::ResponseError::TopicAlreadyExists, _))) => {
                self.metadata().topics.get(name).cloned()
            }
            _ => None,
        }
    }
}

fn shutting_down() -> (kafka_protocol::ResponseError, String) {
    (
        kafka_protocol::ResponseError::BrokerNotAvailable,
        "broker is shutting down".into(),
    )
}
