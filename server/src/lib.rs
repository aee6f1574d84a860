//! ringlog's broker as a library: the `ringlog` binary (`main.rs`) is its
//! command line; the fuzz targets (`tests/fuzz`) decode requests through it.

pub mod admin;
pub mod broker;
pub mod config;
pub mod coordinator;
pub mod handlers;
pub mod metadata;
pub mod metrics;
pub mod net;
pub mod nodes;
pub mod protocol;
pub mod runtime;
pub mod topic_config;
