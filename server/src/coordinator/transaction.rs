//! Transaction coordinator state: one entry per transactional id, owned by the
//! core that owns its `__transaction_state` partition, and the decisions of
//! each request. The writes (state records, markers) are done by
//! `runtime::transactions`; this module is pure, so it is unit-tested alone.
//!
//! States as Kafka: Empty → Ongoing (partitions added) → PrepareCommit or
//! PrepareAbort (decided, markers being written) → CompleteCommit or
//! CompleteAbort → Ongoing again with the next transaction.
//!
//! Invariants:
//! - A transactional id has one producer id at a time; a request naming
//!   another gets INVALID_PRODUCER_ID_MAPPING, an older epoch
//!   INVALID_PRODUCER_EPOCH (the producer is fenced).
//! - While a transition is being written (`in_flight`), other requests for the
//!   id get CONCURRENT_TRANSACTIONS, which clients retry.
//!
//! Record format (Kafka's): key = version i16 (0), transactional id string;
//! value = version i16 (0), producer id i64, producer epoch i16, timeout i32,
//! state i8, partitions (array of topic string + array of i32), last update
//! i64, start time i64. Strings i16-length-prefixed, arrays i32-counted.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::{Buf, BufMut, BytesMut};

use super::record_codec::{get_string, put_string};
use kafka_protocol::ResponseError;

pub const TRANSACTION_TOPIC: &str = "__transaction_state";
const RECORD_VERSION: i16 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    const ALL: [TxnState; 6] = [
        Self::Empty,
        Self::Ongoing,
        Self::PrepareCommit,
        Self::PrepareAbort,
        Self::CompleteCommit,
        Self::CompleteAbort,
    ];

    fn code(self) -> i8 {
        Self::ALL.iter().position(|s| *s == self).map_or(0, |i| i as i8)
    }

    fn from_code(code: i8) -> Option<Self> {
        Self::ALL.get(usize::try_from(code).ok()?).copied()
    }

    /// Kafka's names, as DescribeTransactions and ListTransactions report them.
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
        }
    }

    fn is_prepare(self) -> bool {
        matches!(self, Self::PrepareCommit | Self::PrepareAbort)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub start_ms: i64,
    pub last_update_ms: i64,
}

pub fn encode_key(transactional_id: &str) -> BytesMut {
    let mut key = BytesMut::new();
    key.put_i16(RECORD_VERSION);
    put_string(&mut key, transactional_id);
    key
}

pub fn encode_value(txn: &TxnMetadata) -> BytesMut {
    let mut value = BytesMut::new();
    value.put_i16(RECORD_VERSION);
    value.put_i64(txn.producer_id);
    value.put_i16(txn.producer_epoch);
    value.put_i32(txn.timeout_ms);
    value.put_i8(txn.state.code());
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &txn.partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    value.put_i32(by_topic.len() as i32);
    for (topic, partitions) in by_topic {
        put_string(&mut value, topic);
        value.put_i32(partitions.len() as i32);
        for partition in partitions {
            value.put_i32(partition);
        }
    }
    value.put_i64(txn.last_update_ms);
    value.put_i64(txn.start_ms);
    value
}

/// Decodes a record: the transactional id and its state (`None`: deleted).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<(String, Option<TxnMetadata>)> {
    let mut key = key;
    if key.remaining() < 2 || key.get_i16() != RECORD_VERSION {
        return None;
    }
    let transactional_id = get_string(&mut key)?;
    let Some(mut value) = value else {
        return Some((transactional_id, None));
    };
    if value.remaining() < 2 + 8 + 2 + 4 + 1 + 4 || value.get_i16() != RECORD_VERSION {
        return None;
    }
    let producer_id = value.get_i64();
    let producer_epoch = value.get_i16();
    let timeout_ms = value.get_i32();
    let state = TxnState::from_code(value.get_i8())?;
    let topics = value.get_i32();
    let mut partitions = BTreeSet::new();
    for _ in 0..topics.max(0) {
        let topic = get_string(&mut value)?;
        if value.remaining() < 4 {
            return None;
        }
        for _ in 0..value.get_i32().max(0) {
            if value.remaining() < 4 {
                return None;
            }
            partitions.insert((topic.clone(), value.get_i32()));
        }
    }
    if value.remaining() < 16 {
        return None;
    }
    let last_update_ms = value.get_i64();
    let start_ms = value.get_i64();
    Some((
        transactional_id,
        Some(TxnMetadata {
            producer_id,
            producer_epoch,
            timeout_ms,
            state,
            partitions,
            start_ms,
            last_update_ms,
        }),
    ))
}

/// What InitProducerId must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitDecision {
    Refuse(ResponseError),
    /// A transactional id never seen: allocate a producer id, epoch 0.
    NewProducer,
    /// Write `next` (Empty, epoch bumped) and answer with it.
    Bump(TxnMetadata),
    /// A transaction is open: abort it with the bumped epoch first (fencing
    /// the old producer), then bump.
    AbortThenBump(TxnMetadata),
}

#[derive(Default)]
pub struct TransactionCoordinator {
    transactions: HashMap<String, TxnMetadata>,
    in_flight: HashSet<String>,
}

impl TransactionCoordinator {
    pub fn get(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.transactions.get(transactional_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &TxnMetadata)> {
        self.transactions.iter()
    }

    /// Applies a durable `__transaction_state` record.
    pub fn apply(&mut self, transactional_id: String, txn: Option<TxnMetadata>) {
        match txn {
            Some(txn) => {
                self.transactions.insert(transactional_id, txn);
            }
            None => {
                self.transactions.remove(&transactional_id);
            }
        }
    }

    /// Marks a multi-step transition as running; false if one already is.
    pub fn begin(&mut self, transactional_id: &str) -> bool {
        self.in_flight.insert(transactional_id.to_string())
    }

    pub fn finish(&mut self, transactional_id: &str) {
        self.in_flight.remove(transactional_id);
    }

    /// A decided transaction whose markers are not all written yet. (Requests
    /// racing a transition are refused earlier, by `begin`.)
    fn busy(&self, transactional_id: &str) -> bool {
        self.transactions
            .get(transactional_id)
            .is_some_and(|t| t.state.is_prepare())
    }

    /// Transactions decided but not completed (after a restart).
    pub fn prepared(&self) -> Vec<(String, TxnMetadata)> {
        self.transactions
            .iter()
            .filter(|(_, t)| t.state.is_prepare())
            .map(|(id, t)| (id.clone(), t.clone()))
            .collect()
    }

    /// Checks that `producer_id`/`producer_epoch` is the id's current producer.
    fn check_producer(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&TxnMetadata, ResponseError> {
        let txn = self
            .transactions
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if txn.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if producer_epoch != txn.producer_epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if self.busy(transactional_id) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(txn)
    }

    pub fn init(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        requested: Option<(i64, i16)>,
        now_ms: i64,
    ) -> InitDecision {
        if self.busy(transactional_id) {
            return InitDecision::Refuse(ResponseError::ConcurrentTransactions);
        }
        let Some(current) = self.transactions.get(transactional_id) else {
            return InitDecision::NewProducer;
        };
        // KIP-360: a producer naming itself must be the current one.
        if let Some((producer_id, epoch)) = requested {
            if producer_id != current.producer_id || epoch != current.producer_epoch {
                return InitDecision::Refuse(ResponseError::InvalidProducerEpoch);
            }
        }
        if current.producer_epoch >= i16::MAX - 1 {
            // Epochs exhausted: a fresh producer id.
            return InitDecision::NewProducer;
        }
        let bumped = TxnMetadata {
            producer_epoch: current.producer_epoch + 1,
            timeout_ms,
            last_update_ms: now_ms,
            ..current.clone()
        };
        if current.state == TxnState::Ongoing {
            InitDecision::AbortThenBump(TxnMetadata {
                state: TxnState::PrepareAbort,
                ..bumped
            })
        } else {
            InitDecision::Bump(TxnMetadata {
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                ..bumped
            })
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the state to write.
    pub fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Result<TxnMetadata, ResponseError> {
        let current = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        let mut next = current.clone();
        if next.state != TxnState::Ongoing {
            next.state = TxnState::Ongoing;
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now_ms;
        Ok(next)
    }

    /// EndTxn: `Ok(Some(prepare))` to write and carry out, `Ok(None)` when
    /// the same decision was already completed (a retry).
    pub fn end(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, ResponseError> {
        let current = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        match (current.state, commit) {
            (TxnState::Ongoing, _) => Ok(Some(TxnMetadata {
                state: if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                },
                last_update_ms: now_ms,
                ..current.clone()
            })),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Open transactions past their timeout, each as the PrepareAbort (with a
    /// bumped epoch, fencing the producer) to carry out.
    pub fn expired(&self, now_ms: i64) -> Vec<(String, TxnMetadata)> {
        self.transactions
            .iter()
            .filter(|(id, txn)| {
                txn.state == TxnState::Ongoing
                    && !self.in_flight.contains(*id)
                    && now_ms - txn.start_ms > i64::from(txn.timeout_ms)
                    && txn.producer_epoch < i16::MAX - 1
            })
            .map(|(id, txn)| {
                (
                    id.clone(),
                    TxnMetadata {
                        state: TxnState::PrepareAbort,
                        producer_epoch: txn.producer_epoch + 1,
                        last_update_ms: now_ms,
                        ..txn.clone()
                    },
                )
            })
            .collect()
    }
}

/// The state after a Prepare* transition's markers are all written.
pub fn completed(prepared: &TxnMetadata, now_ms: i64) -> TxnMetadata {
    TxnMetadata {
        state: match prepared.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        },
        partitions: BTreeSet::new(),
        last_update_ms: now_ms,
        ..prepared.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty(producer_id: i64, epoch: i16) -> TxnMetadata {
        TxnMetadata {
            producer_id,
            producer_epoch: epoch,
            timeout_ms: 1_000,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: 0,
            last_update_ms: 0,
        }
    }

    #[test]
    fn records_round_trip() {
        let mut txn = empty(42, 3);
        txn.state = TxnState::Ongoing;
        txn.partitions = [("a".to_string(), 1), ("a".to_string(), 2), ("b".to_string(), 0)].into();
        let (id, decoded) = decode(&encode_key("tx-1"), Some(&encode_value(&txn))).expect("decodes");
        assert_eq!(id, "tx-1");
        assert_eq!(decoded, Some(txn));
        assert_eq!(decode(&encode_key("tx-1"), None), Some(("tx-1".to_string(), None)));
    }

    #[test]
    fn a_transaction_goes_through_its_states() {
        let mut coordinator = TransactionCoordinator::default();
        assert_eq!(coordinator.init("t", 1_000, None, 0), InitDecision::NewProducer);
        coordinator.apply("t".into(), Some(empty(7, 0)));
        let ongoing = coordinator
            .add_partitions("t", 7, 0, &[("x".into(), 0)], 10)
            .expect("added");
        assert_eq!((ongoing.state, ongoing.start_ms), (TxnState::Ongoing, 10));
        coordinator.apply("t".into(), Some(ongoing));
        assert_eq!(
            coordinator.add_partitions("t", 8, 0, &[], 10),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        let prepare = coordinator.end("t", 7, 0, true, 20).expect("ok").expect("to do");
        assert_eq!(prepare.state, TxnState::PrepareCommit);
        coordinator.apply("t".into(), Some(prepare.clone()));
        assert_eq!(
            coordinator.end("t", 7, 0, true, 20),
            Err(ResponseError::ConcurrentTransactions)
        );
        coordinator.apply("t".into(), Some(completed(&prepare, 30)));
        assert_eq!(coordinator.end("t", 7, 0, true, 40), Ok(None), "a retried commit");
        assert_eq!(
            coordinator.end("t", 7, 0, false, 40),
            Err(ResponseError::InvalidTxnState)
        );
    }

    #[test]
    fn a_second_producer_fences_the_first() {
        let mut coordinator = TransactionCoordinator::default();
        let mut ongoing = empty(7, 0);
        ongoing.state = TxnState::Ongoing;
        coordinator.apply("t".into(), Some(ongoing));
        let InitDecision::AbortThenBump(aborting) = coordinator.init("t", 1_000, None, 5) else {
            panic!("an open transaction is aborted first");
        };
        assert_eq!((aborting.state, aborting.producer_epoch), (TxnState::PrepareAbort, 1));
        coordinator.apply("t".into(), Some(completed(&aborting, 6)));
        assert_eq!(
            coordinator.end("t", 7, 0, true, 7),
            Err(ResponseError::InvalidProducerEpoch),
            "zombie fenced"
        );
    }

    #[test]
    fn overdue_transactions_expire_with_a_bumped_epoch() {
        let mut coordinator = TransactionCoordinator::default();
        let mut ongoing = empty(7, 2);
        ongoing.state = TxnState::Ongoing;
        ongoing.start_ms = 100;
        coordinator.apply("t".into(), Some(ongoing));
        assert!(coordinator.expired(1_000).is_empty());
        let expired = coordinator.expired(1_101);
        assert_eq!(expired.len(), 1);
        assert_eq!(
            (expired[0].1.state, expired[0].1.producer_epoch),
            (TxnState::PrepareAbort, 3)
        );
    }
}
