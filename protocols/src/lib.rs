//! Shared domain types (object and subject references, relationships, revisions) and the
//! mailbox protocol of every actor.
//!
//! This crate owns the vocabulary the other crates speak. It must never perform I/O, spawn
//! tasks or depend on tokio: it is pure data plus validation, so that the simulator, the
//! storage engine and the gateway can all share it.
