//! The raft crate's test binary: the log stores (durable and in-memory, under injected
//! faults) and groups of raft cores driven message by message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod log_store;
mod review;
