//! The controller: the single writer of cluster metadata. Runs on core 0 as one
//! task that takes one change at a time: validate, persist `metadata.json`,
//! publish the new snapshot, then have the owner cores open or delete the
//! partitions, and only then reply. So once CreateTopics answers, every core
//! sees the topic and its partitions exist on disk.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use tokio::sync::{mpsc, oneshot};

use crate::broker::Broker;
use crate::metadata::{self, ClusterMetadata, TopicMetadata};
use crate::runtime::messages::{ControlRequest, NewTopic, ShardRequest, TopicPartition, TopicResult};

/// Kafka rejects more partitions than this in one CreateTopics (and so do we).
const PARTITIONS_PER_TOPIC_MAX: i32 = 100_000;

/// Producer ids are reserved in blocks: one metadata write per block.
const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Hands out producer ids from the current reserved block.
struct ProducerIdAllocator {
    next_id: i64,
    block_end: i64,
}

impl ProducerIdAllocator {
    fn allocate(&mut self, broker: &Broker) -> Result<i64, ResponseError> {
        if self.next_id >= self.block_end {
            let mut metadata = (*broker.metadata()).clone();
            metadata.producer_id_block_end = self.block_end + PRODUCER_ID_BLOCK_SIZE;
            let block_end = metadata.producer_id_block_end;
            persist_and_publish(broker, metadata).map_err(|(error, _)| error)?;
            self.block_end = block_end;
        }
        let id = self.next_id;
        self.next_id += 1;
        Ok(id)
    }
}

pub async fn run_controller(broker: Arc<Broker>, mut requests: mpsc::UnboundedReceiver<ControlRequest>) {
    let block_end = broker.metadata().producer_id_block_end;
    let mut producer_ids = ProducerIdAllocator {
        next_id: block_end,
        block_end,
    };
    while let Some(request) = requests.recv().await {
        match request {
            ControlRequest::AllocateProducerId { reply } => {
                let _ = reply.send(producer_ids.allocate(&broker));
            }
            ControlRequest::CreateTopics {
                topics,
                validate_only,
                reply,
            } => {
                let results = create_topics(&broker, topics, validate_only).await;
                let _ = reply.send(results);
            }
            ControlRequest::DeleteTopics { names, reply } => {
                let results = delete_topics(&broker, names).await;
                let _ = reply.send(results);
            }
        }
    }
}

fn check_new_topic(
    broker: &Broker,
    metadata: &ClusterMetadata,
    topic: &NewTopic,
) -> Result<i32, (ResponseError, String)> {
    metadata::validate_topic_name(&topic.name).map_err(|m| (ResponseError::InvalidTopicException, m))?;
    if metadata.topics.contains_key(&topic.name) {
        return Err((
            ResponseError::TopicAlreadyExists,
            format!("topic {:?} already exists", topic.name),
        ));
    }
    let partitions = if topic.num_partitions == -1 {
        broker.config.num_partitions
    } else {
        topic.num_partitions
    };
    if !(1..=PARTITIONS_PER_TOPIC_MAX).contains(&partitions) {
        return Err((
            ResponseError::InvalidPartitions,
            format!("number of partitions must be within 1..={PARTITIONS_PER_TOPIC_MAX}"),
        ));
    }
    if !matches!(topic.replication_factor, -1 | 1) {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor {} is larger than the 1 available broker",
                topic.replication_factor
            ),
        ));
    }
    for (key, value) in &topic.configs {
        crate::topic_config::validate(key, value).map_err(|m| (ResponseError::InvalidConfig, m))?;
    }
    Ok(partitions)
}

async fn create_topics(broker: &Broker, topics: Vec<NewTopic>, validate_only: bool) -> Vec<TopicResult> {
    let mut metadata = (*broker.metadata()).clone();
    let mut results = Vec::with_capacity(topics.len());
    let mut created = Vec::new();
    for topic in topics {
        let result = check_new_topic(broker, &metadata, &topic)
            .map(|partitions| TopicMetadata::new(&topic.name, partitions, metadata.node_id, topic.configs.clone()));
        if let (Ok(new_topic), false) = (&result, validate_only) {
            metadata.topics.insert(new_topic.name.clone(), new_topic.clone());
            created.push(new_topic.clone());
        }
        results.push(result);
    }
    if created.is_empty() {
        return results;
    }
    if let Err(failure) = persist_and_publish(broker, metadata) {
        return results.into_iter().map(|r| r.and(Err(failure.clone()))).collect();
    }
    for topic in &created {
        tracing::info!(topic = %topic.name, partitions = topic.partitions.len(), "created topic");
    }
    tell_owners(broker, &created, |partitions, reply| ShardRequest::OpenPartitions {
        partitions,
        reply,
    })
    .await;
    results
}

async fn delete_topics(broker: &Broker, names: Vec<String>) -> Vec<TopicResult> {
    let mut metadata = (*broker.metadata()).clone();
    let mut results = Vec::with_capacity(names.len());
    let mut deleted = Vec::new();
    for name in names {
        match metadata.topics.remove(&name) {
            Some(topic) => {
                deleted.push(topic.clone());
                results.push(Ok(topic));
            }
            None => results.push(Err((
                ResponseError::UnknownTopicOrPartition,
                format!("topic {name:?} does not exist"),
            ))),
        }
    }
    if deleted.is_empty() {
        return results;
    }
    if let Err(failure) = persist_and_publish(broker, metadata) {
        return results.into_iter().map(|r| r.and(Err(failure.clone()))).collect();
    }
    for topic in &deleted {
        tracing::info!(topic = %topic.name, "deleted topic");
    }
    tell_owners(broker, &deleted, |partitions, reply| ShardRequest::DeletePartitions {
        partitions,
        reply,
    })
    .await;
    results
}

/// Makes `metadata` durable, then visible to every core. On failure nothing
/// changes, and every change of the request is refused with the reason.
fn persist_and_publish(broker: &Broker, metadata: ClusterMetadata) -> Result<(), (ResponseError, String)> {
    if let Err(error) = metadata.persist(&broker.data_dir) {
        tracing::error!(%error, "persisting metadata failed; change refused");
        return Err((ResponseError::KafkaStorageError, error.to_string()));
    }
    broker.publish_metadata(metadata);
    Ok(())
}

/// Sends each core the partitions of `topics` it owns and waits for all.
async fn tell_owners(
    broker: &Broker,
    topics: &[TopicMetadata],
    make: impl Fn(Vec<TopicPartition>, oneshot::Sender<()>) -> ShardRequest,
) {
    let mut by_core: BTreeMap<usize, Vec<TopicPartition>> = BTreeMap::new();
    for topic in topics {
        let name: Arc<str> = topic.name.as_str().into();
        for state in &topic.partitions {
            let tp = TopicPartition {
                topic: name.clone(),
                partition: state.partition,
            };
            by_core.entry(broker.owner_core(&tp)).or_default().push(tp);
        }
    }
    let mut acks = Vec::new();
    for (core, partitions) in by_core {
        let (reply, ack) = oneshot::channel();
        broker.send_to_core(core, make(partitions, reply));
        acks.push(ack);
    }
    for ack in acks {
        let _ = ack.await;
    }
}
