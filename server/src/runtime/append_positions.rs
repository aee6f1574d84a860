//! Where each O_DIRECT partition of this core will write its next batch, so
//! that a connection reading a large produce frame can place the frame's
//! first batch at an address congruent to that file position (modulo the
//! O_DIRECT alignment): the log then writes the batch from where it lies
//! instead of copying it (`ringlog_engine::direct_layout`).
//!
//! A prediction decides only where bytes lie in memory, never what is
//! written: a wrong one costs the copy every write made before. So the
//! bookkeeping stays simple:
//! - after each produce it handles, the shard records the active segment's
//!   append position, or forgets the partition when it is not written with
//!   O_DIRECT;
//! - a produce handler on the same core adds the bytes it hands the shard,
//!   and the shard takes them off once handled, so a frame read while earlier
//!   ones still wait in the shard's queue is predicted after them.
//!
//! Thread-local: a connection predicts only for its own core's partitions
//! (the core a client reaches as the partition's leader).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::runtime::messages::TopicPartition;

#[derive(Debug, Default, Clone, Copy)]
struct Position {
    /// The active segment's append position after the last handled produce.
    appended_bytes: u64,
    /// Record-set bytes handed to the shard by this core's handlers and not
    /// yet handled.
    queued_bytes: u64,
}

thread_local! {
    static POSITIONS: RefCell<HashMap<Arc<str>, HashMap<i32, Position>>> = RefCell::new(HashMap::new());
}

/// The file position a record set produced to `topic`/`partition` now would
/// start at, if this core writes that partition with O_DIRECT.
pub fn predicted(topic: &str, partition: i32) -> Option<u64> {
    POSITIONS.with(|positions| {
        let position = *positions.borrow().get(topic)?.get(&partition)?;
        Some(position.appended_bytes + position.queued_bytes)
    })
}

/// A handler hands `bytes` of record set for `tp` to its shard; true when
/// this core tracks `tp` (the shard then takes them off once handled).
pub fn note_queued(tp: &TopicPartition, bytes: u64) -> bool {
    POSITIONS.with(|positions| {
        let mut positions = positions.borrow_mut();
        let Some(position) = positions.get_mut(&tp.topic).and_then(|p| p.get_mut(&tp.partition)) else {
            return false;
        };
        position.queued_bytes += bytes;
        true
    })
}

/// The shard handled a produce for `tp` (`queued_bytes`: what a handler noted
/// for it); `append_position`: the log's [`direct_append_position`] now.
///
/// [`direct_append_position`]: ringlog_engine::PartitionLog::direct_append_position
pub fn note_handled(tp: &TopicPartition, queued_bytes: u64, append_position: Option<u64>) {
    POSITIONS.with(|positions| {
        let mut positions = positions.borrow_mut();
        let Some(appended_bytes) = append_position else {
            forget_in(&mut positions, tp);
            return;
        };
        let position = positions
            .entry(tp.topic.clone())
            .or_default()
            .entry(tp.partition)
            .or_default();
        position.appended_bytes = appended_bytes;
        position.queued_bytes = position.queued_bytes.saturating_sub(queued_bytes);
    });
}

/// `tp` left this core (deleted).
pub fn forget(tp: &TopicPartition) {
    POSITIONS.with(|positions| forget_in(&mut positions.borrow_mut(), tp));
}

fn forget_in(positions: &mut HashMap<Arc<str>, HashMap<i32, Position>>, tp: &TopicPartition) {
    if let Some(partitions) = positions.get_mut(&tp.topic) {
        partitions.remove(&tp.partition);
        if partitions.is_empty() {
            positions.remove(&tp.topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    #[test]
    fn a_prediction_counts_what_waits_in_the_shard_queue() {
        let a0 = tp("a", 0);
        assert_eq!(predicted("a", 0), None, "untracked");
        assert!(
            !note_queued(&a0, 100),
            "nothing to add to before the shard's first record"
        );
        note_handled(&a0, 0, Some(5_000));
        assert_eq!(predicted("a", 0), Some(5_000));
        assert!(note_queued(&a0, 1_000));
        assert!(note_queued(&a0, 2_000));
        assert_eq!(predicted("a", 0), Some(8_000), "after both queued record sets");
        note_handled(&a0, 1_000, Some(6_000));
        assert_eq!(predicted("a", 0), Some(8_000));
        note_handled(&a0, 2_000, Some(8_000));
        assert_eq!(predicted("a", 0), Some(8_000));
        assert_eq!(predicted("a", 1), None);
    }

    #[test]
    fn a_partition_not_written_with_o_direct_or_deleted_is_forgotten() {
        let b3 = tp("b", 3);
        note_handled(&b3, 0, Some(10));
        note_handled(&b3, 0, None);
        assert_eq!(predicted("b", 3), None);
        note_handled(&b3, 0, Some(10));
        forget(&b3);
        assert_eq!(predicted("b", 3), None);
        POSITIONS.with(|positions| assert!(!positions.borrow().contains_key("b")));
    }
}
