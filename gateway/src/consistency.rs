//! Which snapshot a read may use: the request's consistency, resolved against the vault's
//! published snapshots.
//!
//! On a single node every acknowledged write is published before it is acknowledged, so
//! `fully_consistent` and `minimize_latency` both read the newest published snapshot;
//! `at_least_as_fresh` waits (bounded) until the published revision reaches the token's.

use std::sync::Arc;
use std::time::Duration;

use inferadb_messages::{ProposalFailure, ShardMsg, VaultRoute};
use inferadb_protocols::{Revision, VaultId};
use inferadb_vault::{RevisionToken, VaultSnapshot};
use serde::Deserialize;
use serde_json::Value;

use crate::context::GatewayContext;
use crate::problem::Problem;

/// A request's consistency requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Consistency {
    /// Any recent snapshot.
    MinimizeLatency,
    /// The newest committed state.
    FullyConsistent,
    /// A snapshot at least as new as the token's revision.
    AtLeastAsFresh(Revision),
}

/// The wire form: `"minimize_latency"`, `"fully_consistent"` or
/// `{"at_least_as_fresh": "<token>"}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ConsistencyWire {
    /// A named level.
    Named(String),
    /// A level with a token.
    Token {
        /// The revision token.
        at_least_as_fresh: String,
    },
}

/// Parses the `consistency` member (absent means `minimize_latency`).
pub fn parse(
    context: &GatewayContext,
    vault: VaultId,
    value: Option<&Value>,
) -> Result<Consistency, Problem> {
    let Some(value) = value else {
        return Ok(Consistency::MinimizeLatency);
    };
    let rule = "must be \"minimize_latency\", \"fully_consistent\" or {\"at_least_as_fresh\": \"<revision token>\"}";
    let wire: ConsistencyWire = serde_json::from_value(value.clone())
        .map_err(|_| Problem::invalid_field("consistency", rule))?;
    match wire {
        ConsistencyWire::Named(name) if name == "minimize_latency" => {
            Ok(Consistency::MinimizeLatency)
        }
        ConsistencyWire::Named(name) if name == "fully_consistent" => {
            Ok(Consistency::FullyConsistent)
        }
        ConsistencyWire::Named(_) => Err(Problem::invalid_field("consistency", rule)),
        ConsistencyWire::Token { at_least_as_fresh } => {
            let revision = decode_token(context, vault, &at_least_as_fresh)
                .map_err(|problem| problem.with("field", "consistency.at_least_as_fresh".into()))?;
            Ok(Consistency::AtLeastAsFresh(revision))
        }
    }
}

/// Decodes a revision token of `vault` (400 when forged, malformed or foreign).
pub fn decode_token(
    context: &GatewayContext,
    vault: VaultId,
    token: &str,
) -> Result<Revision, Problem> {
    RevisionToken::decode(&context.token_secret, vault, token)
        .map(|named| named.revision)
        .map_err(|error| Problem::bad_request("invalid-revision-token", error.to_string()))
}

/// Encodes a revision of `vault` as a token naming the shard that holds it.
pub fn encode_token(context: &GatewayContext, vault: VaultId, revision: Revision) -> String {
    let shard = context.vaults.shard_of(vault).unwrap_or(0);
    RevisionToken::encode(&context.token_secret, shard, vault, revision)
}

/// Waits until this node's replica of `shard` has applied everything committed before now
/// (a read-index round through the shard's leader).
pub async fn read_barrier(context: &GatewayContext, shard: u64) -> Result<u64, Problem> {
    let timeout = context.limits.consistency_wait_max_ms;
    let mailbox = context
        .shards
        .get(&shard)
        .ok_or_else(|| Problem::internal(format!("this node runs no shard {shard}")))?;
    mailbox
        .call(|reply| ShardMsg::ReadBarrier { reply }, timeout)
        .await
        .map_err(|error| match error {
            // No leader confirmed this read in time (an election, a minority): retry.
            inferadb_messages::MailboxError::Timeout { .. } => Problem::unavailable(format!(
                "a fully consistent read found no leader within \
                 http.consistency_wait_max_ms ({timeout} ms)"
            ))
            .retry_after(1),
            other => crate::routes::mailbox_problem(other),
        })?
        .map_err(|failure| match failure {
            // A read changes nothing: whatever the barrier's fate, a retry is safe.
            ProposalFailure::NotApplied { reason } | ProposalFailure::OutcomeUnknown { reason } => {
                Problem::unavailable(format!(
                    "a fully consistent read needs the shard's leader: {reason}"
                ))
                .retry_after(1)
            }
        })
}

/// The snapshot that satisfies `consistency`.
pub async fn snapshot(
    context: &GatewayContext,
    route: &VaultRoute,
    consistency: &Consistency,
) -> Result<Arc<VaultSnapshot>, Problem> {
    let mut receiver = route.snapshots.clone();
    let minimum = match consistency {
        Consistency::AtLeastAsFresh(revision) => *revision,
        Consistency::MinimizeLatency => Revision::ZERO,
        Consistency::FullyConsistent => {
            read_barrier(context, route.shard).await?;
            // The shard publishes a drain's snapshots before it answers the barrier, so the
            // latest published snapshot now holds every write committed before the read.
            Revision::ZERO
        }
    };
    let wait = Duration::from_millis(context.limits.consistency_wait_max_ms);
    let ready = tokio::time::timeout(
        wait,
        receiver.wait_for(|snapshot| {
            snapshot
                .as_ref()
                .is_some_and(|snapshot| snapshot.revision() >= minimum)
        }),
    )
    .await;
    match ready {
        Ok(Ok(snapshot)) => snapshot
            .clone()
            .ok_or_else(|| Problem::internal("invariant: a ready snapshot is present")),
        Ok(Err(_)) => Err(Problem::unavailable(format!(
            "vault {} is restarting; retry",
            route.record.id
        ))),
        Err(_) => Err(Problem::unavailable(format!(
            "vault {} has not reached revision {} within consistency_wait_max_ms ({} ms)",
            route.record.id, minimum, context.limits.consistency_wait_max_ms
        ))
        .retry_after(1)),
    }
}
