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
            ControlRequest::AlterTopicConfigs {
                changes,
                validate_only,
                reply,
            } => {
                let _ = reply.send(alter_topic_configs(&broker, changes, validate_only).await);
            }
            ControlRequest::CreatePartitions {
                topics,
                validate_only,
                reply,
            } => {
                let _ = reply.send(create_partitions(&broker, topics, validate_only).await);
            }
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

type ChangeResult = Result<(), (ResponseError, String)>;

async fn alter_topic_configs(
    broker: &Broker,
    changes: Vec<(String, BTreeMap<String, String>)>,
    validate_only: bool,
) -> Vec<ChangeResult> {
    let mut metadata = (*broker.metadata()).clone();
    let mut changed = Vec::new();
    let results = changes
        .into_iter()
        .map(|(topic, configs)| {
            let Some(existing) = metadata.topics.get_mut(&topic) else {
                return Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic {topic:?} does not exist"),
                ));
            };
            for (key, value) in &configs {
                crate::topic_config::validate(key, value).map_err(|m| (ResponseError::InvalidConfig, m))?;
            }
            if !validate_only {
                existing.configs = configs;
                changed.push(topic);
            }
            Ok(())
        })
        .collect();
    if changed.is_empty() {
        return results;
    }
    if let Err(failure) = persist_and_publish(broker, metadata) {
        return vec_of(failure, &results);
    }
    tracing::info!(topics = ?changed, "topic configs changed");
    broker
        .ask_every_core(|reply| ShardRequest::ReloadTopicSettings {
            topics: changed.clone(),
            reply,
        })
        .await;
    results
}

async fn create_partitions(broker: &Broker, topics: Vec<(String, i32)>, validate_only: bool) -> Vec<ChangeResult> {
    let mut metadata = (*broker.metadata()).clone();
    let node_id = metadata.node_id;
    let mut grown: Vec<TopicMetadata> = Vec::new();
    let results = topics
        .into_iter()
        .map(|(topic, count)| {
            let Some(existing) = metadata.topics.get_mut(&topic) else {
                return Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic {topic:?} does not exist"),
                ));
            };
            let current = existing.partitions.len() as i32;
            if count <= current {
                return Err((
                    ResponseError::InvalidPartitions,
                    format!("topic {topic} has {current} partitions; the count can only grow"),
                ));
            }
            if count > PARTITIONS_PER_TOPIC_MAX {
                return Err((
                    ResponseError::InvalidPartitions,
                    format!("at most {PARTITIONS_PER_TOPIC_MAX} partitions"),
                ));
            }
            if !validate_only {
                let fresh = TopicMetadata::new(&topic, count, node_id, BTreeMap::new()).partitions;
                existing.partitions.extend(fresh.into_iter().skip(current as usize));
                let mut added = existing.clone();
                added.partitions.drain(..current as usize);
                grown.push(added);
            }
            Ok(())
        })
        .collect();
    if grown.is_empty() {
        return results;
    }
    if let Err(failure) = persist_and_publish(broker, metadata) {
        return vec_of(failure, &results);
    }
    tell_owners(broker, &grown, |partitions, reply| ShardRequest::OpenPartitions {
        partitions,
        reply,
    })
    .await;
    results
}

/// The same failure for every change of a request.
fn vec_of(failure: (ResponseError, String), results: &[ChangeResult]) -> Vec<ChangeResult> {
    results.iter().map(|_| Err(failure.clone())).collect()
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
