//! The shard's test binary: encodings (round trips and rejections), determinism across
//! replicas, write groups, snapshot and restore, idempotent re-application after crashes, leases for
//! singleton jobs, the cluster's member registry, vault placement, purging expired
//! relationships fenced by a lease or by the highest epoch seen, sticky quarantine of vaults
//! whose file failed to open, and a Raft trio of shard machines.

// Helpers outside #[test] functions unwrap too: a test's failure is its panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod determinism;
mod encoding;
mod group;
mod lease;
mod members;
mod placement;
mod purge;
mod quarantine;
mod raft_trio;
mod restart;
mod snapshot;
