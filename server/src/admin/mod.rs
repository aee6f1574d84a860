//! Admin commands of the `ringlog` binary that talk to a running broker over
//! the Kafka protocol (so they also work against other Kafka-compatible brokers).

pub mod client;
pub mod group;
