//! [`EvaluatorMsg`]: the protocol of the evaluator pool.
//!
//! A job carries the snapshot it must read (the gateway picked it to satisfy the request's
//! consistency), so workers never message anyone per relationship they read.

use std::sync::Arc;

use inferadb_evaluator::{
    CheckRequest, EvaluationError, Expansion, Explanation, LookupResourcesPage,
    LookupResourcesRequest, LookupSubjectsRequest, LookupSubjectsResponse,
};
use inferadb_protocols::{ObjectRef, RelationName};
use inferadb_vault::VaultSnapshot;
use ractor::RpcReplyPort;

/// One unit of evaluation work.
pub enum EvaluationJob {
    /// One check, with its trace when `explain` is set.
    Check {
        /// The request.
        request: CheckRequest,
        /// Whether to return the evaluation trace.
        explain: bool,
    },
    /// Many checks over one snapshot, answered in order.
    BatchCheck {
        /// The requests.
        requests: Vec<CheckRequest>,
    },
    /// The userset tree of `resource#relation`.
    Expand {
        /// The resource.
        resource: ObjectRef,
        /// The relation or permission.
        relation: RelationName,
    },
    /// One page of the resources a subject has a permission on.
    LookupResources {
        /// The request (with its cursor and page size).
        request: LookupResourcesRequest,
    },
    /// The subjects that have a permission on a resource.
    LookupSubjects {
        /// The request.
        request: LookupSubjectsRequest,
    },
}

/// The answer to an [`EvaluationJob`], variant for variant.
pub enum EvaluationOutput {
    /// A check's decision, with its trace when asked.
    Check {
        /// Whether the subject has the permission.
        allowed: bool,
        /// The trace, when `explain` was set.
        explanation: Option<Explanation>,
    },
    /// One answer or error per batch item, in request order.
    BatchCheck(Vec<Result<bool, EvaluationError>>),
    /// The userset tree.
    Expand(Expansion),
    /// One page of resource ids.
    LookupResources(LookupResourcesPage),
    /// The subjects.
    LookupSubjects(LookupSubjectsResponse),
}

/// Why the pool did not run a job.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvaluatorRejection {
    /// Every worker is busy and the queue holds `queue_max` jobs: try again later.
    #[error("the evaluator queue is full ({queue_max} jobs); retry after {retry_after_s} s")]
    Overloaded {
        /// The queue's limit.
        queue_max: usize,
        /// When to retry.
        retry_after_s: u64,
    },
    /// The vault has no schema yet.
    #[error("the vault has no schema; deploy one with PUT /v1/vaults/{{id}}/schema")]
    NoSchema,
    /// The job itself failed.
    #[error(transparent)]
    Evaluation(#[from] EvaluationError),
    /// The pool is shutting down.
    #[error("the evaluator pool is stopping")]
    Stopping,
    /// The evaluation panicked (a bug): retrying would fail the same way.
    #[error("the evaluation failed unexpectedly (a panic in the evaluator); see the node's log")]
    Panicked,
}

/// Messages to the evaluator pool.
pub enum EvaluatorMsg {
    /// Run `job` over `snapshot` on a worker, or reject it at once when the queue is full.
    Evaluate {
        /// The snapshot to read.
        snapshot: Arc<VaultSnapshot>,
        /// The caller's current time in Unix milliseconds (expiry is judged against it).
        now_ms: u64,
        /// The work.
        job: EvaluationJob,
        /// The answer, sent by the worker that ran the job.
        reply: RpcReplyPort<Result<EvaluationOutput, EvaluatorRejection>>,
    },
    /// Jobs queued but not yet started by a worker.
    QueueDepth {
        /// The depth.
        reply: RpcReplyPort<usize>,
    },
}

// Local only: never sent to another node (ractor's `cluster` feature needs the impl spelled out).
impl ractor::Message for EvaluatorMsg {}
