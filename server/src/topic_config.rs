//! Topic configs: Kafka's names, the broker setting that gives each one's
//! default, and how each value is checked. The one table every user of topic
//! configs reads: CreateTopics, the alter APIs, DescribeConfigs and the
//! resolution of a partition's settings.
//!
//! Invariant: a value stored in metadata has passed [`validate`].

use std::collections::BTreeMap;

use crate::config::{BrokerConfig, TimestampType};
use crate::metadata::TopicMetadata;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Long {
        min: i64,
    },
    Ratio,
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these.
    ListOf(&'static [&'static str]),
    SegmentBytes,
}

pub struct TopicConfig {
    pub name: &'static str,
    pub broker_key: &'static str,
    pub kind: Kind,
}

pub const COMPRESSION_TYPES: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];

pub const TOPIC_CONFIGS: &[TopicConfig] = &[
    TopicConfig {
        name: "cleanup.policy",
        broker_key: "log.cleanup.policy",
        kind: Kind::ListOf(&["delete", "compact"]),
    },
    TopicConfig {
        name: "compression.type",
        broker_key: "compression.type",
        kind: Kind::OneOf(COMPRESSION_TYPES),
    },
    TopicConfig {
        name: "delete.retention.ms",
        broker_key: "log.cleaner.delete.retention.ms",
        kind: Kind::Long { min: 0 },
    },
    TopicConfig {
        name: "max.compaction.lag.ms",
        broker_key: "log.cleaner.max.compaction.lag.ms",
        kind: Kind::Long { min: 1 },
    },
    TopicConfig {
        name: "max.message.bytes",
        broker_key: "message.max.bytes",
        kind: Kind::Long { min: 0 },
    },
    TopicConfig {
        name: "message.timestamp.type",
        broker_key: "log.message.timestamp.type",
        kind: Kind::OneOf(&["CreateTime", "LogAppendTime"]),
    },
    TopicConfig {
        name: "min.cleanable.dirty.ratio",
        broker_key: "log.cleaner.min.cleanable.ratio",
        kind: Kind::Ratio,
    },
    TopicConfig {
        name: "min.compaction.lag.ms",
        broker_key: "log.cleaner.min.compaction.lag.ms",
        kind: Kind::Long { min: 0 },
    },
    TopicConfig {
        name: "retention.bytes",
        broker_key: "log.retention.bytes",
        kind: Kind::Long { min: -1 },
    },
    TopicConfig {
        name: "retention.ms",
        broker_key: "log.retention.ms",
        kind: Kind::Long { min: -1 },
    },
    TopicConfig {
        name: "segment.bytes",
        broker_key: "log.segment.bytes",
        kind: Kind::SegmentBytes,
    },
    TopicConfig {
        name: "segment.ms",
        broker_key: "log.roll.ms",
        kind: Kind::Long { min: 1 },
    },
];

pub fn find(name: &str) -> Option<&'static TopicConfig> {
    TOPIC_CONFIGS.iter().find(|c| c.name == name)
}

/// Checks `value` for topic config `name`; the error names the key.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let config = find(name).ok_or_else(|| format!("unknown topic config {name:?}"))?;
    let invalid = |reason: String| format!("invalid value {value:?} for {name}: {reason}");
    match config.kind {
        Kind::Long { min } => match value.trim().parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            Ok(_) => Err(invalid(format!("must be at least {min}"))),
            Err(_) => Err(invalid("not an integer".into())),
        },
        Kind::Ratio => match value.trim().parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(()),
            _ => Err(invalid("must be a number within 0..1".into())),
        },
        Kind::OneOf(allowed) => {
            if allowed.contains(&value.trim()) {
                Ok(())
            } else {
                Err(invalid(format!("must be one of {}", allowed.join(", "))))
            }
        }
        Kind::ListOf(allowed) => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            if !items.is_empty() && items.iter().all(|i| allowed.contains(i)) {
                Ok(())
            } else {
                Err(invalid(format!("must be a list of {}", allowed.join(", "))))
            }
        }
        Kind::SegmentBytes => crate::config::parse_segment_bytes(name, value)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

/// Where a config's effective value comes from (DescribeConfigs' sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    TopicOverride = 1,
    BrokerSetting = 4,
    Default = 5,
}

/// A config's effective value for a topic, with its source and the broker
/// setting behind it.
pub struct Effective {
    pub value: String,
    pub source: Source,
    pub broker_value: String,
    pub broker_source: Source,
}

pub fn effective(config: &TopicConfig, topic_configs: &BTreeMap<String, String>, broker: &BrokerConfig) -> Effective {
    let broker_value = broker.value(config.broker_key).to_string();
    let broker_source = if broker.is_explicit(config.broker_key) {
        Source::BrokerSetting
    } else {
        Source::Default
    };
    match topic_configs.get(config.name) {
        Some(value) => Effective {
            value: value.clone(),
            source: Source::TopicOverride,
            broker_value,
            broker_source,
        },
        None => Effective {
            value: broker_value.clone(),
            source: broker_source,
            broker_value,
            broker_source,
        },
    }
}

/// How a topic's partitions store their batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Keep the producer's codec.
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    fn parse(text: &str) -> Self {
        match text {
            "uncompressed" => Self::Uncompressed,
            "gzip" => Self::Gzip,
            "snappy" => Self::Snappy,
            "lz4" => Self::Lz4,
            "zstd" => Self::Zstd,
            _ => Self::Producer,
        }
    }
}

/// Per-topic settings resolved against broker defaults.
#[derive(Debug, Clone)]
pub struct TopicSettings {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub max_message_bytes: usize,
    pub timestamp_type: TimestampType,
    /// -1: no limit.
    pub retention_ms: i64,
    /// -1: no limit.
    pub retention_bytes: i64,
    pub cleanup_delete: bool,
    pub cleanup_compact: bool,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    pub compression: Compression,
}

impl TopicSettings {
    pub fn compaction_policy(&self) -> ringlog_engine::log::compaction::CompactionPolicy {
        ringlog_engine::log::compaction::CompactionPolicy {
            min_compaction_lag_ms: self.min_compaction_lag_ms,
            max_compaction_lag_ms: self.max_compaction_lag_ms,
            delete_retention_ms: self.delete_retention_ms,
            min_cleanable_dirty_ratio: self.min_cleanable_dirty_ratio,
        }
    }

    pub fn resolve(topic: &TopicMetadata, broker: &BrokerConfig) -> Self {
        let value = |name: &str| match find(name) {
            Some(config) => effective(config, &topic.configs, broker).value,
            None => unreachable!("{name} is in TOPIC_CONFIGS"),
        };
        let long = |name: &str, fallback: i64| value(name).trim().parse().unwrap_or(fallback);
        let policy = value("cleanup.policy");
        Self {
            segment_bytes: long("segment.bytes", 1 << 30) as u64,
            segment_ms: long("segment.ms", 604_800_000),
            max_message_bytes: long("max.message.bytes", 1_048_588).max(0) as usize,
            timestamp_type: value("message.timestamp.type")
                .parse()
                .unwrap_or(TimestampType::CreateTime),
            retention_ms: long("retention.ms", 604_800_000),
            retention_bytes: long("retention.bytes", -1),
            cleanup_delete: policy.split(',').any(|p| p.trim() == "delete"),
            cleanup_compact: policy.split(',').any(|p| p.trim() == "compact"),
            min_compaction_lag_ms: long("min.compaction.lag.ms", 0),
            max_compaction_lag_ms: long("max.compaction.lag.ms", i64::MAX),
            delete_retention_ms: long("delete.retention.ms", 86_400_000),
            min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio").trim().parse().unwrap_or(0.5),
            compression: Compression::parse(value("compression.type").trim()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_and_errors_name_the_key() {
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-2")
            .expect_err("refused")
            .contains("retention.ms"));
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("compression.type", "zstd").is_ok());
        assert!(validate("compression.type", "brotli").is_err());
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("segment.bytes", "10").is_err());
        assert!(validate("no.such.config", "1").is_err());
    }

    #[test]
    fn topic_overrides_win_over_broker_defaults() {
        let broker = BrokerConfig::load(None, &[("log.retention.ms".into(), "1000".into())]).expect("config");
        let mut topic = TopicMetadata::new("t", 1, 0, BTreeMap::new());
        let settings = TopicSettings::resolve(&topic, &broker);
        assert_eq!(settings.retention_ms, 1000);
        assert!(settings.cleanup_delete && !settings.cleanup_compact);
        topic.configs.insert("retention.ms".into(), "5".into());
        topic.configs.insert("cleanup.policy".into(), "compact".into());
        let settings = TopicSettings::resolve(&topic, &broker);
        assert_eq!(settings.retention_ms, 5);
        assert!(settings.cleanup_compact && !settings.cleanup_delete);
        let retention = find("retention.ms").expect("known");
        assert_eq!(
            effective(retention, &topic.configs, &broker).source,
            Source::TopicOverride
        );
        assert_eq!(
            effective(retention, &BTreeMap::new(), &broker).source,
            Source::BrokerSetting
        );
    }
}
