//! [`ShardObserver`]: how the node learns what applied entries changed, to publish it.
//!
//! The machine collects the vaults its applied entries touched (and whether they changed
//! the member registry or the vault placements) and reports them once per drain of the Raft group
//! ([`crate::ShardMachine::publish`], called from `StateMachine::drained`), before the
//! group answers its clients: so a client that got an answer finds the change in the next
//! read on this node, and a busy drain costs one read view per vault, not one per entry.

use std::collections::BTreeMap;
use std::sync::Arc;

use inferadb_protocols::VaultId;
use inferadb_storage::Database;
use inferadb_vault::{Vault, VaultRecord};

use crate::members::MemberRecord;
use crate::placements::Placement;

/// One vault's state after the entries just applied.
pub enum VaultChange<'a> {
    /// The vault exists (created, written, or given a schema, or just opened).
    Current {
        /// Its catalog record.
        record: VaultRecord,
        /// Its writer-side state (take a snapshot to publish it).
        vault: &'a Vault,
        /// Its database file.
        database: &'a Arc<Database>,
    },
    /// The vault was deleted.
    Removed {
        /// Its id.
        id: VaultId,
    },
    /// The vault exists but is out of service on this replica (its file could not be
    /// opened; see `ShardMachine::quarantined`).
    Unavailable {
        /// Its id.
        id: VaultId,
        /// Why.
        reason: String,
    },
}

/// Receives the machine's changes. Implementations must not block: they run inside the
/// Raft group's drain.
pub trait ShardObserver: Send {
    /// The vaults that changed since the last call, ascending by id. `membership` is true
    /// when a vault was created or deleted (the set of vaults changed).
    fn changed(&mut self, changes: Vec<VaultChange<'_>>, membership: bool);

    /// The whole member registry (see [`crate::members`]), after the entries just applied
    /// changed it (or a snapshot restored it, or the observer is new and the registry is
    /// not empty); called after [`Self::changed`] in the same publish. The default ignores
    /// it: only shard 0's observer has a registry to hear about.
    fn members_changed(&mut self, _members: &BTreeMap<u64, MemberRecord>) {}

    /// Every vault placement (see [`crate::placements`]), after the entries just applied
    /// changed them (or a snapshot restored them, or the observer is new and there are
    /// some); called after [`Self::members_changed`] in the same publish. The default
    /// ignores it: only shard 0's observer has placements to hear about.
    fn placements_changed(&mut self, _placements: &BTreeMap<VaultId, Placement>) {}
}

/// An observer that ignores every change (tests and tools that only apply).
pub struct NoObserver;

impl ShardObserver for NoObserver {
    fn changed(&mut self, _changes: Vec<VaultChange<'_>>, _membership: bool) {}
}
