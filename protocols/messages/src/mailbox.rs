//! Reaching actors by their stable names, and the live records operators inspect.
//!
//! ractor mailboxes are unbounded and say nothing about their depth, so every send goes
//! through a [`Mailbox`], which counts it in the target's [`ActorRecord`]; the actor counts
//! what it handles. Depth is the difference. Records are keyed by the actor's stable name
//! (`node/1/vault/0f3a…`) and survive restarts, so restart counts and the last failure stay
//! visible after the actor is back.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use ractor::rpc::CallResult;
use ractor::{ActorCell, Message, RpcReplyPort};
use serde::Serialize;

/// Why a message could not be delivered or answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MailboxError {
    /// No actor is registered under the name (it is restarting, or was stopped).
    #[error("actor `{name}` is not running")]
    NotRunning {
        /// The actor's stable name.
        name: String,
    },
    /// The actor did not answer within the deadline.
    #[error("actor `{name}` did not answer within {timeout_ms} ms")]
    Timeout {
        /// The actor's stable name.
        name: String,
        /// The deadline.
        timeout_ms: u64,
    },
    /// The actor stopped before answering (it failed while handling the request).
    #[error("actor `{name}` stopped before answering")]
    Dropped {
        /// The actor's stable name.
        name: String,
    },
}

/// Where an actor is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorStatus {
    /// Starting (`pre_start` has not finished).
    Starting,
    /// Handling messages.
    Running,
    /// Failed or was killed; its supervisor is restarting it.
    Restarting,
    /// Stopped for good (shut down, or its supervisor gave up).
    Stopped,
}

impl ActorStatus {
    fn from_code(code: u8) -> ActorStatus {
        match code {
            0 => ActorStatus::Starting,
            1 => ActorStatus::Running,
            2 => ActorStatus::Restarting,
            _ => ActorStatus::Stopped,
        }
    }

    fn code(self) -> u8 {
        match self {
            ActorStatus::Starting => 0,
            ActorStatus::Running => 1,
            ActorStatus::Restarting => 2,
            ActorStatus::Stopped => 3,
        }
    }
}

/// The live record of one actor (or pool worker), shared by the actor, its supervisor and
/// every [`Mailbox`] that targets it.
#[derive(Debug)]
pub struct ActorRecord {
    /// The stable name, e.g. `node/1/vault/0f3a9c2e5b7d1804`.
    pub name: String,
    /// The stable name of the supervisor, if any.
    pub parent: Option<String>,
    /// What kind of actor this is (`vault`, `evaluator_pool`, ...).
    pub kind: &'static str,
    status: AtomicU8,
    /// ractor's id of the current incarnation (changes on restart); 0 for pool workers.
    actor_id: AtomicU64,
    started_at_ms: AtomicU64,
    restarts: AtomicU64,
    enqueued: AtomicU64,
    handled: AtomicU64,
    last_failure: Mutex<Option<String>>,
}

impl ActorRecord {
    fn new(name: String, parent: Option<String>, kind: &'static str) -> ActorRecord {
        ActorRecord {
            name,
            parent,
            kind,
            status: AtomicU8::new(ActorStatus::Starting.code()),
            actor_id: AtomicU64::new(0),
            started_at_ms: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            enqueued: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            last_failure: Mutex::new(None),
        }
    }

    /// Marks the start of an incarnation.
    pub fn started(&self, actor_id: u64, now_ms: u64) {
        self.actor_id.store(actor_id, Ordering::Relaxed);
        self.started_at_ms.store(now_ms, Ordering::Relaxed);
        self.set_status(ActorStatus::Running);
    }

    /// The id of the current incarnation (ractor's id; the pool's for workers).
    pub fn incarnation(&self) -> u64 {
        self.actor_id.load(Ordering::Relaxed)
    }

    /// Sets the status.
    pub fn set_status(&self, status: ActorStatus) {
        self.status.store(status.code(), Ordering::Relaxed);
    }

    /// The status.
    pub fn status(&self) -> ActorStatus {
        ActorStatus::from_code(self.status.load(Ordering::Relaxed))
    }

    /// Records a failure (or an operator's kill) and the restart that follows it.
    pub fn restarting(&self, failure: String) {
        *self.last_failure.lock() = Some(failure);
        self.restarts.fetch_add(1, Ordering::Relaxed);
        self.set_status(ActorStatus::Restarting);
    }

    /// Records a failure after which the actor stays down.
    pub fn failed_for_good(&self, failure: String) {
        *self.last_failure.lock() = Some(failure);
        self.set_status(ActorStatus::Stopped);
    }

    /// Counts one message handled.
    pub fn handled_one(&self) {
        self.handled.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one message sent.
    pub fn enqueued_one(&self) {
        self.enqueued.fetch_add(1, Ordering::Relaxed);
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Messages handled so far.
    pub fn messages_handled(&self) -> u64 {
        self.handled.load(Ordering::Relaxed)
    }

    /// Messages sent but not yet handled. Messages lost with a failed incarnation stay
    /// counted as sent, so a restart resets the baseline.
    pub fn mailbox_depth(&self) -> u64 {
        let handled = self.handled.load(Ordering::Relaxed);
        self.enqueued
            .load(Ordering::Relaxed)
            .saturating_sub(handled)
    }

    /// Forgets messages that were queued for an incarnation that is gone.
    pub fn reset_mailbox(&self) {
        let handled = self.handled.load(Ordering::Relaxed);
        self.enqueued.store(handled, Ordering::Relaxed);
    }

    /// A copy of the record for reports, with uptime as of `now_ms`.
    pub fn snapshot(&self, now_ms: u64) -> ActorTreeNode {
        let status = self.status();
        let started = self.started_at_ms.load(Ordering::Relaxed);
        let uptime_ms = match status {
            ActorStatus::Running => now_ms.saturating_sub(started),
            _ => 0,
        };
        ActorTreeNode {
            name: self.name.clone(),
            kind: self.kind,
            id: self.actor_id.load(Ordering::Relaxed),
            status,
            uptime_ms,
            restarts: self.restarts(),
            last_failure: self.last_failure.lock().clone(),
            mailbox_depth: self.mailbox_depth(),
            messages_handled: self.messages_handled(),
            children: Vec::new(),
        }
    }
}

/// One actor in a report of the supervision tree.
#[derive(Clone, Debug, Serialize)]
pub struct ActorTreeNode {
    /// The stable name.
    pub name: String,
    /// The actor's kind.
    pub kind: &'static str,
    /// ractor's id of the current incarnation.
    pub id: u64,
    /// Its status.
    pub status: ActorStatus,
    /// Milliseconds since the current incarnation started (0 unless running).
    pub uptime_ms: u64,
    /// Restarts so far.
    pub restarts: u64,
    /// The last failure, if any.
    pub last_failure: Option<String>,
    /// Messages sent but not yet handled.
    pub mailbox_depth: u64,
    /// Messages handled so far.
    pub messages_handled: u64,
    /// Supervised children.
    pub children: Vec<ActorTreeNode>,
}

/// Every actor record of a node, by stable name.
#[derive(Clone, Debug, Default)]
pub struct ActorDirectory {
    records: Arc<RwLock<BTreeMap<String, Arc<ActorRecord>>>>,
}

impl ActorDirectory {
    /// An empty directory.
    pub fn new() -> ActorDirectory {
        ActorDirectory::default()
    }

    /// The record of `name`, created on first use (records outlive incarnations).
    pub fn record(&self, name: &str, parent: Option<&str>, kind: &'static str) -> Arc<ActorRecord> {
        if let Some(record) = self.records.read().get(name) {
            return Arc::clone(record);
        }
        let mut records = self.records.write();
        let record = records.entry(name.to_string()).or_insert_with(|| {
            Arc::new(ActorRecord::new(
                name.to_string(),
                parent.map(str::to_string),
                kind,
            ))
        });
        Arc::clone(record)
    }

    /// The record of `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<ActorRecord>> {
        self.records.read().get(name).cloned()
    }

    /// Forgets `name` and every record below it (a deleted vault).
    pub fn remove_subtree(&self, name: &str) {
        let prefix = format!("{name}/");
        self.records
            .write()
            .retain(|key, _| key != name && !key.starts_with(&prefix));
    }

    /// Every record, by name.
    pub fn records(&self) -> Vec<Arc<ActorRecord>> {
        self.records.read().values().cloned().collect()
    }

    /// The supervision forest as of `now_ms`: records without a (known) parent are roots.
    pub fn tree(&self, now_ms: u64) -> Vec<ActorTreeNode> {
        let records = self.records();
        let mut children: BTreeMap<String, Vec<Arc<ActorRecord>>> = BTreeMap::new();
        let mut roots = Vec::new();
        for record in &records {
            match &record.parent {
                Some(parent) if self.records.read().contains_key(parent) => children
                    .entry(parent.clone())
                    .or_default()
                    .push(Arc::clone(record)),
                _ => roots.push(Arc::clone(record)),
            }
        }
        roots
            .iter()
            .map(|root| build_node(root, &children, now_ms))
            .collect()
    }
}

fn build_node(
    record: &ActorRecord,
    children: &BTreeMap<String, Vec<Arc<ActorRecord>>>,
    now_ms: u64,
) -> ActorTreeNode {
    let mut node = record.snapshot(now_ms);
    if let Some(list) = children.get(&record.name) {
        node.children = list
            .iter()
            .map(|child| build_node(child, children, now_ms))
            .collect();
    }
    node
}

/// A typed handle on the actor registered under a stable name. It looks the actor up on
/// each send (a restart registers a new incarnation under the same name) and counts every
/// message in the actor's record.
pub struct Mailbox<M> {
    record: Arc<ActorRecord>,
    message: PhantomData<fn(M)>,
}

impl<M> Clone for Mailbox<M> {
    fn clone(&self) -> Self {
        Mailbox {
            record: Arc::clone(&self.record),
            message: PhantomData,
        }
    }
}

impl<M: Message> Mailbox<M> {
    /// A handle on the actor whose record is `record`.
    pub fn new(record: Arc<ActorRecord>) -> Mailbox<M> {
        Mailbox {
            record,
            message: PhantomData,
        }
    }

    /// The target's stable name.
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// The target's record.
    pub fn record(&self) -> &Arc<ActorRecord> {
        &self.record
    }

    fn cell(&self) -> Result<ActorCell, MailboxError> {
        ractor::registry::where_is(self.record.name.clone()).ok_or_else(|| {
            MailboxError::NotRunning {
                name: self.record.name.clone(),
            }
        })
    }

    /// Sends `message` without waiting for an answer.
    pub fn cast(&self, message: M) -> Result<(), MailboxError> {
        let cell = self.cell()?;
        self.record.enqueued_one();
        cell.send_message(message)
            .map_err(|_| MailboxError::NotRunning {
                name: self.record.name.clone(),
            })
    }

    /// Sends the message built around a reply port and waits up to `timeout_ms` for the
    /// answer.
    pub async fn call<R: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<R>) -> M,
        timeout_ms: u64,
    ) -> Result<R, MailboxError> {
        let cell = self.cell()?;
        self.record.enqueued_one();
        let timeout = Some(Duration::from_millis(timeout_ms));
        let name = || self.record.name.clone();
        match ractor::rpc::call(&cell, build, timeout).await {
            Ok(CallResult::Success(answer)) => Ok(answer),
            Ok(CallResult::Timeout) => Err(MailboxError::Timeout {
                name: name(),
                timeout_ms,
            }),
            Ok(CallResult::SenderError) => Err(MailboxError::Dropped { name: name() }),
            Err(_) => Err(MailboxError::NotRunning { name: name() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_nests_records_under_their_parents_and_keeps_counts_across_restarts() {
        let directory = ActorDirectory::new();
        let root = directory.record("node/1", None, "node");
        let vaults = directory.record("node/1/vaults", Some("node/1"), "vault_registry");
        let vault = directory.record("node/1/vault/a", Some("node/1/vaults"), "vault");
        root.started(1, 0);
        vaults.started(2, 0);
        vault.started(3, 10);
        vault.enqueued_one();
        vault.enqueued_one();
        vault.handled_one();
        vault.restarting("panicked".into());
        vault.started(4, 50);
        let again = directory.record("node/1/vault/a", Some("node/1/vaults"), "vault");
        assert!(Arc::ptr_eq(&vault, &again));
        let tree = directory.tree(100);
        assert_eq!(tree.len(), 1);
        let vault_node = &tree[0].children[0].children[0];
        assert_eq!(vault_node.name, "node/1/vault/a");
        assert_eq!(vault_node.restarts, 1);
        assert_eq!(vault_node.mailbox_depth, 1);
        assert_eq!(vault_node.uptime_ms, 50);
        assert_eq!(vault_node.last_failure.as_deref(), Some("panicked"));
        directory.remove_subtree("node/1/vault/a");
        assert!(directory.get("node/1/vault/a").is_none());
        assert!(directory.get("node/1/vaults").is_some());
    }
}
