//! Raft groups for InferaDB, on raft-rs (TiKV's deterministic consensus core).
//!
//! This crate owns everything around the `RawNode` that an integration must get right: the
//! durable Raft log (`raft::Storage` over a segmented, checksummed, append-only file behind the
//! [`io::LogIo`] seam), the Ready loop as a pure, deterministic core ([`core`]), seeded
//! election timeouts, and the canaries the simulator uses to prove its checkers can fail. It
//! must never read the clock, draw OS randomness or touch files except through its seams, so
//! the simulator can drive whole clusters from a seed.
//!
//! - [`store`]: [`store::LogStore`], what the Ready loop needs from a log store.
//! - [`io`] and [`log`]: the `LogIo` seam and the durable segmented log.
//! - [`memory_store`]: an in-memory `LogStore` (tests, and the reference for the durable one).
//! - [`core`]: the raft group core: inputs in, effects out, in the order raft-rs requires
//!   (why raft-rs, the Ready order and the determinism fix: `docs/adr/0001-raft-rs.md`).
//! - [`group`]: [`group::RaftGroup`], a core joined to its state machine: clients are
//!   answered only once their entry is committed and applied.
//! - [`transport`]: [`transport::Transport`] and the versioned [`transport::PeerEnvelope`].
//! - [`logging`]: raft-rs's `slog` records bridged into `tracing`.

pub mod core;
pub mod group;
pub mod io;
pub mod log;
pub mod logging;
pub mod memory_store;
pub mod store;
pub mod transport;
