//! Sockets: per-core listeners, connection framing and pipelining, and writing
//! responses (vectored writes for memory, `sendfile` for file regions).

pub mod connection;
pub mod listener;
pub mod sendfile;
