//! Records of the internal topic `__consumer_offsets`, in Kafka's own format so
//! Kafka tools can read them:
//!
//! - key v1: version i16 = 1, group string, topic string, partition i32
//! - value v3: version i16 = 3, offset i64, leader epoch i32, metadata string,
//!   commit timestamp i64
//! - a null value (tombstone) deletes the key's commit.
//!
//! Strings are i16-length-prefixed UTF-8; everything big-endian. Keys of other
//! versions (v2: group metadata) are skipped on load.

use bytes::{Buf, BufMut, BytesMut};

use super::record_codec::{get_string, put_string};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
const OFFSET_KEY_VERSION: i16 = 1;
const OFFSET_VALUE_VERSION: i16 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One decoded record: a commit, or its deletion (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRecord {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed: Option<CommittedOffset>,
}

pub fn encode_key(group: &str, topic: &str, partition: i32) -> BytesMut {
    let mut key = BytesMut::with_capacity(8 + group.len() + topic.len());
    key.put_i16(OFFSET_KEY_VERSION);
    put_string(&mut key, group);
    put_string(&mut key, topic);
    key.put_i32(partition);
    key
}

pub fn encode_value(committed: &CommittedOffset) -> BytesMut {
    let mut value = BytesMut::with_capacity(26 + committed.metadata.len());
    value.put_i16(OFFSET_VALUE_VERSION);
    value.put_i64(committed.offset);
    value.put_i32(committed.leader_epoch);
    put_string(&mut value, &committed.metadata);
    value.put_i64(committed.commit_timestamp_ms);
    value
}

/// Decodes an offset-commit record; `None` for other record kinds or damage.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<OffsetRecord> {
    let mut key = key;
    if key.remaining() < 2 {
        return None;
    }
    let key_version = key.get_i16();
    if !(0..=1).contains(&key_version) {
        return None;
    }
    let group = get_string(&mut key)?;
    let topic = get_string(&mut key)?;
    if key.remaining() < 4 {
        return None;
    }
    let partition = key.get_i32();
    let committed = match value {
        None => None,
        Some(mut value) => {
            if value.remaining() < 10 {
                return None;
            }
            let version = value.get_i16();
            let offset = value.get_i64();
            let leader_epoch = if version >= 3 && value.remaining() >= 4 {
                value.get_i32()
            } else {
                -1
            };
            let metadata = get_string(&mut value)?;
            let commit_timestamp_ms = if value.remaining() >= 8 { value.get_i64() } else { -1 };
            Some(CommittedOffset {
                offset,
                leader_epoch,
                metadata,
                commit_timestamp_ms,
            })
        }
    };
    Some(OffsetRecord {
        group,
        topic,
        partition,
        committed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_records_round_trip() {
        let committed = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        let key = encode_key("group-a", "orders", 7);
        let value = encode_value(&committed);
        let record = decode(&key, Some(&value)).expect("decodes");
        assert_eq!(record.group, "group-a");
        assert_eq!(record.topic, "orders");
        assert_eq!(record.partition, 7);
        assert_eq!(record.committed, Some(committed));
        assert_eq!(decode(&key, None).expect("tombstone").committed, None);
        assert_eq!(decode(&key[..5], Some(&value)), None, "damaged key");
    }
}
