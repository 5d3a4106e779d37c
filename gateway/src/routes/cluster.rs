//! `GET /v1/cluster`: this node's view of the cluster: the members and their links, and each
//! shard's raft group as this node's member sees it (role, leader, term, commit and applied
//! index, membership, and on the leader every member's replication lag).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use inferadb_messages::{ElectionMsg, GroupStatus, JobStatus, ProposalFailure, ShardMsg};
use inferadb_shard::{ShardAnswer, ShardCommand};
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::proposal_problem;
use super::{mailbox_problem, Context};
use crate::problem::Problem;
use crate::wire::ApiJson;

/// How long the status probe may take.
const STATUS_TIMEOUT_MS: u64 = 2_000;

/// `GET /v1/cluster`.
pub async fn cluster(State(context): State<Context>) -> Result<Json<Value>, Problem> {
    let mut shards = Vec::new();
    let mut system = None;
    for (id, mailbox) in &context.shards {
        let status = mailbox
            .call(|reply| ShardMsg::Status { reply }, STATUS_TIMEOUT_MS)
            .await
            .map_err(mailbox_problem)?;
        shards.push(match &status {
            Some(status) => shard_json(*id, status),
            None => json!({ "id": id, "role": "restarting" }),
        });
        if *id == 0 {
            system = status;
        }
    }
    let members = members_json(&context, system.as_ref());
    let jobs = context
        .election
        .call(|reply| ElectionMsg::Status { reply }, STATUS_TIMEOUT_MS)
        .await
        .map(|jobs| jobs.iter().map(job_json).collect::<Vec<Value>>())
        .unwrap_or_default();
    let rules_fingerprint = context
        .cluster
        .as_ref()
        .map(|view| view.rules_fingerprint());
    Ok(Json(json!({
        "node_id": context.node_id,
        "rules_fingerprint": rules_fingerprint,
        "members": members,
        "shards": shards,
        "jobs": jobs,
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

/// A singleton job as this node sees it: whether it holds the lease and runs the job.
fn job_json(job: &JobStatus) -> Value {
    json!({
        "job": job.job,
        "holding_lease": job.holding,
        "epoch": job.epoch,
        "expires_at_ms": job.expires_at_ms,
        "running_here": job.running,
    })
}

fn shard_json(id: u64, status: &GroupStatus) -> Value {
    json!({
        "id": id,
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

/// The body of `POST /v1/cluster/members`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The node's id.
    id: u64,
    /// Its cluster address (`cluster.listen` on that node).
    address: String,
}

/// `POST /v1/cluster/members`: records that node `id` must be a voter; the leader adds it
/// (a configuration change) and sends it a snapshot. 202: the change is recorded; watch
/// `GET /v1/cluster` for the voters.
pub async fn add_member(
    State(context): State<Context>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    // The shard refuses these too; checked here first so the problem names the field.
    if body.id == 0 {
        return Err(Problem::invalid_field(
            "id",
            "must be a node id of at least 1",
        ));
    }
    if body.address.parse::<std::net::SocketAddr>().is_err() {
        return Err(Problem::invalid_field(
            "address",
            "must be the node's cluster address as IP:port, such as 127.0.0.1:7004",
        ));
    }
    let command = ShardCommand::AddMember {
        id: body.id,
        address: body.address.clone(),
    };
    membership_command(&context, &command).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": body.id, "address": body.address, "status": "adding"})),
    ))
}

/// `DELETE /v1/cluster/members/{id}`: records that node `id` must leave; the leader
/// removes it (handing leadership over first if it is the one leaving). 202.
pub async fn remove_member(
    State(context): State<Context>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let id: u64 =
        id.parse().ok().filter(|id| *id > 0).ok_or_else(|| {
            Problem::invalid_field("id", "must be a node id (a positive integer)")
        })?;
    membership_command(&context, &ShardCommand::RemoveMember { id }).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "status": "removing"})),
    ))
}

/// The body of `POST /v1/cluster/shards/{id}/leader`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveLeader {
    /// The member to become the shard's leader.
    node: u64,
}

/// `POST /v1/cluster/shards/{id}/leader`: asks shard `id`'s leader to hand leadership to
/// `node` (a voter of the shard) once it has caught up, for instance to drain a node before
/// maintenance. 202: the request is passed to raft; watch `GET /v1/cluster` for the leader.
/// The `leader-balance` job may move it again later (turn it off for a lasting choice).
pub async fn move_leader(
    State(context): State<Context>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<MoveLeader>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let shard: u64 = id
        .parse()
        .map_err(|_| Problem::invalid_field("id", "must be a shard id (an integer)"))?;
    let Some(mailbox) = context.shards.get(&shard) else {
        return Err(Problem::not_found(
            "shard-not-found",
            format!("this cluster has no shard {shard}"),
        ));
    };
    let status = mailbox
        .call(|reply| ShardMsg::Status { reply }, STATUS_TIMEOUT_MS)
        .await
        .map_err(mailbox_problem)?;
    let voters = status.map(|status| status.voters).unwrap_or_default();
    if !voters.contains(&body.node) {
        return Err(Problem::invalid_field(
            "node",
            format!("must be a voter of shard {shard} (voters: {voters:?})"),
        ));
    }
    let passed = mailbox
        .call(
            |reply| ShardMsg::TransferLeader {
                to: body.node,
                reply,
            },
            STATUS_TIMEOUT_MS,
        )
        .await
        .map_err(mailbox_problem)?;
    if !passed {
        return Err(Problem::unavailable(format!(
            "shard {shard}'s member on this node is restarting; retry"
        ))
        .retry_after(1));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"shard": shard, "node": body.node, "status": "transferring"})),
    ))
}

/// Proposes a member command to every shard (each shard's leader drives its own
/// configuration) and checks the answers.
async fn membership_command(context: &Context, command: &ShardCommand) -> Result<(), Problem> {
    for mailbox in context.shards.values() {
        membership_command_in(context, mailbox, command).await?;
    }
    Ok(())
}

/// Proposals of one membership command before its outcome stays unknown to the client.
const MEMBERSHIP_ATTEMPTS_MAX: u32 = 10;
/// Pause before proposing a membership command again.
const MEMBERSHIP_RETRY_PAUSE_MS: u64 = 100;

/// Proposes `command` to one shard. Membership commands are idempotent (recording a record
/// the registry already holds changes nothing), so one whose outcome is unknown is proposed
/// again: that happens when the leaving node leads the shard, because every member cuts its
/// link to a node as soon as it applies the node's removal, which races the leader's answer
/// to the member that forwarded the command.
async fn membership_command_in(
    context: &Context,
    mailbox: &inferadb_messages::Mailbox<ShardMsg>,
    command: &ShardCommand,
) -> Result<(), Problem> {
    let mut attempt = 1;
    let encoded = loop {
        match propose_member_command(context, mailbox, command).await? {
            Err(ProposalFailure::OutcomeUnknown { .. }) if attempt < MEMBERSHIP_ATTEMPTS_MAX => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(MEMBERSHIP_RETRY_PAUSE_MS))
                    .await;
            }
            answer => break answer.map_err(proposal_problem)?,
        }
    };
    match ShardAnswer::decode(&encoded) {
        Ok(ShardAnswer::MembersChanged) => Ok(()),
        Ok(ShardAnswer::Refused { kind, message, .. }) => Err(member_refusal(&kind, message)),
        Ok(other) => Err(Problem::internal(format!("unexpected answer: {other:?}"))),
        Err(error) => Err(Problem::internal(format!("malformed answer: {error}"))),
    }
}

async fn propose_member_command(
    context: &Context,
    mailbox: &inferadb_messages::Mailbox<ShardMsg>,
    command: &ShardCommand,
) -> Result<Result<Vec<u8>, ProposalFailure>, Problem> {
    mailbox
        .call(
            |reply| ShardMsg::Propose {
                data: command.encode(),
                reply,
            },
            context.limits.request_timeout_ms,
        )
        .await
        .map_err(mailbox_problem)
}

fn member_refusal(kind: &str, message: String) -> Problem {
    match kind {
        "member_invalid" => Problem::bad_request("member-invalid", message),
        "member_last" => Problem::new(StatusCode::CONFLICT, "member-last", "Conflict", message),
        _ => Problem::internal(format!("{kind}: {message}")),
    }
}
