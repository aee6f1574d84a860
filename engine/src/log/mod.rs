//! The commit log: segments, their indexes, and the per-partition log.

pub mod compaction;
pub mod index;
pub mod io_policy;
pub mod leader_epoch;
pub mod partition_log;
pub mod producer_state;
pub mod segment;
