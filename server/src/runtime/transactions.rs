//! The transaction coordinator's steps that write: state records to
//! `__transaction_state` (on this core) and markers to every partition of the
//! transaction (on their owner cores). Runs as tasks on the core that owns the
//! transactional id; one transition at a time per id (`begin`/`finish`).
//!
//! Order of a commit or abort, as Kafka: write PrepareCommit/PrepareAbort
//! (the decision is durable), write the markers, write
//! CompleteCommit/CompleteAbort, answer. A crash after the decision is
//! finished at start (`complete_prepared`), so a transaction is either
//! committed or aborted everywhere.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use kafka_protocol::ResponseError;
use tokio::sync::oneshot;

use crate::coordinator::transaction::{self, InitDecision, TransactionCoordinator, TxnMetadata, TxnState};
use crate::runtime::messages::{ShardRequest, TopicPartition, TxnRequest};
use crate::runtime::shard::{now_ms, Shard};

/// Releases a transactional id's in-flight mark when the step ends, however.
struct InFlight {
    transactions: Rc<RefCell<TransactionCoordinator>>,
    transactional_id: String,
}

impl InFlight {
    fn begin(shard: &Rc<RefCell<Shard>>, transactional_id: &str) -> Result<Self, ResponseError> {
        let transactions = shard.borrow().transactions.clone();
        if !transactions.borrow_mut().begin(transactional_id) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(Self {
            transactions,
            transactional_id: transactional_id.to_string(),
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.transactions.borrow_mut().finish(&self.transactional_id);
    }
}

pub(crate) async fn handle(shard: Rc<RefCell<Shard>>, transactional_id: String, request: TxnRequest) {
    match request {
        TxnRequest::InitProducerId {
            timeout_ms,
            requested,
            reply,
        } => {
            let _ = reply.send(init_producer_id(&shard, &transactional_id, timeout_ms, requested).await);
        }
        TxnRequest::AddPartitions {
            producer_id,
            producer_epoch,
            partitions,
            reply,
        } => {
            let _ =
                reply.send(add_partitions(&shard, &transactional_id, producer_id, producer_epoch, partitions).await);
        }
        TxnRequest::End {
            producer_id,
            producer_epoch,
            commit,
            reply,
        } => {
            let _ = reply.send(end(&shard, &transactional_id, producer_id, producer_epoch, commit).await);
        }
        TxnRequest::Describe { reply } => {
            let described = shard.borrow().transactions.borrow().get(&transactional_id).cloned();
            let _ = reply.send(described);
        }
    }
}

async fn init_producer_id(
    shard: &Rc<RefCell<Shard>>,
    transactional_id: &str,
    timeout_ms: i32,
    requested: Option<(i64, i16)>,
) -> Result<(i64, i16), ResponseError> {
    let _in_flight = InFlight::begin(shard, transactional_id)?;
    let now = now_ms();
    let decision = shard
        .borrow()
        .transactions
        .borrow()
        .init(transactional_id, timeout_ms, requested, now);
    let next = match decision {
        InitDecision::Refuse(error) => return Err(error),
        InitDecision::NewProducer => {
            let broker = shard.borrow().broker.clone();
            let producer_id = broker.allocate_producer_id().await?;
            TxnMetadata {
                producer_id,
                producer_epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now,
            }
        }
        InitDecision::Bump(next) => next,
        InitDecision::AbortThenBump(aborting) => {
            carry_out(shard, transactional_id, aborting).await?;
            let done = shard.borrow().transactions.borrow().get(transactional_id).cloned();
            let done = done.ok_or(ResponseError::CoordinatorNotAvailable)?;
            return Ok((done.producer_id, done.producer_epoch));
        }
    };
    write_state(shard, transactional_id, &next).await?;
    Ok((next.producer_id, next.producer_epoch))
}

async fn add_partitions(
    shard: &Rc<RefCell<Shard>>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    partitions: Vec<(String, i32)>,
) -> Result<(), ResponseError> {
    let _in_flight = InFlight::begin(shard, transactional_id)?;
    let next = shard.borrow().transactions.borrow().add_partitions(
        transactional_id,
        producer_id,
        producer_epoch,
        &partitions,
        now_ms(),
    )?;
    write_state(shard, transactional_id, &next).await
}

async fn end(
    shard: &Rc<RefCell<Shard>>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
) -> Result<(), ResponseError> {
    let _in_flight = InFlight::begin(shard, transactional_id)?;
    let prepared =
        shard
            .borrow()
            .transactions
            .borrow()
            .end(transactional_id, producer_id, producer_epoch, commit, now_ms())?;
    match prepared {
        Some(prepared) => carry_out(shard, transactional_id, prepared).await,
        None => Ok(()),
    }
}

/// Aborts a transaction past `transaction.timeout.ms` (with a bumped epoch,
/// so the silent producer is fenced).
pub(crate) async fn abort_expired(shard: Rc<RefCell<Shard>>, transactional_id: String, aborting: TxnMetadata) {
    let Ok(_in_flight) = InFlight::begin(&shard, &transactional_id) else {
        return;
    };
    tracing::info!(transactional_id = %transactional_id, "aborting a transaction past its timeout");
    if let Err(error) = carry_out(&shard, &transactional_id, aborting).await {
        tracing::warn!(transactional_id = %transactional_id, ?error, "aborting an expired transaction failed");
    }
}

/// Finishes a commit or abort decided before a restart.
pub(crate) async fn complete_prepared(shard: Rc<RefCell<Shard>>, transactional_id: String, prepared: TxnMetadata) {
    let Ok(_in_flight) = InFlight::begin(&shard, &transactional_id) else {
        return;
    };
    tracing::info!(transactional_id = %transactional_id, state = prepared.state.name(), "completing a transaction decided before the restart");
    if let Err(error) = write_markers_and_complete(&shard, &transactional_id, &prepared).await {
        tracing::warn!(transactional_id = %transactional_id, ?error, "completing a transaction failed");
    }
}

/// Prepare → markers → Complete.
async fn carry_out(
    shard: &Rc<RefCell<Shard>>,
    transactional_id: &str,
    prepared: TxnMetadata,
) -> Result<(), ResponseError> {
    debug_assert!(matches!(
        prepared.state,
        TxnState::PrepareCommit | TxnState::PrepareAbort
    ));
    write_state(shard, transactional_id, &prepared).await?;
    write_markers_and_complete(shard, transactional_id, &prepared).await
}

async fn write_markers_and_complete(
    shard: &Rc<RefCell<Shard>>,
    transactional_id: &str,
    prepared: &TxnMetadata,
) -> Result<(), ResponseError> {
    let commit = prepared.state == TxnState::PrepareCommit;
    write_markers(shard, prepared, commit).await?;
    write_state(shard, transactional_id, &transaction::completed(prepared, now_ms())).await
}

/// Writes `txn` to the id's `__transaction_state` partition (this core) and,
/// once durable, applies it.
async fn write_state(
    shard: &Rc<RefCell<Shard>>,
    transactional_id: &str,
    txn: &TxnMetadata,
) -> Result<(), ResponseError> {
    let key = transaction::encode_key(transactional_id);
    let value = transaction::encode_value(txn);
    let batch = ringlog_engine::batch::build_batch(&[(Some(&key[..]), Some(&value[..]))], now_ms());
    let durable = {
        let mut shard = shard.borrow_mut();
        let tp = shard.broker.transaction_partition(transactional_id);
        shard.append_internal(&tp, batch)?
    };
    match durable.await {
        Ok(Ok(())) => {
            let transactions = shard.borrow().transactions.clone();
            transactions
                .borrow_mut()
                .apply(transactional_id.to_string(), Some(txn.clone()));
            Ok(())
        }
        _ => Err(ResponseError::CoordinatorNotAvailable),
    }
}

/// Sends each owner core the transaction's partitions it owns; waits for all.
async fn write_markers(shard: &Rc<RefCell<Shard>>, txn: &TxnMetadata, commit: bool) -> Result<(), ResponseError> {
    let broker = shard.borrow().broker.clone();
    let mut by_core: BTreeMap<usize, Vec<TopicPartition>> = BTreeMap::new();
    for (topic, partition) in &txn.partitions {
        let tp = TopicPartition {
            topic: topic.as_str().into(),
            partition: *partition,
        };
        by_core.entry(broker.owner_core(&tp)).or_default().push(tp);
    }
    let mut replies = Vec::with_capacity(by_core.len());
    for (core, partitions) in by_core {
        let (reply, receiver) = oneshot::channel();
        broker.send_to_core(
            core,
            ShardRequest::WriteMarkers {
                partitions,
                producer_id: txn.producer_id,
                producer_epoch: txn.producer_epoch,
                commit,
                reply,
            },
        );
        replies.push(receiver);
    }
    for reply in replies {
        reply.await.unwrap_or(Err(ResponseError::CoordinatorNotAvailable))?;
    }
    Ok(())
}
