//! [`ElectionActor`]: the shell around one [`LeaseKeeper`] per singleton job. It reads the
//! injected [`Clock`], feeds the keepers its timer's ticks and the proposals' answers, and
//! performs their effects: a proposal goes to shard 0 through a [`LeaseProposer`] and is
//! awaited in a task of its own (the actor never waits on the shard), which sends the
//! answer back as [`ElectionMsg::Answer`]; starting and stopping a job is a call on its
//! [`JobRunner`].
//!
//! A normal stop releases every held lease (best effort: nobody waits for the answers). A
//! killed or panicked actor cannot propose anything, but its jobs still stop when its
//! state is dropped, so no job outlives the keeper that renews its lease; the lease then
//! lapses by its expiry.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use inferadb_messages::{ElectionMsg, LeaseAnswer, Mailbox, ProposalFailure, ShardMsg};
use inferadb_protocols::Clock;
use inferadb_shard::{LeaseLimits, ShardAnswer};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::config::ElectionConfig;
use crate::error::ElectionError;
use crate::keeper::{Effect, LeaseKeeper, LeaseRequest};

/// A boxed future that can move between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where lease proposals go: shard 0's group. The node plugs in its shard-0 mailbox (see
/// the implementation for [`Mailbox<ShardMsg>`]); tests plug in a fake.
pub trait LeaseProposer: Send + Sync {
    /// Proposes the encoded shard command `data` now (so proposals keep their order) and
    /// returns the future of the encoded answer, or of why there is none.
    fn propose(&self, data: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, ProposalFailure>>;
}

impl LeaseProposer for Mailbox<ShardMsg> {
    fn propose(&self, data: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, ProposalFailure>> {
        let (port, answer) = ractor::concurrency::oneshot();
        let sent = self.cast(ShardMsg::Propose {
            data,
            reply: port.into(),
        });
        Box::pin(async move {
            // Not delivered: the shard never saw the command.
            sent.map_err(|error| ProposalFailure::NotApplied {
                reason: error.to_string(),
            })?;
            answer.await.map_err(|_| ProposalFailure::OutcomeUnknown {
                reason: "the shard stopped before answering".to_string(),
            })?
        })
    }
}

/// A singleton job: started when this node gets the job's lease, stopped when it loses it.
/// Both calls must return quickly (signal the job's own task): they run in the election
/// actor, which must keep renewing leases.
pub trait JobRunner: Send + Sync {
    /// Start the job, fenced by `epoch`: every side effect carries it, and the job checks
    /// the lease before each one.
    fn start(&self, epoch: u64);
    /// Stop the job started with `epoch`.
    fn stop(&self, epoch: u64);
}

/// What the election actor starts from.
pub struct ElectionArguments {
    /// This node's id: the lease holder it proposes.
    pub node_id: u64,
    /// The lease timings.
    pub config: ElectionConfig,
    /// Shard 0's lease limits (the configuration is checked against them).
    pub limits: LeaseLimits,
    /// The singleton jobs, by name, with what starts and stops each.
    pub jobs: Vec<(String, Arc<dyn JobRunner>)>,
    /// Where lease proposals go.
    pub proposer: Arc<dyn LeaseProposer>,
    /// This node's clock.
    pub clock: Arc<dyn Clock>,
}

/// One job: its keeper and its runner.
struct Job {
    keeper: LeaseKeeper,
    runner: Arc<dyn JobRunner>,
}

/// The election actor's state.
pub struct ElectionState {
    jobs: BTreeMap<String, Job>,
    shell: Shell,
}

/// What performs the keepers' effects.
struct Shell {
    proposer: Arc<dyn LeaseProposer>,
    clock: Arc<dyn Clock>,
    /// The timings (every keeper has a copy): the tick period and how long a proposal
    /// task waits for its answer.
    config: ElectionConfig,
}

impl Drop for ElectionState {
    fn drop(&mut self) {
        // Killed or panicked (no `post_stop`): a job must not outlive the keeper that
        // renews its lease. After a normal stop nothing runs any more and this does nothing.
        for job in self.jobs.values() {
            if let Some(epoch) = job.keeper.running_epoch() {
                tracing::warn!(job = job.keeper.job(), epoch, "job stopped with its keeper");
                job.runner.stop(epoch);
            }
        }
    }
}

/// The election actor.
pub struct ElectionActor;

impl Actor for ElectionActor {
    type Msg = ElectionMsg;
    type State = ElectionState;
    type Arguments = ElectionArguments;

    async fn pre_start(
        &self,
        myself: ActorRef<ElectionMsg>,
        arguments: ElectionArguments,
    ) -> Result<ElectionState, ActorProcessingErr> {
        let state = new_state(arguments)?;
        let tick = Duration::from_millis(state.shell.config.tick_ms);
        myself.send_interval(tick, || ElectionMsg::Tick);
        // The first acquire goes out now rather than one tick after start.
        myself.send_message(ElectionMsg::Tick)?;
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<ElectionMsg>,
        message: ElectionMsg,
        state: &mut ElectionState,
    ) -> Result<(), ActorProcessingErr> {
        let now_ms = state.shell.clock.now_ms();
        match message {
            ElectionMsg::Tick => {
                for job in state.jobs.values_mut() {
                    let effects = job.keeper.tick(now_ms);
                    state.shell.perform(&myself, job, effects);
                }
            }
            ElectionMsg::Answer {
                job,
                request,
                answer,
            } => {
                if let Some(job) = state.jobs.get_mut(&job) {
                    let effects = job.keeper.answer(now_ms, request, answer);
                    state.shell.perform(&myself, job, effects);
                }
            }
            ElectionMsg::Status { reply } => {
                let statuses = state
                    .jobs
                    .values()
                    .map(|job| job.keeper.status(now_ms))
                    .collect();
                // The asker may have given up; nothing to do then.
                let _ = reply.send(statuses);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ElectionMsg>,
        state: &mut ElectionState,
    ) -> Result<(), ActorProcessingErr> {
        let now_ms = state.shell.clock.now_ms();
        for job in state.jobs.values_mut() {
            // The releases' answers find no actor: they only save the others the expiry.
            let effects = job.keeper.shutdown(now_ms);
            state.shell.perform(&myself, job, effects);
        }
        Ok(())
    }
}

/// Checks the arguments and builds one keeper per job.
fn new_state(arguments: ElectionArguments) -> Result<ElectionState, ElectionError> {
    let mut jobs = BTreeMap::new();
    for (name, runner) in arguments.jobs {
        let keeper = LeaseKeeper::new(
            &name,
            arguments.node_id,
            arguments.config,
            &arguments.limits,
        )?;
        if jobs.insert(name.clone(), Job { keeper, runner }).is_some() {
            return Err(ElectionError::JobRepeated { job: name });
        }
    }
    Ok(ElectionState {
        jobs,
        shell: Shell {
            proposer: arguments.proposer,
            clock: arguments.clock,
            config: arguments.config,
        },
    })
}

impl Shell {
    /// Performs one keeper's effects, in order.
    fn perform(&self, myself: &ActorRef<ElectionMsg>, job: &Job, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Propose {
                    request_id,
                    request,
                } => self.propose(myself, request_id, request),
                Effect::StartJob { epoch } => {
                    tracing::info!(job = job.keeper.job(), epoch, "singleton job started");
                    job.runner.start(epoch);
                }
                Effect::StopJob { epoch } => {
                    tracing::info!(job = job.keeper.job(), epoch, "singleton job stopped");
                    job.runner.stop(epoch);
                }
            }
        }
    }

    /// Proposes `request` now, and awaits its answer in a task that sends it back.
    fn propose(&self, myself: &ActorRef<ElectionMsg>, request_id: u64, request: LeaseRequest) {
        let proposal = self.proposer.propose(request.to_command().encode());
        // The keeper gives up on the answer after this long anyway; the task need not wait
        // longer.
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let myself = myself.clone();
        let job = request.job().to_owned();
        tokio::spawn(async move {
            let answer = match tokio::time::timeout(timeout, proposal).await {
                Ok(outcome) => lease_answer(outcome),
                Err(_) => LeaseAnswer::Failed(ProposalFailure::OutcomeUnknown {
                    reason: format!("no answer within {} ms", timeout.as_millis()),
                }),
            };
            // The actor may have stopped (a release proposed at shutdown): nobody listens.
            let _ = myself.send_message(ElectionMsg::Answer {
                job,
                request: request_id,
                answer,
            });
        });
    }
}

/// What a lease proposal's outcome means to a keeper: the shard's answer decoded, or why
/// there is none. An answer that is not a lease answer leaves the outcome unknown.
pub fn lease_answer(outcome: Result<Vec<u8>, ProposalFailure>) -> LeaseAnswer {
    let unknown = |reason: String| LeaseAnswer::Failed(ProposalFailure::OutcomeUnknown { reason });
    let encoded = match outcome {
        Ok(encoded) => encoded,
        Err(failure) => return LeaseAnswer::Failed(failure),
    };
    match ShardAnswer::decode(&encoded) {
        Ok(ShardAnswer::LeaseGranted {
            epoch,
            expires_at_ms,
        }) => LeaseAnswer::Granted {
            epoch,
            expires_at_ms,
        },
        Ok(ShardAnswer::LeaseReleased) => LeaseAnswer::Released,
        Ok(ShardAnswer::Refused { kind, .. }) => LeaseAnswer::Refused { kind },
        Ok(other) => unknown(format!(
            "the shard answered a lease proposal with {other:?}"
        )),
        Err(error) => unknown(format!("the shard's answer is malformed: {error}")),
    }
}
