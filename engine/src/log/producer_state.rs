//! Idempotent-producer state of one partition: for each producer id, its epoch
//! and its last [`BATCHES_PER_PRODUCER_MAX`] batches (sequence range and
//! offsets), so that a retried batch is recognised and answered with its
//! original offsets instead of being written twice.
//!
//! Invariants:
//! - For each producer, the remembered batches have consecutive sequence
//!   ranges (modulo i32 wrap-around) and increasing offsets.
//! - The table reflects exactly the batches appended up to `next_offset` of
//!   the log it belongs to (rebuilt from a snapshot plus the batches after it).
//!
//! Snapshot file `<offset:020>.snapshot`: magic u32, version u16, offset i64,
//! producer count u32, then per producer: id i64, epoch i16, first offset of
//! its open transaction i64 (-1: none), batch count u8,
//! and per batch: first_seq i32, last_seq i32, first_offset i64, last_offset
//! i64, max_timestamp i64; then the aborted transactions: count u32 and per
//! transaction producer id i64, first offset i64, abort marker offset i64;
//! then a CRC-32C of everything before it. Big-endian.

use std::collections::{HashMap, VecDeque};

use bytes::{Buf, BufMut};

use crate::batch::BatchHeader;

pub const BATCHES_PER_PRODUCER_MAX: usize = 5;
const SNAPSHOT_MAGIC: u32 = 0x524c_5053; // "RLPS"
const SNAPSHOT_VERSION: u16 = 2;
pub const SNAPSHOT_SUFFIX: &str = "snapshot";

/// Where one producer batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<ProducerBatch>,
    /// First offset of this producer's open transaction, if any.
    open_transaction_first_offset: Option<i64>,
}

/// An aborted transaction: `producer_id`'s records from `first_offset` up to
/// the abort marker at `last_offset` are to be skipped by read_committed readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// The outcome of checking a batch against the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not an idempotent batch, or the next one in sequence: append it.
    Append,
    /// A retry of a batch already in the log.
    Duplicate(ProducerBatch),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer {producer_id}: expected sequence {expected}, got {received}")]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
    #[error("producer {producer_id}: epoch {received} is older than the current {current}")]
    InvalidEpoch {
        producer_id: i64,
        current: i16,
        received: i16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendCheckError {
    #[error(transparent)]
    Sequence(SequenceError),
    #[error("a retried batch came with new batches in the same request")]
    DuplicateInBatchSet,
}

/// Last sequence of a batch, wrapping past i32::MAX to 0 as Kafka does.
pub fn last_sequence(header: &BatchHeader) -> i32 {
    let delta = header.last_offset_delta;
    if header.base_sequence > i32::MAX - delta {
        header.base_sequence - (i32::MAX - delta) - 1
    } else {
        header.base_sequence + delta
    }
}

fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
    /// `(first offset, producer id)` of every open transaction: its minimum is
    /// the last stable offset.
    open_transactions: std::collections::BTreeSet<(i64, i64)>,
    /// Aborted transactions, ordered by their abort marker's offset.
    aborted: Vec<AbortedTransaction>,
}

/// True when `producer_id`'s batch at `offset` belongs to one of `aborted`.
pub fn is_aborted_in(aborted: &[AbortedTransaction], producer_id: i64, offset: i64) -> bool {
    aborted
        .iter()
        .any(|a| a.producer_id == producer_id && a.first_offset <= offset && offset <= a.last_offset)
}

impl ProducerStateTable {
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// First offset of the oldest open transaction: nothing at or after it is
    /// stable yet.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.open_transactions.first().map(|(offset, _)| *offset)
    }

    /// Records a transaction marker (control batch) of `producer_id` at
    /// `marker_offset`; returns the transaction it aborts, if it aborts one.
    /// A marker with a newer epoch fences the producer's older epochs.
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        marker_offset: i64,
    ) -> Option<AbortedTransaction> {
        let entry = self.producers.entry(producer_id).or_insert(ProducerEntry {
            epoch,
            batches: VecDeque::new(),
            open_transaction_first_offset: None,
        });
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        let first_offset = entry.open_transaction_first_offset.take()?;
        self.open_transactions.remove(&(first_offset, producer_id));
        if commit {
            return None;
        }
        let aborted = AbortedTransaction {
            producer_id,
            first_offset,
            last_offset: marker_offset,
        };
        self.aborted.push(aborted);
        Some(aborted)
    }

    /// Forgets aborted transactions wholly below `log_start_offset` (retention).
    pub fn forget_before(&mut self, log_start_offset: i64) {
        self.aborted.retain(|a| a.last_offset >= log_start_offset);
    }

    /// Every aborted transaction the table knows, for work off the core.
    pub fn aborted_transactions(&self) -> Vec<AbortedTransaction> {
        self.aborted.clone()
    }

    /// True when `producer_id`'s batch at `offset` belongs to an aborted transaction.
    pub fn is_aborted(&self, producer_id: i64, offset: i64) -> bool {
        is_aborted_in(&self.aborted, producer_id, offset)
    }

    /// Aborted transactions overlapping `[from_offset, to_offset]`, in the
    /// order of their first offsets, as Fetch reports them.
    pub fn aborted_between(&self, from_offset: i64, to_offset: i64) -> Vec<AbortedTransaction> {
        let mut found: Vec<AbortedTransaction> = self
            .aborted
            .iter()
            .filter(|a| a.last_offset >= from_offset && a.first_offset <= to_offset)
            .copied()
            .collect();
        found.sort_by_key(|a| a.first_offset);
        found
    }

    /// The epoch this partition knows for `producer_id`.
    pub fn epoch_of(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|e| e.epoch)
    }

    /// Checks a batch (producer id, epoch, sequence) without changing the table.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        if header.producer_id < 0 || header.base_sequence < 0 {
            return Ok(SequenceCheck::Append);
        }
        let producer_id = header.producer_id;
        let Some(entry) = self.producers.get(&producer_id) else {
            // A producer this partition does not know (never seen, or its state
            // was removed with old segments): accepted at any sequence, as Kafka
            // 2.5+ does (KIP-360), so the producer is not stuck.
            return Ok(SequenceCheck::Append);
        };
        if header.producer_epoch < entry.epoch {
            return Err(SequenceError::InvalidEpoch {
                producer_id,
                current: entry.epoch,
                received: header.producer_epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            // A new epoch restarts the sequence.
            return if header.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    producer_id,
                    expected: 0,
                    received: header.base_sequence,
                })
            };
        }
        let last_seq = last_sequence(header);
        if let Some(original) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate(*original));
        }
        let expected = entry.batches.back().map_or(0, |b| next_sequence(b.last_seq));
        if header.base_sequence == expected {
            Ok(SequenceCheck::Append)
        } else {
            Err(SequenceError::OutOfOrder {
                producer_id,
                expected,
                received: header.base_sequence,
            })
        }
    }

    /// Checks every batch of one append in order, as if the earlier ones were
    /// already recorded. A lone duplicate batch is reported as such; a
    /// duplicate among several is refused (clients send one batch per
    /// partition and request).
    pub fn check_append(&self, headers: &[BatchHeader]) -> Result<SequenceCheck, AppendCheckError> {
        if let [only] = headers {
            return self.check(only).map_err(AppendCheckError::Sequence);
        }
        let mut overlay = Self::default();
        for header in headers {
            if let Some(entry) = self.producers.get(&header.producer_id) {
                overlay
                    .producers
                    .entry(header.producer_id)
                    .or_insert_with(|| entry.clone());
            }
        }
        let mut next_offset = 0i64;
        for header in headers {
            match overlay.check(header).map_err(AppendCheckError::Sequence)? {
                SequenceCheck::Duplicate(_) => return Err(AppendCheckError::DuplicateInBatchSet),
                SequenceCheck::Append => {
                    let placed = BatchHeader {
                        base_offset: next_offset,
                        ..*header
                    };
                    next_offset = placed.next_offset();
                    overlay.record(&placed);
                }
            }
        }
        Ok(SequenceCheck::Append)
    }

    /// Records a batch appended with its offsets assigned (`header.base_offset`).
    pub fn record(&mut self, header: &BatchHeader) {
        if header.producer_id < 0 {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_insert(ProducerEntry {
            epoch: header.producer_epoch,
            batches: VecDeque::new(),
            open_transaction_first_offset: None,
        });
        if header.producer_epoch > entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if header.is_transactional() && entry.open_transaction_first_offset.is_none() {
            entry.open_transaction_first_offset = Some(header.base_offset);
            self.open_transactions.insert((header.base_offset, header.producer_id));
        }
        if header.base_sequence < 0 {
            return; // transactional offsets (TxnOffsetCommit) carry no sequence
        }
        let batch = ProducerBatch {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
        };
        if let Some(previous) = entry.batches.back() {
            debug_assert!(
                batch.first_offset > previous.last_offset,
                "producer batches out of offset order"
            );
        }
        entry.batches.push_back(batch);
        while entry.batches.len() > BATCHES_PER_PRODUCER_MAX {
            entry.batches.pop_front();
        }
    }

    pub fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(18 + self.producers.len() * 64);
        out.put_u32(SNAPSHOT_MAGIC);
        out.put_u16(SNAPSHOT_VERSION);
        out.put_i64(offset);
        out.put_u32(self.producers.len() as u32);
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let entry = &self.producers[id];
            out.put_i64(*id);
            out.put_i16(entry.epoch);
            out.put_i64(entry.open_transaction_first_offset.unwrap_or(-1));
            out.put_u8(entry.batches.len() as u8);
            for batch in &entry.batches {
                out.put_i32(batch.first_seq);
                out.put_i32(batch.last_seq);
                out.put_i64(batch.first_offset);
                out.put_i64(batch.last_offset);
                out.put_i64(batch.max_timestamp);
            }
        }
        out.put_u32(self.aborted.len() as u32);
        for aborted in &self.aborted {
            out.put_i64(aborted.producer_id);
            out.put_i64(aborted.first_offset);
            out.put_i64(aborted.last_offset);
        }
        let crc = crc32c::crc32c(&out);
        out.put_u32(crc);
        out
    }

    /// Decodes a snapshot; `None` when it is damaged. Returns its offset too.
    pub fn decode_snapshot(bytes: &[u8]) -> Option<(i64, Self)> {
        let (body, crc) = bytes.split_at(bytes.len().checked_sub(4)?);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut body = body;
        if body.remaining() < 18 || body.get_u32() != SNAPSHOT_MAGIC || body.get_u16() != SNAPSHOT_VERSION {
            return None;
        }
        let offset = body.get_i64();
        let count = body.get_u32();
        let mut table = Self::default();
        for _ in 0..count {
            if body.remaining() < 19 {
                return None;
            }
            let id = body.get_i64();
            let epoch = body.get_i16();
            let open_transaction_first_offset = Some(body.get_i64()).filter(|o| *o >= 0);
            let batch_count = usize::from(body.get_u8());
            if batch_count > BATCHES_PER_PRODUCER_MAX || body.remaining() < batch_count * 32 {
                return None;
            }
            let batches = (0..batch_count)
                .map(|_| ProducerBatch {
                    first_seq: body.get_i32(),
                    last_seq: body.get_i32(),
                    first_offset: body.get_i64(),
                    last_offset: body.get_i64(),
                    max_timestamp: body.get_i64(),
                })
                .collect();
            if let Some(first_offset) = open_transaction_first_offset {
                table.open_transactions.insert((first_offset, id));
            }
            table.producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    open_transaction_first_offset,
                },
            );
        }
        if body.remaining() < 4 {
            return None;
        }
        let aborted_count = body.get_u32() as usize;
        if body.remaining() != aborted_count * 24 {
            return None;
        }
        table.aborted = (0..aborted_count)
            .map(|_| AbortedTransaction {
                producer_id: body.get_i64(),
                first_offset: body.get_i64(),
                last_offset: body.get_i64(),
            })
            .collect();
        Some((offset, table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{build_batch, stamp_batch, BatchHeader, BASE_SEQUENCE_POS, PRODUCER_EPOCH_POS, PRODUCER_ID_POS};

    /// A header of `count` records from `producer_id` at `epoch`, sequence `seq`,
    /// placed at `offset`.
    fn header(producer_id: i64, epoch: i16, seq: i32, count: usize, offset: i64) -> BatchHeader {
        let values: Vec<Vec<u8>> = (0..count).map(|i| vec![i as u8]).collect();
        let records: Vec<_> = values.iter().map(|v| (None, Some(&v[..]))).collect();
        let mut batch = build_batch(&records, 1);
        batch[PRODUCER_ID_POS..PRODUCER_ID_POS + 8].copy_from_slice(&producer_id.to_be_bytes());
        batch[PRODUCER_EPOCH_POS..PRODUCER_EPOCH_POS + 2].copy_from_slice(&epoch.to_be_bytes());
        batch[BASE_SEQUENCE_POS..BASE_SEQUENCE_POS + 4].copy_from_slice(&seq.to_be_bytes());
        stamp_batch(&mut batch, offset, 0, None);
        BatchHeader::parse(&batch).expect("header")
    }

    #[test]
    fn sequences_duplicates_and_epochs() {
        let mut table = ProducerStateTable::default();
        let first = header(7, 0, 0, 3, 100);
        assert_eq!(table.check(&first), Ok(SequenceCheck::Append));
        table.record(&first);
        let second = header(7, 0, 3, 2, 103);
        assert_eq!(table.check(&second), Ok(SequenceCheck::Append));
        table.record(&second);
        // A retry of the first batch (wherever the client thinks it goes).
        match table.check(&header(7, 0, 0, 3, 999)) {
            Ok(SequenceCheck::Duplicate(original)) => assert_eq!(original.first_offset, 100),
            other => panic!("expected a duplicate, got {other:?}"),
        }
        assert!(matches!(
            table.check(&header(7, 0, 9, 1, 0)),
            Err(SequenceError::OutOfOrder { expected: 5, .. })
        ));
        assert!(
            matches!(table.check(&header(-1, -1, 5, 1, 0)), Ok(SequenceCheck::Append)),
            "no producer id: not idempotent"
        );
        assert_eq!(
            table.check(&header(8, 0, 4, 1, 0)),
            Ok(SequenceCheck::Append),
            "unknown producer: accepted"
        );
        let bumped = header(7, 1, 0, 1, 105);
        assert_eq!(table.check(&bumped), Ok(SequenceCheck::Append));
        table.record(&bumped);
        assert!(matches!(
            table.check(&header(7, 0, 5, 1, 0)),
            Err(SequenceError::InvalidEpoch { current: 1, .. })
        ));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            table.record(&header(1, 0, i, 1, i64::from(i)));
        }
        assert!(matches!(
            table.check(&header(1, 0, 1, 1, 0)),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert!(matches!(
            table.check(&header(1, 0, 2, 1, 0)),
            Ok(SequenceCheck::Duplicate(_))
        ));
    }

    #[test]
    fn sequence_wraps_past_i32_max() {
        let mut table = ProducerStateTable::default();
        let near_end = header(3, 0, 0, 1, 0);
        table.record(&near_end);
        let mut wrapping = header(3, 0, i32::MAX - 1, 3, 1);
        assert_eq!(last_sequence(&wrapping), 0);
        wrapping.base_sequence = 1;
        assert_eq!(table.check(&wrapping), Ok(SequenceCheck::Append));
    }

    #[test]
    fn snapshot_round_trips_and_detects_damage() {
        let mut table = ProducerStateTable::default();
        table.record(&header(1, 2, 0, 4, 10));
        table.record(&header(9, 0, 0, 1, 20));
        let bytes = table.encode_snapshot(21);
        assert_eq!(ProducerStateTable::decode_snapshot(&bytes), Some((21, table)));
        let mut damaged = bytes.clone();
        damaged[20] ^= 1;
        assert_eq!(ProducerStateTable::decode_snapshot(&damaged), None);
        assert_eq!(ProducerStateTable::decode_snapshot(&bytes[..10]), None);
    }
}
