//! ringlog's storage engine: a per-partition append-only commit log of Kafka
//! record batches (v2), stored verbatim in segments with offset and time indexes.
//!
//! What the engine promises its callers:
//! - A batch appended is assigned offsets at once and becomes readable (moves
//!   the high watermark) only when written, and fsynced if the flush policy
//!   asks; an acknowledgement awaited through [`PartitionLog::wait_durable`]
//!   therefore means "on disk under the chosen policy".
//! - Reads return whole batches exactly as they were appended (plus the
//!   broker-stamped offset and epoch), as memory chunks or file regions for
//!   `sendfile`; the engine never re-encodes a batch.
//! - After a crash, recovery keeps every batch whose length and CRC are intact
//!   and truncates the first torn one and everything after it.
//!
//! The engine knows nothing of Kafka API keys, sockets or other cores: each
//! [`PartitionLog`] is owned by one thread.

pub mod batch;
pub mod cache;
pub mod compression;
pub mod direct_layout;
pub mod error;
pub mod fs_offload;
pub mod fuzzing;
pub mod io;
pub mod limits;
pub mod log;
pub mod notify;
pub mod stats;

pub use cache::{BatchCache, PartitionKey};
pub use error::{LogError, Result};
pub use io::IoMode;
pub use log::io_policy::IoPolicy;
pub use log::partition_log::{
    AppendResult, FileRegion, Isolation, LogConfig, LogOffsets, PartitionLog, ReadChunk, ReadResult, SharedLog,
    WriteFailed,
};
