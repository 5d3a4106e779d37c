//! The peer set: the members this node keeps linked (node id → cluster address), and the
//! nodes removed from it, which this node must not talk to. It starts from the
//! configuration and changes at runtime as membership changes are applied; the
//! [`Cluster`](crate::Cluster) handle, the connector and the transport share one.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use parking_lot::RwLock;

use crate::error::PeerChangeError;

/// What [`PeerSet::add`] changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PeerAdded {
    /// The peer was not a member.
    New,
    /// The peer was already a member at that address: nothing changed.
    Unchanged,
    /// The peer was a member at another address, now replaced.
    Replaced {
        /// The address it had.
        previous: SocketAddr,
    },
}

/// The current members other than this node, and the removed ones. The lock is only ever
/// held for a map operation, never across an await, so the connector and the senders never
/// wait on it.
#[derive(Debug)]
pub(crate) struct PeerSet {
    /// This node's id, which is never a peer of itself.
    node_id: u64,
    members: RwLock<Members>,
}

#[derive(Debug, Default)]
struct Members {
    peers: BTreeMap<u64, SocketAddr>,
    /// Removed and not added since. Unlike a node that was never a peer (which may open a
    /// session to this node and be answered over it), a removed node is cut off: it may not
    /// have applied its removal yet and would keep taking part.
    removed: BTreeSet<u64>,
}

impl PeerSet {
    /// The set of `node_id` starting with `peers` (already validated with the configuration).
    pub(crate) fn new(node_id: u64, peers: BTreeMap<u64, SocketAddr>) -> PeerSet {
        PeerSet {
            node_id,
            members: RwLock::new(Members {
                peers,
                removed: BTreeSet::new(),
            }),
        }
    }

    /// Adds `id` at `address`, or moves it there. Refuses node 0 and this node itself, with
    /// the same rules as the configuration's peers.
    pub(crate) fn add(&self, id: u64, address: SocketAddr) -> Result<PeerAdded, PeerChangeError> {
        if id == 0 {
            return Err(PeerChangeError::IdZero);
        }
        if id == self.node_id {
            return Err(PeerChangeError::IsSelf {
                node_id: self.node_id,
            });
        }
        let previous = {
            let mut members = self.members.write();
            members.removed.remove(&id);
            members.peers.insert(id, address)
        };
        Ok(match previous {
            None => PeerAdded::New,
            Some(previous) if previous == address => PeerAdded::Unchanged,
            Some(previous) => PeerAdded::Replaced { previous },
        })
    }

    /// Removes `id` and cuts it off until it is added again, whether or not it was a member
    /// (a restarted node may apply a removal its configuration already reflects); its
    /// address if it was a member. This node's own id is never recorded as removed.
    pub(crate) fn remove(&self, id: u64) -> Option<SocketAddr> {
        let mut members = self.members.write();
        if id != self.node_id {
            members.removed.insert(id);
        }
        members.peers.remove(&id)
    }

    /// Whether `id` was removed (and not added since): nothing is sent to it.
    pub(crate) fn is_removed(&self, id: u64) -> bool {
        self.members.read().removed.contains(&id)
    }

    /// A copy of the current members, so a caller can iterate (and await) without the lock.
    pub(crate) fn snapshot(&self) -> BTreeMap<u64, SocketAddr> {
        self.members.read().peers.clone()
    }

    /// A copy of the removed nodes.
    #[cfg(test)]
    fn removed(&self) -> BTreeSet<u64> {
        self.members.read().removed.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn set() -> PeerSet {
        PeerSet::new(1, BTreeMap::from([(2, address(7002))]))
    }

    #[test]
    fn adding_a_new_peer_makes_it_a_member() {
        let peers = set();
        assert_eq!(peers.add(4, address(7004)), Ok(PeerAdded::New));
        assert!(!peers.is_removed(4));
        assert_eq!(
            peers.snapshot(),
            BTreeMap::from([(2, address(7002)), (4, address(7004))])
        );
    }

    #[test]
    fn adding_a_member_again_at_its_address_changes_nothing() {
        let peers = set();
        assert_eq!(peers.add(2, address(7002)), Ok(PeerAdded::Unchanged));
        assert_eq!(peers.add(2, address(7002)), Ok(PeerAdded::Unchanged));
        assert_eq!(peers.snapshot(), BTreeMap::from([(2, address(7002))]));
    }

    #[test]
    fn adding_a_member_at_another_address_replaces_it() {
        let peers = set();
        assert_eq!(
            peers.add(2, address(8002)),
            Ok(PeerAdded::Replaced {
                previous: address(7002)
            })
        );
        assert_eq!(peers.snapshot(), BTreeMap::from([(2, address(8002))]));
    }

    #[test]
    fn this_node_and_node_zero_are_refused_and_leave_the_set_alone() {
        let peers = set();
        let own = peers.add(1, address(7001));
        assert_eq!(own, Err(PeerChangeError::IsSelf { node_id: 1 }));
        let zero = peers.add(0, address(7000));
        assert_eq!(zero, Err(PeerChangeError::IdZero));
        assert_eq!(peers.snapshot(), BTreeMap::from([(2, address(7002))]));
    }

    #[test]
    fn refusals_name_their_rule() {
        let own = PeerChangeError::IsSelf { node_id: 1 }.to_string();
        assert!(own.contains("own id 1") && own.contains("never"), "{own}");
        let zero = PeerChangeError::IdZero.to_string();
        assert!(zero.contains("at least 1"), "{zero}");
    }

    #[test]
    fn removing_is_idempotent_and_reports_membership() {
        let peers = set();
        assert_eq!(peers.remove(2), Some(address(7002)));
        assert_eq!(peers.remove(2), None);
        assert_eq!(peers.remove(9), None);
        assert!(peers.snapshot().is_empty());
        // Cut off whether or not it was a member; never this node itself.
        assert_eq!(peers.remove(1), None);
        assert_eq!(peers.removed(), BTreeSet::from([2, 9]));
        assert!(peers.is_removed(2) && !peers.is_removed(3));
    }

    #[test]
    fn adding_a_removed_node_again_lifts_its_removal() {
        let peers = set();
        peers.remove(2);
        assert_eq!(peers.add(2, address(7002)), Ok(PeerAdded::New));
        assert!(!peers.is_removed(2));
        assert!(peers.removed().is_empty());
    }

    #[test]
    fn a_refused_addition_does_not_lift_a_removal() {
        let peers = set();
        peers.remove(0);
        assert_eq!(peers.add(0, address(7000)), Err(PeerChangeError::IdZero));
        assert!(peers.is_removed(0));
    }
}
