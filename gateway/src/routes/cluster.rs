//! `GET /v1/cluster`: this node's view of the cluster: the members and their links, and each
//! shard's raft group as this node's member sees it (role, leader, term, commit and applied
//! index, membership, and on the leader every member's replication lag).

use axum::extract::State;
use axum::Json;
use inferadb_messages::{GroupStatus, ShardMsg};
use serde_json::{json, Value};

use super::{mailbox_problem, Context};
use crate::problem::Problem;

/// How long the status probe may take.
const STATUS_TIMEOUT_MS: u64 = 2_000;

/// `GET /v1/cluster`.
pub async fn cluster(State(context): State<Context>) -> Result<Json<Value>, Problem> {
    let status = context
        .shard
        .call(|reply| ShardMsg::Status { reply }, STATUS_TIMEOUT_MS)
        .await
        .map_err(mailbox_problem)?;
    let members = members_json(&context, status.as_ref());
    let shard = match &status {
        Some(status) => shard_json(status),
        None => json!({ "id": 0, "role": "restarting" }),
    };
    Ok(Json(json!({
        "node_id": context.node_id,
        "members": members,
        "shards": [shard],
    })))
}

/// This node and its configured peers, with link state and (seen from the leader) lag.
fn members_json(context: &Context, status: Option<&GroupStatus>) -> Vec<Value> {
    let matched = |id: u64| {
        status.and_then(|status| {
            status
                .progress
                .iter()
                .find(|(member, _)| *member == id)
                .map(|(_, matched)| (*matched, status.last_index.saturating_sub(*matched)))
        })
    };
    let mut members = vec![member_json(
        context.node_id,
        None,
        true,
        true,
        matched(context.node_id),
    )];
    if let Some(view) = &context.cluster {
        for peer in view.peers() {
            members.push(member_json(
                peer.id,
                Some(&peer.address),
                false,
                peer.linked,
                matched(peer.id),
            ));
        }
    }
    members
}

fn member_json(
    id: u64,
    address: Option<&str>,
    this_node: bool,
    linked: bool,
    progress: Option<(u64, u64)>,
) -> Value {
    json!({
        "id": id,
        "cluster_address": address,
        "this_node": this_node,
        "linked": linked,
        "matched_index": progress.map(|(matched, _)| matched),
        "lag_entries": progress.map(|(_, lag)| lag),
    })
}

fn shard_json(status: &GroupStatus) -> Value {
    json!({
        "id": 0,
        "role": status.role,
        "leader": status.leader_id,
        "term": status.term,
        "commit_index": status.commit,
        "applied_index": status.applied,
        "last_index": status.last_index,
        "apply_lag_entries": status.commit.saturating_sub(status.applied),
        "voters": status.voters,
        "voters_outgoing": status.voters_outgoing,
        "learners": status.learners,
    })
}
