//! The cluster's desired membership: a replicated registry of nodes, kept in shard 0.
//!
//! Each record names a node id and says whether the node must be a voter of the cluster's
//! Raft groups, reachable at its cluster address, or must not be a member at all
//! ([`MemberRecord::removed`]). The leader's shell reads it through
//! `StateMachine::membership_target` and drives the group's configuration towards it;
//! nodes the registry does not name (the voters a group was bootstrapped with, until
//! someone records them) keep whatever role they have.
//!
//! # Rules
//!
//! - [`crate::ShardCommand::AddMember`] records node `id` as a voter at `address`:
//!   adding an id already recorded replaces its address and clears its removal. `id` must
//!   not be 0 (Raft's "no node") and `address` must parse as a [`std::net::SocketAddr`]
//!   (`IP:port`, IPv6 in brackets; no host names, which would need a resolver and could
//!   differ between replicas): otherwise it is refused as `member_invalid`.
//! - [`crate::ShardCommand::RemoveMember`] records node `id` as removed; it works for ids
//!   never added too (recorded with an empty address), and a removed record keeps the
//!   last address it had. `id` 0 is refused as `member_invalid`.
//! - A removal that would take the registry from at least one voter to none is refused as
//!   `member_last`: a registry that names no voter while asking to remove one would let the
//!   shell shrink the group towards nothing. A registry that names no voter yet may
//!   record removals freely: it does not know the voters the group was bootstrapped with,
//!   so it cannot tell whether one would remain.
//! - A command that changes nothing (re-adding a voter at the same address, removing a
//!   removed id) succeeds and changes nothing.
//!
//! Records are never dropped: a removed node stays named, so that a late message from it
//! is not mistaken for an unknown node's.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// One node of the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    /// Its cluster address (`IP:port`); empty for a node removed without ever being added.
    pub address: String,
    /// Whether the node must not be a member (otherwise it must be a voter).
    pub removed: bool,
}

/// Why a membership command was refused. Deterministic: every replica refuses identically.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MemberError {
    /// Node id 0, which Raft reserves for "no node".
    #[error("node id 0 is not a valid member id")]
    ZeroId,
    /// The address is not an `IP:port` socket address.
    #[error("member address `{address}` is not an IP:port socket address")]
    Address {
        /// The address given.
        address: String,
    },
    /// The removal would leave the registry without a voter.
    #[error("removing node {id} would leave the registry without a voter")]
    Last {
        /// The node.
        id: u64,
    },
}

impl MemberError {
    /// The refusal kind the shard machine answers.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            MemberError::ZeroId | MemberError::Address { .. } => "member_invalid",
            MemberError::Last { .. } => "member_last",
        }
    }
}

/// The record `AddMember { id, address }` leaves, or why it is refused; `None` when the
/// registry already holds exactly that record.
pub(crate) fn add(
    members: &BTreeMap<u64, MemberRecord>,
    id: u64,
    address: &str,
) -> Result<Option<MemberRecord>, MemberError> {
    if id == 0 {
        return Err(MemberError::ZeroId);
    }
    if address.parse::<SocketAddr>().is_err() {
        return Err(MemberError::Address {
            address: address.to_owned(),
        });
    }
    let record = MemberRecord {
        address: address.to_owned(),
        removed: false,
    };
    Ok((members.get(&id) != Some(&record)).then_some(record))
}

/// The record `RemoveMember { id }` leaves, or why it is refused; `None` when the id is
/// already recorded as removed.
pub(crate) fn remove(
    members: &BTreeMap<u64, MemberRecord>,
    id: u64,
) -> Result<Option<MemberRecord>, MemberError> {
    if id == 0 {
        return Err(MemberError::ZeroId);
    }
    let record = match members.get(&id) {
        Some(record) if record.removed => return Ok(None),
        Some(record) => MemberRecord {
            address: record.address.clone(),
            removed: true,
        },
        None => MemberRecord {
            address: String::new(),
            removed: true,
        },
    };
    // Only a voter's removal can empty the registry of voters: when it is the last one.
    let others = members
        .iter()
        .any(|(other, record)| *other != id && !record.removed);
    if !others && members.get(&id).is_some_and(|record| !record.removed) {
        return Err(MemberError::Last { id });
    }
    Ok(Some(record))
}

/// Checks a stored or received record: what [`add`] and [`remove`] can leave (a non-zero
/// id; an address that parses, or is empty on a removed record).
pub(crate) fn check(id: u64, record: &MemberRecord) -> Result<(), String> {
    if id == 0 {
        return Err("member id 0".into());
    }
    let empty_ok = record.removed && record.address.is_empty();
    if !empty_ok && record.address.parse::<SocketAddr>().is_err() {
        return Err(format!(
            "member {id}: address `{}` is not an IP:port socket address",
            record.address
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voter(address: &str) -> MemberRecord {
        MemberRecord {
            address: address.into(),
            removed: false,
        }
    }

    #[test]
    fn the_last_voter_cannot_be_removed_but_unknown_ids_can() {
        let mut members = BTreeMap::new();
        assert_eq!(
            remove(&members, 4),
            Ok(Some(MemberRecord {
                address: String::new(),
                removed: true
            }))
        );
        members.insert(1, voter("10.0.0.1:1"));
        assert_eq!(remove(&members, 1), Err(MemberError::Last { id: 1 }));
        assert!(remove(&members, 4).is_ok());
        members.insert(2, voter("10.0.0.2:1"));
        assert!(remove(&members, 1).is_ok());
        assert_eq!(add(&members, 1, "10.0.0.1:1"), Ok(None));
        assert_eq!(add(&members, 0, "10.0.0.1:1"), Err(MemberError::ZeroId));
        assert!(matches!(
            add(&members, 3, "localhost:1"),
            Err(MemberError::Address { .. })
        ));
    }
}
