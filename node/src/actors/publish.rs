//! [`Publisher`]: the shard machine's observer on this node. It turns the vault changes of
//! each drain of the raft group into routes and snapshots in the node's
//! [`VaultDirectory`](inferadb_messages::VaultDirectory), tells the vault registry when
//! the set of vaults changed so it starts or stops vault actors, and hands member registry
//! changes to the transport's peer set.

use std::collections::BTreeMap;
use std::sync::Arc;

use inferadb_messages::{Mailbox, RegistryMsg, SnapshotHistory, VaultRoute};
use inferadb_protocols::VaultId;
use inferadb_shard::observer::{ShardObserver, VaultChange};
use inferadb_shard::{MemberRecord, Placement};
use inferadb_storage::Database;
use inferadb_vault::{VaultRecord, VaultSnapshot};
use tokio::sync::watch;

use crate::actors::shard::PeerDirectory;
use crate::context::NodeContext;

/// Publishes a shard's applied state on this node.
pub struct Publisher {
    context: Arc<NodeContext>,
    shard: u64,
    peers: Option<Arc<dyn PeerDirectory>>,
}

impl Publisher {
    /// A publisher of shard `shard`'s vaults into `context`'s vault directory, keeping
    /// `peers` (the transport's links) in line with the member registry.
    pub fn new(
        context: Arc<NodeContext>,
        shard: u64,
        peers: Option<Arc<dyn PeerDirectory>>,
    ) -> Publisher {
        Publisher {
            context,
            shard,
            peers,
        }
    }

    fn publish(&self, record: VaultRecord, snapshot: Arc<VaultSnapshot>, database: &Arc<Database>) {
        let id = record.id;
        if let Some(route) = self.context.vaults.get(id) {
            if Arc::ptr_eq(&route.database, database) {
                route.publisher.send_replace(Some(snapshot));
                return;
            }
            // A restored snapshot rebuilt the vault in a new file: the route must not keep
            // the old one. Readers waiting on the old channel see it close and retry.
        }
        let (sender, receiver) = watch::channel(Some(snapshot));
        let names = &self.context.names;
        let actor =
            self.context
                .actors
                .record(&names.vault(id), Some(&names.child("vaults")), "vault");
        self.context.vaults.insert(
            id,
            VaultRoute {
                record,
                shard: self.shard,
                mailbox: Mailbox::new(actor),
                snapshots: receiver,
                publisher: Arc::new(sender),
                history: SnapshotHistory::default(),
                database: Arc::clone(database),
            },
        );
    }

    /// Withdraws the route of a vault this replica cannot serve; its actor record says why.
    fn out_of_service(&self, id: VaultId, reason: String) {
        let names = &self.context.names;
        tracing::error!(vault = %id, %reason, "vault out of service on this node");
        self.context.vaults.remove(id);
        self.context
            .actors
            .record(&names.vault(id), Some(&names.child("vaults")), "vault")
            .failed_for_good(format!("its data file cannot be opened: {reason}"));
    }

    fn registry(&self) -> Mailbox<RegistryMsg> {
        let names = &self.context.names;
        Mailbox::new(self.context.actors.record(
            &names.child("vaults"),
            Some(&names.root()),
            "vault_registry",
        ))
    }
}

impl ShardObserver for Publisher {
    fn changed(&mut self, changes: Vec<VaultChange<'_>>, membership: bool) {
        for change in changes {
            match change {
                VaultChange::Current {
                    record,
                    vault,
                    database,
                } => match vault.snapshot() {
                    Ok(snapshot) => self.publish(record, snapshot, database),
                    // Readers keep the previous snapshot; the next drain publishes again.
                    Err(error) => tracing::error!(vault = %record.id, %error, "snapshot failed"),
                },
                VaultChange::Removed { id } => {
                    self.context.vaults.remove(id);
                }
                VaultChange::Unavailable { id, reason } => self.out_of_service(id, reason),
            }
        }
        if membership {
            // The vault registry may not run yet (the node is starting): it reconciles when it
            // starts, so a lost notice loses nothing.
            let _ = self.registry().cast(RegistryMsg::Reconcile);
        }
    }

    fn placements_changed(&mut self, placements: &BTreeMap<VaultId, Placement>) {
        self.context.placements.write().clone_from(placements);
    }

    fn members_changed(&mut self, members: &BTreeMap<u64, MemberRecord>) {
        if let Some(peers) = &self.peers {
            peers.members_changed(members);
        }
    }
}
