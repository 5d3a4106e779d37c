//! The root supervisor: starts storage, the shard (its raft member and vault data), the
//! vault registry, the evaluator pool and the gateway, in that order; restarts a failed child under its restart intensity; escalates
//! (stops the node) when a child fails too often; shuts down in reverse order.

use std::sync::Arc;
use std::time::Duration;

use inferadb_gateway::{GatewayActor, GatewayContext};
use inferadb_messages::supervision::wait_until_unregistered;
use inferadb_messages::{AdminError, NodeMsg, RestartDecision, RestartTracker};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};

use crate::actors::balance::{LeaderBalance, LEADER_BALANCE_JOB};
use crate::actors::jobs::{ExpiredGc, EXPIRED_GC_JOB};
use crate::actors::pool::EvaluatorPool;
use crate::actors::registry::{shard_mailbox, VaultRegistry};
use crate::actors::shard::{ShardActor, ShardArguments};
use crate::actors::storage::StorageActor;
use crate::context::NodeContext;
use inferadb_election::{ElectionActor, ElectionArguments, JobRunner};

/// The root children.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChildKind {
    Storage,
    /// One shard: the system shard (0) or a data shard.
    Shard(u64),
    Registry,
    /// Leases of the cluster-wide singleton jobs.
    Election,
    Evaluator,
    Gateway,
}

/// The children in start order: storage, every shard (the system shard first), the vault
/// registry, the evaluator pool, the gateway.
fn start_order(context: &NodeContext) -> Vec<ChildKind> {
    let mut order = vec![ChildKind::Storage];
    order.extend(context.config.shards().map(ChildKind::Shard));
    order.extend([
        ChildKind::Registry,
        ChildKind::Election,
        ChildKind::Evaluator,
        ChildKind::Gateway,
    ]);
    order
}

impl ChildKind {
    fn leaf(self) -> String {
        match self {
            ChildKind::Storage => "storage".to_string(),
            ChildKind::Shard(shard) => format!("shard/{shard}"),
            ChildKind::Registry => "vaults".to_string(),
            ChildKind::Election => "election".to_string(),
            ChildKind::Evaluator => "evaluator".to_string(),
            ChildKind::Gateway => "gateway".to_string(),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            ChildKind::Storage => "storage",
            ChildKind::Shard(_) => "shard",
            ChildKind::Registry => "vault_registry",
            ChildKind::Election => "election",
            ChildKind::Evaluator => "evaluator_pool",
            ChildKind::Gateway => "gateway",
        }
    }
}

/// Arguments of the root supervisor.
pub struct RootArguments {
    /// The node's shared context.
    pub context: Arc<NodeContext>,
    /// The gateway's context (built by the node from the same parts).
    pub gateway: Arc<GatewayContext>,
    /// Raft messages to other nodes.
    pub transport: Arc<dyn inferadb_raft::transport::Transport>,
    /// Proposals to other nodes (`None` without peers).
    pub forwarder: Option<Arc<dyn crate::actors::shard::Forwarder>>,
    /// The transport's peer set (`None` without peers).
    pub peers: Option<Arc<dyn crate::actors::shard::PeerDirectory>>,
}

/// The election actor's arguments: the jobs this node may run, leases in shard 0.
fn election_arguments(
    context: &Arc<NodeContext>,
    peers: Option<Arc<dyn crate::actors::shard::PeerDirectory>>,
) -> ElectionArguments {
    let mut jobs: Vec<(String, Arc<dyn JobRunner>)> = Vec::new();
    if context.config.jobs.expired_gc.enabled {
        jobs.push((
            EXPIRED_GC_JOB.to_string(),
            Arc::new(ExpiredGc::new(Arc::clone(context))),
        ));
    }
    if context.config.jobs.leader_balance.enabled {
        jobs.push((
            LEADER_BALANCE_JOB.to_string(),
            Arc::new(LeaderBalance::new(Arc::clone(context), peers)),
        ));
    }
    ElectionArguments {
        node_id: context.config.node_id,
        config: context.config.election,
        limits: inferadb_shard::LeaseLimits::default(),
        jobs,
        proposer: Arc::new(shard_mailbox(context, 0)),
        clock: Arc::clone(&context.clock),
    }
}

/// The root supervisor actor.
pub struct RootSupervisor;

/// The root's state.
pub struct RootState {
    arguments: RootArguments,
    trackers: Vec<(ChildKind, String, RestartTracker)>,
    shutting_down: bool,
}

async fn spawn_child(
    kind: ChildKind,
    name: String,
    arguments: &RootArguments,
    supervisor: ActorCell,
) -> Result<ActorCell, SpawnErr> {
    let context = Arc::clone(&arguments.context);
    let cell = match kind {
        ChildKind::Storage => Actor::spawn_linked(Some(name), StorageActor, context, supervisor)
            .await?
            .0
            .get_cell(),
        ChildKind::Shard(shard) => {
            let shard = ShardArguments {
                context,
                shard,
                transport: Arc::clone(&arguments.transport),
                forwarder: arguments.forwarder.clone(),
                peers: arguments.peers.clone(),
            };
            Actor::spawn_linked(Some(name), ShardActor, shard, supervisor)
                .await?
                .0
                .get_cell()
        }
        ChildKind::Registry => Actor::spawn_linked(Some(name), VaultRegistry, context, supervisor)
            .await?
            .0
            .get_cell(),
        ChildKind::Election => {
            let arguments = election_arguments(&context, arguments.peers.clone());
            let (actor, _) =
                Actor::spawn_linked(Some(name.clone()), ElectionActor, arguments, supervisor)
                    .await?;
            context
                .actors
                .record(&name, Some(&context.names.root()), "election")
                .started(actor.get_id().pid(), context.now_ms());
            actor.get_cell()
        }
        ChildKind::Evaluator => Actor::spawn_linked(Some(name), EvaluatorPool, context, supervisor)
            .await?
            .0
            .get_cell(),
        ChildKind::Gateway => {
            let gateway = Arc::clone(&arguments.gateway);
            Actor::spawn_linked(Some(name), GatewayActor, gateway, supervisor)
                .await?
                .0
                .get_cell()
        }
    };
    Ok(cell)
}

impl Actor for RootSupervisor {
    type Msg = NodeMsg;
    type State = RootState;
    type Arguments = RootArguments;

    async fn pre_start(
        &self,
        myself: ActorRef<NodeMsg>,
        arguments: RootArguments,
    ) -> Result<RootState, ActorProcessingErr> {
        let context = Arc::clone(&arguments.context);
        let root_name = context.names.root();
        let record = context.actors.record(&root_name, None, "node");
        let supervision = &context.config.supervision;
        let mut trackers = Vec::new();
        for kind in start_order(&context) {
            let name = context.names.child(&kind.leaf());
            context.actors.record(&name, Some(&root_name), kind.kind());
            spawn_child(kind, name.clone(), &arguments, myself.get_cell()).await?;
            let tracker = RestartTracker::with_intensity(supervision.intensity(kind.kind()));
            trackers.push((kind, name, tracker));
        }
        record.started(myself.get_id().pid(), context.now_ms());
        Ok(RootState {
            arguments,
            trackers,
            shutting_down: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<NodeMsg>,
        message: NodeMsg,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let context = Arc::clone(&state.arguments.context);
        if let Some(record) = context.actors.get(&context.names.root()) {
            record.handled_one();
        }
        match message {
            NodeMsg::RestartActor { name, reply } => {
                let _ = reply.send(restart_actor(&context, &name));
            }
            NodeMsg::Shutdown { reply } => {
                shut_down(state).await;
                let _ = reply.send(());
                myself.stop(Some("shutdown".to_string()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<NodeMsg>,
        event: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let Some((cell, reason)) = abnormal_stop(event) else {
            return Ok(());
        };
        if state.shutting_down {
            return Ok(());
        }
        let context = Arc::clone(&state.arguments.context);
        let Some(name) = cell.get_name() else {
            return Ok(());
        };
        let Some(kind) = state
            .trackers
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(kind, _, _)| *kind)
        else {
            return Ok(());
        };
        let record = context
            .actors
            .record(&name, Some(&context.names.root()), kind.kind());
        let mut reason = reason;
        // A restart that itself fails counts as one more failure of the child, so a child
        // that cannot start escalates after its restart intensity, not at once.
        loop {
            let now_ms = context.now_ms();
            let Some((_, _, tracker)) = state.trackers.iter_mut().find(|(_, n, _)| *n == name)
            else {
                return Ok(());
            };
            if tracker.on_failure(now_ms) == RestartDecision::Escalate {
                record.failed_for_good(reason.clone());
                return Err(format!(
                    "`{name}` failed too often (last: {reason}); stopping the node"
                )
                .into());
            }
            tracing::warn!(actor = %name, %reason, "restarting failed actor");
            record.restarting(reason);
            record.reset_mailbox();
            wait_until_unregistered(&name).await;
            match spawn_child(kind, name.clone(), &state.arguments, myself.get_cell()).await {
                Ok(_) => return Ok(()),
                Err(error) => {
                    reason = format!("restart failed: {error}");
                    tokio::time::sleep(Duration::from_millis(RESTART_BACKOFF_MS)).await;
                }
            }
        }
    }
}

/// Pause between two attempts to start a child whose restart failed.
pub const RESTART_BACKOFF_MS: u64 = 100;
/// The child and reason of an abnormal stop; `None` for starts and normal stops.
pub fn abnormal_stop(event: SupervisionEvent) -> Option<(ActorCell, String)> {
    match event {
        SupervisionEvent::ActorFailed(cell, error) => Some((cell, format!("failed: {error}"))),
        SupervisionEvent::ActorTerminated(cell, _, reason) => match reason.as_deref() {
            Some("killed") => Some((cell, "killed by an operator".to_string())),
            _ => None,
        },
        _ => None,
    }
}

fn restart_actor(context: &NodeContext, name: &str) -> Result<(), AdminError> {
    if !context.config.admin.allow_restart {
        return Err(AdminError::RestartDisabled);
    }
    if name == context.names.root() {
        return Err(AdminError::RootNotRestartable {
            name: name.to_string(),
        });
    }
    let cell =
        ractor::registry::where_is(name.to_string()).ok_or_else(|| AdminError::UnknownActor {
            name: name.to_string(),
        })?;
    cell.kill();
    Ok(())
}

/// Stops the children in reverse start order, each waiting for its own children; the
/// storage actor syncs the database as it stops.
async fn shut_down(state: &mut RootState) {
    state.shutting_down = true;
    let grace =
        Duration::from_millis(state.arguments.context.config.http.shutdown_grace_ms + 5_000);
    for (_, name, _) in state.trackers.iter().rev() {
        if let Some(cell) = ractor::registry::where_is(name.clone()) {
            if let Err(error) = cell
                .stop_and_wait(Some("shutdown".to_string()), Some(grace))
                .await
            {
                tracing::warn!(actor = %name, %error, "child did not stop in time");
            }
        }
        if let Some(record) = state.arguments.context.actors.get(name) {
            record.set_status(inferadb_messages::ActorStatus::Stopped);
        }
    }
}
