//! Cluster metadata: cluster id, this node, topics with their ids, partitions,
//! partition state (leader, epoch, replicas) and configs. Persisted as
//! `metadata.json` in the data dir.
//!
//! Invariants:
//! - Only the controller task (on core 0) changes metadata, one change at a
//!   time; it writes the file atomically before publishing the new snapshot.
//! - Readers on every core take lock-free snapshots (`ArcSwap`); a snapshot
//!   never changes once published.
//! - Topic ids are unique and never reused; partition indexes are `0..count`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub const METADATA_FILE_NAME: &str = "metadata.json";
/// Kafka's limit on topic name length.
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartitionState {
    pub partition: i32,
    /// `leader` and `replicas` keep the file's format (node.id at creation);
    /// responses name the owner core's node instead (`crate::nodes`).
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicMetadata {
    pub name: String,
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<PartitionState>,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusterMetadata {
    pub cluster_id: String,
    pub node_id: i32,
    pub topics: BTreeMap<String, TopicMetadata>,
    /// Producer ids below this were (or may have been) handed out; a restart
    /// continues from here, so ids are never reused.
    #[serde(default)]
    pub producer_id_block_end: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parsing {path}: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

impl ClusterMetadata {
    /// Loads `metadata.json`, or creates a fresh cluster identity.
    pub fn load_or_create(data_dir: &Path, node_id: i32) -> Result<Self, MetadataError> {
        let path = data_dir.join(METADATA_FILE_NAME);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| MetadataError::Parse { path, source }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let metadata = Self {
                    cluster_id: new_cluster_id(),
                    node_id,
                    topics: BTreeMap::new(),
                    producer_id_block_end: 0,
                };
                metadata.persist(data_dir)?;
                Ok(metadata)
            }
            Err(source) => Err(MetadataError::Read { path, source }),
        }
    }

    pub fn persist(&self, data_dir: &Path) -> Result<(), MetadataError> {
        let path = data_dir.join(METADATA_FILE_NAME);
        let bytes = match serde_json::to_vec_pretty(self) {
            Ok(bytes) => bytes,
            Err(error) => unreachable!("metadata always serialises: {error}"),
        };
        ringlog_engine::io::write_file_atomically(&path, &bytes).map_err(|source| MetadataError::Write { path, source })
    }

    pub fn partition_state(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        let topic = self.topics.get(topic)?;
        topic
            .has_partition(partition)
            .then(|| &topic.partitions[partition as usize])
    }

    pub fn topic_by_id(&self, topic_id: uuid::Uuid) -> Option<&TopicMetadata> {
        self.topics.values().find(|t| t.topic_id == topic_id)
    }
}

impl TopicMetadata {
    pub fn new(name: &str, partition_count: i32, node_id: i32, configs: BTreeMap<String, String>) -> Self {
        Self {
            name: name.to_string(),
            topic_id: uuid::Uuid::new_v4(),
            partitions: (0..partition_count)
                .map(|partition| PartitionState {
                    partition,
                    leader: node_id,
                    leader_epoch: 0,
                    replicas: vec![node_id],
                })
                .collect(),
            configs,
        }
    }

    pub fn has_partition(&self, partition: i32) -> bool {
        partition >= 0 && (partition as usize) < self.partitions.len()
    }
}

/// Kafka's cluster ids are 16 random bytes in URL-safe base64 without padding.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut bits: u128 = u128::from_be_bytes(bytes);
    (0..22)
        .map(|_| {
            let c = ALPHABET[(bits & 63) as usize] as char;
            bits >>= 6;
            c
        })
        .collect()
}

/// Kafka's rule: 1..=249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("topic name {name:?} is illegal"));
    }
    if name.len() > TOPIC_NAME_BYTES_MAX {
        return Err(format!("topic name is longer than {TOPIC_NAME_BYTES_MAX} characters"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("topic name {name:?} contains {bad:?}; allowed: [a-zA-Z0-9._-]"));
    }
    Ok(())
}

pub type MetadataSnapshot = Arc<ClusterMetadata>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_survives_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut metadata = ClusterMetadata::load_or_create(dir.path(), 0).expect("create");
        assert_eq!(metadata.cluster_id.len(), 22);
        metadata
            .topics
            .insert("t".into(), TopicMetadata::new("t", 3, 0, BTreeMap::new()));
        metadata.persist(dir.path()).expect("persist");
        let reloaded = ClusterMetadata::load_or_create(dir.path(), 0).expect("reload");
        assert_eq!(reloaded, metadata);
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
