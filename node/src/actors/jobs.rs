//! The cluster-wide singleton jobs the election actor runs on the node holding their lease.
//!
//! - [`ExpiredGc`] (`expired-relationship-gc`): removes expired relationships from every
//!   vault, in bounded batches, each batch a ledger block. Every purge it proposes carries
//!   the lease epoch it runs under; the shards refuse an epoch older than one they have
//!   accepted (and shard 0 checks the lease itself), so a node that lost the lease without
//!   knowing it yet can never purge behind the new holder's back.

use std::sync::Arc;
use std::time::Duration;

use inferadb_election::JobRunner;
use inferadb_messages::ShardMsg;
use inferadb_shard::{ShardAnswer, ShardCommand};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::actors::registry::shard_mailbox;
use crate::context::NodeContext;

/// The lease name of the expired-relationship garbage collector.
pub const EXPIRED_GC_JOB: &str = "expired-relationship-gc";

/// The garbage collector's settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExpiredGcConfig {
    /// Whether the node takes part in the election for the job.
    pub enabled: bool,
    /// The pause between two sweeps over every vault.
    pub interval_ms: u64,
    /// The most relationships one purge removes (one ledger block).
    pub batch_max: u32,
}

impl Default for ExpiredGcConfig {
    fn default() -> Self {
        ExpiredGcConfig {
            enabled: true,
            interval_ms: 10_000,
            batch_max: 1_000,
        }
    }
}

/// The expired-relationship garbage collector: a sweep task while the lease is held.
pub struct ExpiredGc {
    context: Arc<NodeContext>,
    running: Mutex<Option<(u64, tokio::task::JoinHandle<()>)>>,
}

impl ExpiredGc {
    /// The collector of `context`'s vaults.
    pub fn new(context: Arc<NodeContext>) -> ExpiredGc {
        ExpiredGc {
            context,
            running: Mutex::new(None),
        }
    }
}

impl JobRunner for ExpiredGc {
    fn start(&self, epoch: u64) {
        let context = Arc::clone(&self.context);
        let task = tokio::spawn(sweep_forever(context, epoch));
        if let Some((_, previous)) = self.running.lock().replace((epoch, task)) {
            previous.abort();
        }
        tracing::info!(epoch, "expired-relationship gc runs here");
    }

    fn stop(&self, epoch: u64) {
        let mut running = self.running.lock();
        if running
            .as_ref()
            .is_some_and(|(current, _)| *current == epoch)
        {
            if let Some((_, task)) = running.take() {
                task.abort();
            }
            tracing::info!(epoch, "expired-relationship gc stopped here");
        }
    }
}

impl Drop for ExpiredGc {
    fn drop(&mut self) {
        if let Some((_, task)) = self.running.lock().take() {
            task.abort();
        }
    }
}

/// Sweeps every vault, then waits `interval_ms`, until aborted.
async fn sweep_forever(context: Arc<NodeContext>, epoch: u64) {
    let interval = Duration::from_millis(context.config.jobs.expired_gc.interval_ms);
    loop {
        for route in context.vaults.routes() {
            if !purge_vault(&context, route.record.id, route.shard, epoch).await {
                // Fenced: a newer holder exists. Stop; the election actor stops us too.
                return;
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Purges one vault until a batch comes back short; `false` when the shard fenced the
/// epoch off.
async fn purge_vault(
    context: &NodeContext,
    vault: inferadb_protocols::VaultId,
    shard: u64,
    epoch: u64,
) -> bool {
    let settings = &context.config.jobs.expired_gc;
    loop {
        let command = ShardCommand::PurgeExpired {
            vault,
            now_ms: context.now_ms(),
            limit: settings.batch_max,
            job: EXPIRED_GC_JOB.to_string(),
            holder: context.config.node_id,
            epoch,
        };
        let answer = shard_mailbox(context, shard)
            .call(
                |reply| ShardMsg::Propose {
                    data: command.encode(),
                    reply,
                },
                context.config.cluster.forward_timeout_ms,
            )
            .await;
        let decoded = match answer {
            Ok(Ok(bytes)) => ShardAnswer::decode(&bytes).ok(),
            _ => None,
        };
        match decoded {
            Some(ShardAnswer::Written { removed, .. }) => {
                metrics::counter!("inferadb_gc_relationships_purged_total").increment(removed);
                if removed < u64::from(settings.batch_max) {
                    return true;
                }
            }
            Some(ShardAnswer::Refused { kind, .. }) if kind == "lease_fenced" => return false,
            // Not now (no leader, a vault deleted meanwhile): the next sweep tries again.
            _ => return true,
        }
    }
}
