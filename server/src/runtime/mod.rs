//! The thread-per-core runtime: one pinned thread per core, each with its own
//! io_uring event loop; cores exchange only the messages in [`messages`].

pub mod append_positions;
pub mod controller;
pub mod drain;
pub mod messages;
pub mod router;
pub mod shard;
pub mod transactions;
