//! Sockets: per-core listeners, connection framing and pipelining, and writing
//! responses (vectored writes for memory; `sendfile` or O_DIRECT reads for
//! file regions).

pub mod chunk_supply;
pub mod connection;
pub mod direct_read;
pub mod frame_pool;
pub mod listener;
pub mod sendfile;
