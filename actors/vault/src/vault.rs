//! The writer side of one vault: schema deploys and write batches, each applied in one
//! storage transaction together with one ledger block.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use inferadb_evaluator::{Evaluator, EvaluatorLimits, DECISION_CACHE_ENTRIES_DEFAULT};
use inferadb_protocols::{Relationship, Revision, VaultId};
use inferadb_storage::{Database, Durability, WriteTransaction};

use crate::error::{VaultError, WriteError};
use crate::filter::{scan_matching, IndexKind, RelationshipFilter, ScanError};
use crate::keys::{decode_expiry_key, decode_forward, decode_index_value, encode_index_value};
use crate::keys::{expiry_key, forward_key, reverse_key};
use crate::keys::{names_ids, subject_parts};
use crate::ledger::{decode_bucket, Hash32, Operation, Reader, StateBuckets};
use crate::limits::VaultLimits;
use crate::snapshot::{ActiveSchema, VaultSnapshot};
use crate::tables;

/// How a vault is run.
#[derive(Clone, Debug)]
pub struct VaultOptions {
    /// The vault's limits.
    pub limits: VaultLimits,
    /// The limits of the evaluator built for each schema version.
    pub evaluator_limits: EvaluatorLimits,
    /// Decision cache entries per schema version's evaluator; 0 turns the cache off.
    /// Default: the evaluator's `DECISION_CACHE_ENTRIES_DEFAULT`.
    pub decision_cache_entries: u64,
    /// Durability of each commit. Default `Immediate`; an actor doing group commit picks
    /// `Deferred` and calls `Database::sync` once per batch of commits.
    pub commit_durability: Durability,
}

impl Default for VaultOptions {
    fn default() -> Self {
        Self {
            limits: VaultLimits::default(),
            evaluator_limits: EvaluatorLimits::default(),
            decision_cache_entries: DECISION_CACHE_ENTRIES_DEFAULT,
            commit_durability: Durability::Immediate,
        }
    }
}

/// One change of a write batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Store a relationship; `AlreadyExists` if it is stored and live.
    Create(Relationship),
    /// Store a relationship or update its expiry (upsert).
    Touch(Relationship),
    /// Remove a relationship, whatever its expiry; removing a missing one is no change.
    Delete(Relationship),
    /// Remove every stored relationship the filter matches (at most
    /// `delete_by_filter_max`).
    DeleteMatching(RelationshipFilter),
}

/// What a precondition requires of the state before the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreconditionKind {
    /// At least one live relationship matches.
    MustMatch,
    /// No live relationship matches.
    MustNotMatch,
}

/// A condition on the state before a batch; the batch is refused when it does not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Precondition {
    /// What is required.
    pub kind: PreconditionKind,
    /// Which relationships it is about.
    pub filter: RelationshipFilter,
}

/// An atomic batch of mutations with its preconditions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// Applied in order; each sees the effect of the previous ones.
    pub mutations: Vec<Mutation>,
    /// Checked against the state before the batch.
    pub preconditions: Vec<Precondition>,
}

/// The result of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    /// The revision that includes the batch (the current one when nothing changed).
    pub revision: Revision,
    /// Operations recorded (a touch that changes an expiry counts two).
    pub operations_applied: usize,
    /// Relationships inserted.
    pub inserted: usize,
    /// Relationships removed.
    pub removed: usize,
}

/// The result of a schema deploy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemaDeployed {
    /// The new version.
    pub version: u32,
    /// The revision of the block that records it.
    pub revision: Revision,
}

/// A stored schema version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaVersion {
    /// Its version (from 1).
    pub version: u32,
    /// When it was deployed (caller's clock).
    pub created_at_ms: u64,
    /// The revision of the block that deployed it.
    pub revision: Revision,
}

/// The newest block: height and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) height: u64,
    pub(crate) hash: Hash32,
}

impl Head {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = self.height.to_be_bytes().to_vec();
        out.extend_from_slice(&self.hash);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Head> {
        let mut reader = Reader::new(bytes);
        let head = Head {
            height: reader.u64()?,
            hash: reader.hash()?,
        };
        reader.is_empty().then_some(head)
    }
}

/// Schema record encoding: `u32 version ‖ u64 created_at_ms ‖ u64 revision ‖ text`.
pub(crate) fn encode_schema(version: &SchemaVersion, text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + text.len());
    out.extend_from_slice(&version.version.to_be_bytes());
    out.extend_from_slice(&version.created_at_ms.to_be_bytes());
    out.extend_from_slice(&version.revision.0.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out
}

pub(crate) fn decode_schema(bytes: &[u8]) -> Option<(SchemaVersion, String)> {
    let mut reader = Reader::new(bytes);
    let version = SchemaVersion {
        version: reader.u32()?,
        created_at_ms: reader.u64()?,
        revision: Revision(reader.u64()?),
    };
    let text = std::str::from_utf8(bytes.get(20..)?).ok()?;
    Some((version, text.to_owned()))
}

fn corrupt(what: impl Into<String>) -> VaultError {
    VaultError::Corrupt { what: what.into() }
}

/// The writer-side state of one vault. Exactly one exists per vault at a time (the vault
/// actor owns it); in-memory state changes only after a commit succeeded.
pub struct Vault {
    pub(crate) db: Arc<Database>,
    pub(crate) id: VaultId,
    pub(crate) options: VaultOptions,
    pub(crate) limits: Arc<VaultLimits>,
    pub(crate) head: Head,
    pub(crate) buckets: StateBuckets,
    pub(crate) schemas: Vec<SchemaVersion>,
    pub(crate) active: Option<Arc<ActiveSchema>>,
    /// The caller's index of the last command applied (see [`Vault::set_commit_index`]).
    pub(crate) commit_index: u64,
}

impl Vault {
    /// Loads a vault's head, buckets and schema versions.
    pub fn open(db: Arc<Database>, id: VaultId, options: VaultOptions) -> Result<Self, VaultError> {
        let read = db.begin_read();
        if read
            .open_table(tables::VAULTS)?
            .get(&id.0.to_be_bytes())?
            .is_none()
        {
            return Err(VaultError::VaultNotFound { id });
        }
        let (head, buckets) = load_state(&read, id)?;
        let commit_index = load_commit_index(&read, id)?;
        let mut schemas = Vec::new();
        let mut latest_text = None;
        for entry in read.open_table(&tables::schemas(id))?.iter()? {
            let (_, value) = entry?;
            let (version, text) = decode_schema(&value).ok_or_else(|| corrupt("schema record"))?;
            schemas.push(version);
            latest_text = Some(text);
        }
        drop(read);
        let active = match (schemas.last(), latest_text) {
            (Some(version), Some(text)) => {
                let compiled = inferadb_ipl::compile(&text)
                    .map_err(|_| corrupt("a stored schema no longer compiles"))?;
                Some(build_active(
                    &options,
                    version.version,
                    text,
                    compiled.schema,
                ))
            }
            _ => None,
        };
        Ok(Self {
            db,
            id,
            limits: Arc::new(options.limits.clone()),
            options,
            head,
            buckets,
            schemas,
            active,
            commit_index,
        })
    }

    /// The vault's id.
    pub fn id(&self) -> VaultId {
        self.id
    }

    /// The current revision (ledger height).
    pub fn revision(&self) -> Revision {
        Revision(self.head.height)
    }

    /// The hash of the newest block (zeros before the first).
    pub fn head_hash(&self) -> Hash32 {
        self.head.hash
    }

    /// The current state root.
    pub fn state_root(&self) -> Hash32 {
        self.buckets.root()
    }

    /// Every deployed schema version, oldest first.
    pub fn schema_versions(&self) -> &[SchemaVersion] {
        &self.schemas
    }

    /// The schema in force.
    pub fn active_schema(&self) -> Option<&Arc<ActiveSchema>> {
        self.active.as_ref()
    }

    /// The index the caller last set with [`Self::set_commit_index`]; after [`Self::open`],
    /// the one stored by the last commit (0 when none was ever stored).
    pub fn commit_index(&self) -> u64 {
        self.commit_index
    }

    /// The commit index stored by the last commit (what a reopen would find, once the file
    /// is synced); [`Self::commit_index`] may be ahead of it when the commands after that
    /// commit changed nothing.
    pub fn stored_commit_index(&self) -> Result<u64, VaultError> {
        load_commit_index(&self.db.begin_read(), self.id)
    }

    /// Sets an index of the caller's (a shard records the raft log index of the command it
    /// is applying) that every later commit stores in the vault's state table **in the same
    /// transaction** as its block, so that after a crash the caller knows exactly which of
    /// its commands the durable state includes. 0, the default, stores nothing.
    pub fn set_commit_index(&mut self, index: u64) {
        self.commit_index = index;
    }

    /// The options the vault runs with.
    pub fn options(&self) -> &VaultOptions {
        &self.options
    }

    /// An immutable read view at the current head.
    pub fn snapshot(&self) -> Result<Arc<VaultSnapshot>, VaultError> {
        let txn = self.db.begin_read();
        let forward = txn.table_handle(&tables::forward(self.id))?;
        let reverse = txn.table_handle(&tables::reverse(self.id))?;
        let expiry = txn.table_handle(&tables::expiry(self.id))?;
        let blocks = txn.table_handle(&tables::blocks(self.id))?;
        let state = txn.table_handle(&tables::state(self.id))?;
        Ok(Arc::new(VaultSnapshot {
            vault_id: self.id,
            revision: self.revision(),
            schema: self.active.clone(),
            schema_versions: self.schemas.as_slice().into(),
            limits: Arc::clone(&self.limits),
            txn,
            forward,
            reverse,
            expiry,
            blocks,
            state,
        }))
    }
}

/// Builds the active schema and its one evaluator.
pub(crate) fn build_active(
    options: &VaultOptions,
    version: u32,
    text: String,
    compiled: inferadb_ipl::CompiledSchema,
) -> Arc<ActiveSchema> {
    let compiled = Arc::new(compiled);
    let mut evaluator =
        Evaluator::new(Arc::clone(&compiled)).with_limits(options.evaluator_limits.clone());
    if options.decision_cache_entries > 0 {
        evaluator = evaluator.with_cache(options.decision_cache_entries);
    }
    Arc::new(ActiveSchema {
        version,
        text,
        compiled,
        evaluator: Arc::new(evaluator),
    })
}

/// Reads the head and the buckets from the state table.
pub(crate) fn load_state(
    read: &inferadb_storage::ReadTransaction,
    id: VaultId,
) -> Result<(Head, StateBuckets), VaultError> {
    let state = read.open_table(&tables::state(id))?;
    let head = match state.get(tables::HEAD_KEY)? {
        Some(bytes) => Head::decode(&bytes).ok_or_else(|| corrupt("head"))?,
        None => Head {
            height: 0,
            hash: [0; 32],
        },
    };
    let mut buckets = StateBuckets::default();
    for bucket in 0..=u8::MAX {
        if let Some(bytes) = state.get(&tables::bucket_key(bucket))? {
            buckets.set(
                bucket,
                decode_bucket(&bytes).ok_or_else(|| corrupt("bucket value"))?,
            );
        }
    }
    Ok((head, buckets))
}

/// Reads the caller's commit index from the state table (0 when absent).
fn load_commit_index(
    read: &inferadb_storage::ReadTransaction,
    id: VaultId,
) -> Result<u64, VaultError> {
    let state = read.open_table(&tables::state(id))?;
    match state.get(tables::COMMIT_INDEX_KEY)? {
        None => Ok(0),
        Some(bytes) => <[u8; 8]>::try_from(&bytes[..])
            .map(u64::from_be_bytes)
            .map_err(|_| corrupt("commit index")),
    }
}

/// The working state of one write transaction: the operations it recorded and the buckets
/// they changed, applied to the indexes as they are recorded.
pub(crate) struct Staging<'a> {
    txn: &'a mut WriteTransaction,
    forward: String,
    reverse: String,
    expiry: String,
    pub(crate) buckets: StateBuckets,
    pub(crate) changed: BTreeSet<u8>,
    pub(crate) operations: Vec<Operation>,
    pub(crate) inserted: usize,
    pub(crate) removed: usize,
}

impl<'a> Staging<'a> {
    pub(crate) fn new(txn: &'a mut WriteTransaction, id: VaultId, buckets: StateBuckets) -> Self {
        Self {
            txn,
            forward: tables::forward(id),
            reverse: tables::reverse(id),
            expiry: tables::expiry(id),
            buckets,
            changed: BTreeSet::new(),
            operations: Vec::new(),
            inserted: 0,
            removed: 0,
        }
    }

    /// The stored expiry of a relationship: `None` when absent, `Some(expiry)` otherwise.
    pub(crate) fn stored(
        &mut self,
        relationship: &Relationship,
    ) -> Result<Option<Option<u64>>, WriteError> {
        let table = self.txn.open_table(&self.forward)?;
        let Some(value) = table.get(&forward_key(relationship))? else {
            return Ok(None);
        };
        let (_, subject_id, _) = subject_parts(&relationship.subject);
        decode_index_value(&value)
            .filter(|value| names_ids(value, relationship.resource.object_id.as_ref(), subject_id))
            .map(|value| Some(value.expires_at_ms))
            .ok_or_else(|| WriteError::Corrupt {
                what: "forward index value (malformed, or another relationship's)".into(),
            })
    }

    pub(crate) fn insert(&mut self, relationship: Relationship) -> Result<(), WriteError> {
        let value = encode_index_value(&relationship);
        let forward = forward_key(&relationship);
        self.txn
            .open_table(&self.forward)?
            .insert(&forward, &value)?;
        self.txn
            .open_table(&self.reverse)?
            .insert(&reverse_key(&relationship), &value)?;
        if let Some(expires_at_ms) = relationship.expires_at_ms {
            self.txn
                .open_table(&self.expiry)?
                .insert(&expiry_key(expires_at_ms, &forward), &value)?;
        }
        self.changed.insert(self.buckets.insert(&relationship));
        self.inserted += 1;
        self.operations.push(Operation::Insert(relationship));
        Ok(())
    }

    /// Removes a relationship stored with `expires_at_ms`.
    pub(crate) fn remove(
        &mut self,
        mut relationship: Relationship,
        expires_at_ms: Option<u64>,
    ) -> Result<(), WriteError> {
        relationship.expires_at_ms = expires_at_ms;
        let forward = forward_key(&relationship);
        self.txn.open_table(&self.forward)?.remove(&forward)?;
        if let Some(expires_at_ms) = expires_at_ms {
            self.txn
                .open_table(&self.expiry)?
                .remove(&expiry_key(expires_at_ms, &forward))?;
        }
        self.txn
            .open_table(&self.reverse)?
            .remove(&reverse_key(&relationship))?;
        self.changed.insert(self.buckets.remove(&relationship));
        self.removed += 1;
        self.operations.push(Operation::Remove(relationship));
        Ok(())
    }

    /// Applies one mutation (already validated).
    pub(crate) fn apply(
        &mut self,
        index: usize,
        mutation: &Mutation,
        limits: &VaultLimits,
        now_ms: u64,
    ) -> Result<(), WriteError> {
        match mutation {
            Mutation::Create(relationship) => match self.stored(relationship)? {
                Some(expiry) if expiry.is_none_or(|at| at > now_ms) => {
                    Err(WriteError::AlreadyExists {
                        index,
                        relationship: Box::new(relationship.clone()),
                    })
                }
                // An expired copy is replaced: it no longer exists for anyone.
                Some(expiry) => {
                    self.remove(relationship.clone(), expiry)?;
                    self.insert(relationship.clone())
                }
                None => self.insert(relationship.clone()),
            },
            Mutation::Touch(relationship) => match self.stored(relationship)? {
                Some(expiry) if expiry == relationship.expires_at_ms => Ok(()),
                Some(expiry) => {
                    self.remove(relationship.clone(), expiry)?;
                    self.insert(relationship.clone())
                }
                None => self.insert(relationship.clone()),
            },
            Mutation::Delete(relationship) => match self.stored(relationship)? {
                Some(expiry) => self.remove(relationship.clone(), expiry),
                None => Ok(()),
            },
            Mutation::DeleteMatching(filter) => {
                let matched = self.matching(filter, limits.delete_by_filter_max)?;
                let limit = limits.delete_by_filter_max;
                if matched.len() as u64 > limit {
                    return Err(WriteError::TooManyMatches { index, limit });
                }
                for relationship in matched {
                    let expiry = relationship.expires_at_ms;
                    self.remove(relationship, expiry)?;
                }
                Ok(())
            }
        }
    }

    /// Up to `limit + 1` stored relationships matching `filter`, expired ones included
    /// (they are still stored, so a delete removes them too).
    pub(crate) fn matching(
        &mut self,
        filter: &RelationshipFilter,
        limit: u64,
    ) -> Result<Vec<Relationship>, WriteError> {
        let plan = filter.plan();
        let name = match plan.index {
            IndexKind::Forward => self.forward.clone(),
            IndexKind::Reverse => self.reverse.clone(),
        };
        let table = self.txn.open_table(&name)?;
        let mut found = Vec::new();
        let result = scan_matching(
            table.prefix(&plan.prefix)?,
            plan.index,
            filter,
            &mut |_, relationship| {
                found.push(relationship);
                if found.len() as u64 > limit {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        result.map_err(scan_to_write)?;
        Ok(found)
    }

    /// The first `limit` stored relationships that are expired at `now_ms`, each with its
    /// expiry, soonest expiry first (then in forward-key order): a walk of the expiry
    /// index's expired prefix only.
    pub(crate) fn expired(
        &mut self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<Relationship>, WriteError> {
        let table = self.txn.open_table(&self.expiry)?;
        let mut found = Vec::new();
        for entry in table.prefix(b"")? {
            if found.len() >= limit {
                break;
            }
            let (key, value) = entry?;
            let corrupt = || WriteError::Corrupt {
                what: "expiry index entry".into(),
            };
            let (expires_at_ms, forward) = decode_expiry_key(key).ok_or_else(corrupt)?;
            if expires_at_ms > now_ms {
                break;
            }
            let relationship = decode_forward(forward, &value)
                .filter(|relationship| relationship.expires_at_ms == Some(expires_at_ms))
                .ok_or_else(corrupt)?;
            found.push(relationship);
        }
        Ok(found)
    }

    /// Whether a live relationship matches `filter`.
    pub(crate) fn any_live(
        &mut self,
        filter: &RelationshipFilter,
        now_ms: u64,
    ) -> Result<bool, WriteError> {
        let plan = filter.plan();
        let name = match plan.index {
            IndexKind::Forward => self.forward.clone(),
            IndexKind::Reverse => self.reverse.clone(),
        };
        let table = self.txn.open_table(&name)?;
        let mut any = false;
        scan_matching(
            table.prefix(&plan.prefix)?,
            plan.index,
            filter,
            &mut |_, relationship| {
                any = relationship.is_live_at(now_ms);
                if any {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .map_err(scan_to_write)?;
        Ok(any)
    }
}

fn scan_to_write(error: ScanError) -> WriteError {
    match error {
        ScanError::Storage(error) => WriteError::Storage(error),
        ScanError::Corrupt(what) => WriteError::Corrupt { what },
    }
}
