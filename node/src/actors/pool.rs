//! The evaluator pool: a ractor actor that admits jobs into a bounded queue served by
//! dedicated worker threads.
//!
//! Workers are OS threads, not tasks: an evaluation is CPU-bound and may recurse deeply
//! (`WORKER_STACK_BYTES` of stack), and it must not stall the async workers that serve HTTP.
//! Admission control is ours (ractor mailboxes are unbounded): when `queue_max` jobs wait, a
//! new job is refused at once with `Overloaded`, which the gateway turns into 429 with
//! `Retry-After`. Each worker reads the snapshot its job carries directly: no message per
//! relationship read.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use inferadb_evaluator::limits::WORKER_STACK_BYTES;
use inferadb_evaluator::ReadView;
use inferadb_messages::{
    ActorRecord, EvaluationJob, EvaluationOutput, EvaluatorMsg, EvaluatorRejection,
};
use inferadb_vault::VaultSnapshot;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::context::NodeContext;

/// A job waiting for a worker.
struct QueuedJob {
    snapshot: Arc<VaultSnapshot>,
    now_ms: u64,
    job: EvaluationJob,
    reply: RpcReplyPort<Result<EvaluationOutput, EvaluatorRejection>>,
}

/// The pool's state. Dropping the sender (when the pool stops or restarts) lets the workers
/// finish the queued jobs and exit.
pub struct PoolState {
    context: Arc<NodeContext>,
    record: Arc<ActorRecord>,
    sender: Sender<QueuedJob>,
}

/// The evaluator pool actor.
pub struct EvaluatorPool;

impl Actor for EvaluatorPool {
    type Msg = EvaluatorMsg;
    type State = PoolState;
    type Arguments = Arc<NodeContext>;

    async fn pre_start(
        &self,
        myself: ActorRef<EvaluatorMsg>,
        context: Arc<NodeContext>,
    ) -> Result<PoolState, ActorProcessingErr> {
        let name = context.names.child("evaluator");
        let record = context
            .actors
            .record(&name, Some(&context.names.root()), "evaluator_pool");
        let (sender, receiver) = crossbeam_channel::bounded(context.config.evaluator.queue_max);
        // Workers of a previous incarnation may still be draining; the incarnation tells
        // their records apart from ours.
        let incarnation = myself.get_id().pid();
        for index in 0..context.config.evaluator_workers() {
            spawn_worker(&context, &name, (index, incarnation), receiver.clone())?;
        }
        record.started(myself.get_id().pid(), context.now_ms());
        Ok(PoolState {
            context,
            record,
            sender,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<EvaluatorMsg>,
        message: EvaluatorMsg,
        state: &mut PoolState,
    ) -> Result<(), ActorProcessingErr> {
        state.record.handled_one();
        match message {
            EvaluatorMsg::Evaluate {
                snapshot,
                now_ms,
                job,
                reply,
            } => admit(
                state,
                QueuedJob {
                    snapshot,
                    now_ms,
                    job,
                    reply,
                },
            ),
            EvaluatorMsg::QueueDepth { reply } => {
                let _ = reply.send(state.sender.len());
            }
        }
        Ok(())
    }
}

fn admit(state: &PoolState, job: QueuedJob) {
    let config = &state.context.config.evaluator;
    enqueue(&state.sender, job, config.queue_max, config.retry_after_s);
}

/// Queues `job`, or answers it at once with `Overloaded` when the queue is full (the
/// admission control ractor's unbounded mailboxes do not give us).
fn enqueue(sender: &Sender<QueuedJob>, job: QueuedJob, queue_max: usize, retry_after_s: u64) {
    match sender.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(job)) => {
            let _ = job.reply.send(Err(EvaluatorRejection::Overloaded {
                queue_max,
                retry_after_s,
            }));
        }
        Err(TrySendError::Disconnected(job)) => {
            let _ = job.reply.send(Err(EvaluatorRejection::Stopping));
        }
    }
}

fn spawn_worker(
    context: &Arc<NodeContext>,
    pool_name: &str,
    (index, incarnation): (usize, u64),
    receiver: Receiver<QueuedJob>,
) -> Result<(), ActorProcessingErr> {
    let name = context.names.worker(index);
    let record = context
        .actors
        .record(&name, Some(pool_name), "evaluator_worker");
    record.started(incarnation, context.now_ms());
    std::thread::Builder::new()
        .name(format!("evaluator-{index}"))
        .stack_size(WORKER_STACK_BYTES)
        .spawn(move || work(&record, &receiver, incarnation))?;
    Ok(())
}

/// A worker's loop: run jobs until the pool drops its sender.
fn work(record: &ActorRecord, receiver: &Receiver<QueuedJob>, incarnation: u64) {
    while let Ok(queued) = receiver.recv() {
        record.enqueued_one();
        let QueuedJob {
            snapshot,
            now_ms,
            job,
            reply,
        } = queued;
        // A panic in one evaluation must not take the worker (and its queue share) down:
        // the caller gets an error, the failure is recorded, the worker goes on.
        let outcome = catch_unwind(AssertUnwindSafe(|| run(&snapshot, now_ms, job)));
        record.handled_one();
        let result = outcome.unwrap_or_else(|_| {
            record.restarting("an evaluation panicked".to_string());
            record.set_status(inferadb_messages::ActorStatus::Running);
            Err(EvaluatorRejection::Panicked)
        });
        let _ = reply.send(result);
    }
    // A worker of an older pool incarnation leaves the record to its successor.
    if record.incarnation() == incarnation {
        record.set_status(inferadb_messages::ActorStatus::Stopped);
    }
}

/// Runs one job against its snapshot.
pub fn run(
    snapshot: &VaultSnapshot,
    now_ms: u64,
    job: EvaluationJob,
) -> Result<EvaluationOutput, EvaluatorRejection> {
    let schema = snapshot.schema().ok_or(EvaluatorRejection::NoSchema)?;
    let evaluator = &schema.evaluator;
    let view = ReadView {
        reader: snapshot,
        vault_id: snapshot.vault_id().0,
        revision: snapshot.revision(),
        now_ms,
    };
    let output = match job {
        EvaluationJob::Check { request, explain } => {
            if explain {
                let explanation = evaluator.explain(&view, &request)?;
                EvaluationOutput::Check {
                    allowed: explanation.allowed,
                    explanation: Some(explanation),
                }
            } else {
                let response = evaluator.check(&view, &request)?;
                EvaluationOutput::Check {
                    allowed: response.allowed,
                    explanation: None,
                }
            }
        }
        EvaluationJob::BatchCheck { requests } => EvaluationOutput::BatchCheck(
            evaluator
                .batch_check(&view, &requests)
                .into_iter()
                .map(|answer| answer.map(|response| response.allowed))
                .collect(),
        ),
        EvaluationJob::Expand { resource, relation } => {
            EvaluationOutput::Expand(evaluator.expand(&view, &resource, &relation)?)
        }
        EvaluationJob::LookupResources { request } => {
            EvaluationOutput::LookupResources(evaluator.lookup_resources(&view, &request)?)
        }
        EvaluationJob::LookupSubjects { request } => {
            EvaluationOutput::LookupSubjects(evaluator.lookup_subjects(&view, &request)?)
        }
    };
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferadb_evaluator::CheckRequest;
    use inferadb_protocols::VaultId;
    use inferadb_storage::io::MemoryIo;
    use inferadb_vault::{open_database_with_io, NodeCatalog, Vault, VaultOptions};

    fn snapshot() -> Arc<VaultSnapshot> {
        let database = Arc::new(open_database_with_io(Arc::new(MemoryIo::default())).unwrap());
        let catalog = NodeCatalog::open(Arc::clone(&database), [7; 32]).unwrap();
        let id = VaultId(1);
        catalog.create_vault(id, "pool", 0).unwrap();
        let mut vault = Vault::open(database, id, VaultOptions::default()).unwrap();
        vault
            .deploy_schema("type user {}\ntype doc { relation viewer: user }", 0)
            .unwrap();
        vault.snapshot().unwrap()
    }

    fn job(
        snapshot: &Arc<VaultSnapshot>,
    ) -> (
        QueuedJob,
        ractor::concurrency::OneshotReceiver<Result<EvaluationOutput, EvaluatorRejection>>,
    ) {
        let (sender, receiver) = ractor::concurrency::oneshot();
        let request = CheckRequest {
            resource: "doc:1".parse().unwrap(),
            permission: "viewer".parse().unwrap(),
            subject: "user:ann".parse().unwrap(),
        };
        let queued = QueuedJob {
            snapshot: Arc::clone(snapshot),
            now_ms: 1,
            job: EvaluationJob::Check {
                request,
                explain: false,
            },
            reply: sender.into(),
        };
        (queued, receiver)
    }

    #[test]
    fn a_full_queue_refuses_at_once_with_retry_after_and_a_closed_one_says_stopping() {
        let snapshot = snapshot();
        let (sender, receiver) = crossbeam_channel::bounded(1);
        let (first, mut first_answer) = job(&snapshot);
        enqueue(&sender, first, 1, 3);
        assert!(
            first_answer.try_recv().is_err(),
            "a queued job waits for a worker"
        );
        let (second, mut second_answer) = job(&snapshot);
        enqueue(&sender, second, 1, 3);
        let refused = second_answer.try_recv().unwrap();
        assert!(matches!(
            refused,
            Err(EvaluatorRejection::Overloaded {
                queue_max: 1,
                retry_after_s: 3
            })
        ));
        let queued = receiver.recv().unwrap();
        let answer = run(&queued.snapshot, queued.now_ms, queued.job);
        assert!(matches!(
            answer,
            Ok(EvaluationOutput::Check { allowed: false, .. })
        ));
        drop(receiver);
        let (third, mut third_answer) = job(&snapshot);
        enqueue(&sender, third, 1, 3);
        assert!(matches!(
            third_answer.try_recv().unwrap(),
            Err(EvaluatorRejection::Stopping)
        ));
    }
}
