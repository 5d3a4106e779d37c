//! The deterministic cluster simulator: N raft nodes over the durable log on crashable
//! in-memory directories, a simulated network with partitions, loss, duplication,
//! reordering and delay, simulated clients, and invariant checkers — all driven from one
//! seed on simulated time, so the same seed always gives the same run.
//!
//! - [`scheduler`]: the seeded event queue, the RNG and the trace hash.
//! - [`network`]: the simulated `Transport` and network model.
//! - [`machine`]: the replicated ledger with a state root per index.
//! - [`shard`]: the shard replica each node applies to (`ShardMachine` over memory).
//! - [`node`]: a simulated node (raft group, durable log, crash and restart).
//! - [`workload`]: clients and their history.
//! - [`checker`]: the invariants.
//! - [`linearizability`]: the history checker for one register.
//! - [`regressions`]: named seeds every bug the simulator found becomes.
//! - [`shrink`]: simpler configurations that still fail the same way.
//! - [`config`]: run parameters, fault kinds and the injectable bugs.
//! - [`sim`]: the simulation loop.

pub mod checker;
pub mod config;
pub mod linearizability;
pub mod machine;
pub mod network;
pub mod node;
pub mod regressions;
pub mod scheduler;
pub mod shard;
pub mod shrink;
pub mod sim;
pub mod workload;
