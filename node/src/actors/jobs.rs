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

/// The task a job runs while its lease is held, under the epoch it was started with: a
/// start replaces (and aborts) the previous task, a stop ends it only if it is still the
/// one of that epoch, and dropping the runner aborts it.
#[derive(Default)]
pub struct RunningTask {
    running: Mutex<Option<(u64, tokio::task::JoinHandle<()>)>>,
}

impl RunningTask {
    /// Runs `task` for `epoch`, aborting the task of an earlier start.
    pub fn start(&self, epoch: u64, task: tokio::task::JoinHandle<()>) {
        if let Some((_, previous)) = self.running.lock().replace((epoch, task)) {
            previous.abort();
        }
    }

    /// Aborts the task if it runs for `epoch`; says whether it did.
    pub fn stop(&self, epoch: u64) -> bool {
        let mut running = self.running.lock();
        match running.take() {
            Some((current, task)) if current == epoch => {
                task.abort();
                true
            }
            other => {
                *running = other;
                false
            }
        }
    }
}

impl Drop for RunningTask {
    fn drop(&mut self) {
        if let Some((_, task)) = self.running.lock().take() {
            task.abort();
        }
    }
}

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
    running: RunningTask,
}

impl ExpiredGc {
    /// The collector of `context`'s vaults.
    pub fn new(context: Arc<NodeContext>) -> ExpiredGc {
        ExpiredGc {
            context,
            running: RunningTask::default(),
        }
    }
}

impl JobRunner for ExpiredGc {
    fn start(&self, epoch: u64) {
        let context = Arc::clone(&self.context);
        self.running
            .start(epoch, tokio::spawn(sweep_forever(context, epoch)));
        tracing::info!(epoch, "expired-relationship gc runs here");
    }

    fn stop(&self, epoch: u64) {
        if self.running.stop(epoch) {
            tracing::info!(epoch, "expired-relationship gc stopped here");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_ends_only_the_task_of_its_epoch_and_a_start_replaces_the_last() {
        let running = RunningTask::default();
        let first = tokio::spawn(std::future::pending::<()>());
        let first_abort = first.abort_handle();
        running.start(1, first);
        assert!(!running.stop(2), "a stop for another epoch leaves the task");
        assert!(!first_abort.is_finished());
        let second = tokio::spawn(std::future::pending::<()>());
        let second_abort = second.abort_handle();
        running.start(2, second);
        tokio::task::yield_now().await;
        assert!(
            first_abort.is_finished(),
            "a new start aborts the previous task"
        );
        assert!(running.stop(2));
        tokio::task::yield_now().await;
        assert!(second_abort.is_finished());
        assert!(!running.stop(2), "nothing left to stop");
    }
}
