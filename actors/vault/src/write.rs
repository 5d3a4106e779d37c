//! Write batches and schema deploys: validate, apply in one storage transaction, record
//! one block, commit, then (only then) update the in-memory head.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use inferadb_ipl::CompiledSchema;
use inferadb_protocols::Revision;
use inferadb_storage::WriteTransaction;

use crate::error::{SchemaError, WriteError};
use crate::filter::{scan_matching, IndexKind};
use crate::ledger::{
    block_hash, encode_bucket, operations_root, sha256, Block, BlockHeader, Operation, StateBuckets,
};
use crate::tables;
use crate::validate::validate_relationship;
use crate::vault::{
    build_active, encode_schema, Head, Mutation, PreconditionKind, SchemaDeployed, SchemaVersion,
    Staging, Vault, WriteBatch, WriteOutcome,
};

/// Why a batch of a group did not apply.
enum ApplyFailure {
    /// Refused before it wrote anything (a precondition): the transaction goes on.
    Rejected(WriteError),
    /// Failed after writing part of itself: the transaction must be abandoned.
    Aborted(WriteError),
}

/// Why an attempt at a group stopped.
enum GroupFailure {
    /// Batch `index` failed half-way; retry the group without it.
    Batch(usize, WriteError),
    /// The storage engine failed: the whole group fails.
    Storage(inferadb_storage::StorageError),
}

impl From<inferadb_storage::StorageError> for GroupFailure {
    fn from(error: inferadb_storage::StorageError) -> Self {
        GroupFailure::Storage(error)
    }
}

/// How a batch's failure at mutation `index` affects its group: the batch's first mutation
/// refused by a check that runs before it writes (`AlreadyExists`, `TooManyMatches`) has
/// written nothing, so the transaction goes on without the batch; any later failure has
/// written part of the batch, so the transaction must be abandoned (and the group applied
/// again without it, which costs every other batch of the group once more).
fn mutation_failure(index: usize, error: WriteError) -> ApplyFailure {
    let written_nothing = index == 0
        && matches!(
            error,
            WriteError::AlreadyExists { .. } | WriteError::TooManyMatches { .. }
        );
    if written_nothing {
        ApplyFailure::Rejected(error)
    } else {
        ApplyFailure::Aborted(error)
    }
}

/// One result per batch: the attempt's outcomes, with the batches that failed earlier.
fn merge_results(
    outcomes: Vec<Option<Result<WriteOutcome, WriteError>>>,
    failed: Vec<Option<WriteError>>,
) -> Vec<Result<WriteOutcome, WriteError>> {
    outcomes
        .into_iter()
        .zip(failed)
        .map(|(outcome, failure)| match (outcome, failure) {
            (_, Some(error)) => Err(error),
            (Some(outcome), None) => outcome,
            (None, None) => Err(WriteError::Corrupt {
                what: "invariant: a batch that did not fail has an outcome".into(),
            }),
        })
        .collect()
}

/// The storage engine failed under the group: every batch not refused for its own reason
/// fails with the engine's error (the first one gets it whole, the rest its text).
fn fail_group(
    error: inferadb_storage::StorageError,
    failed: Vec<Option<WriteError>>,
) -> Vec<Result<WriteOutcome, WriteError>> {
    let message = error.to_string();
    let mut error = Some(error);
    failed
        .into_iter()
        .map(|failure| match failure {
            Some(failure) => Err(failure),
            None => Err(match error.take() {
                Some(error) => WriteError::Storage(error),
                None => WriteError::GroupFailed {
                    message: message.clone(),
                },
            }),
        })
        .collect()
}

/// A block built and written into a transaction, not yet committed.
pub(crate) struct PendingBlock {
    pub(crate) head: Head,
    pub(crate) buckets: StateBuckets,
}

impl Vault {
    /// Applies a batch atomically: every mutation and one block in one transaction, or
    /// nothing at all on any error. A batch that changes nothing records no block and
    /// returns the current revision.
    pub fn write(&mut self, batch: WriteBatch, now_ms: u64) -> Result<WriteOutcome, WriteError> {
        let mut results = self.write_group(vec![batch], now_ms);
        results.pop().unwrap_or_else(|| {
            Err(WriteError::Corrupt {
                what: "invariant: a group of one batch has one result".into(),
            })
        })
    }

    /// Applies several batches in ONE storage transaction, in order, each atomically and
    /// with its own block, and returns one result per batch. The outcome is exactly that of
    /// applying them one by one: a batch that fails leaves no trace and later batches do
    /// not see it. Writing the touched pages once for the whole group is what makes
    /// concurrent small writes cheap (group commit of transactions, not just of fsyncs).
    pub fn write_group(
        &mut self,
        batches: Vec<WriteBatch>,
        now_ms: u64,
    ) -> Vec<Result<WriteOutcome, WriteError>> {
        self.write_group_timed(batches.into_iter().map(|batch| (batch, now_ms)).collect())
    }

    /// Like [`Self::write_group`], each batch at its own time (`(batch, now_ms)`): the
    /// outcome is exactly that of [`Self::write`] on each in turn, at its time. A shard
    /// applies consecutive replicated writes this way, one transaction for all of them.
    pub fn write_group_timed(
        &mut self,
        batches: Vec<(WriteBatch, u64)>,
    ) -> Vec<Result<WriteOutcome, WriteError>> {
        let mut failed: Vec<Option<WriteError>> = batches
            .iter()
            .map(|(batch, now_ms)| self.check_batch(batch, *now_ms).err())
            .collect();
        loop {
            match self.try_group(&batches, &failed) {
                Ok(outcomes) => return merge_results(outcomes, failed),
                // A batch failed half-way: the transaction is gone; apply the others again
                // without it. Batches before it are unaffected, so this ends.
                Err(GroupFailure::Batch(index, error)) => failed[index] = Some(error),
                Err(GroupFailure::Storage(error)) => return fail_group(error, failed),
            }
        }
    }

    /// One attempt at a group: every batch not yet failed, in one transaction.
    fn try_group(
        &mut self,
        batches: &[(WriteBatch, u64)],
        failed: &[Option<WriteError>],
    ) -> Result<Vec<Option<Result<WriteOutcome, WriteError>>>, GroupFailure> {
        let mut txn = self.db.begin_write()?;
        let mut head = self.head;
        let mut buckets = self.buckets.clone();
        let mut outcomes = Vec::with_capacity(batches.len());
        for (index, (batch, now_ms)) in batches.iter().enumerate() {
            if failed[index].is_some() {
                outcomes.push(None);
                continue;
            }
            let outcome = self.apply_batch(&mut txn, batch, (&mut head, &mut buckets), *now_ms);
            match outcome {
                Ok(outcome) => outcomes.push(Some(outcome)),
                Err(ApplyFailure::Rejected(error)) => outcomes.push(Some(Err(error))),
                Err(ApplyFailure::Aborted(WriteError::Storage(error))) => {
                    return Err(GroupFailure::Storage(error))
                }
                Err(ApplyFailure::Aborted(error)) => return Err(GroupFailure::Batch(index, error)),
            }
        }
        if head != self.head {
            txn.set_durability(self.options.commit_durability);
            txn.commit()?;
            self.head = head;
            self.buckets = buckets;
        }
        Ok(outcomes)
    }

    /// Applies one batch inside the group's transaction, advancing the tentative head.
    fn apply_batch(
        &self,
        txn: &mut WriteTransaction,
        batch: &WriteBatch,
        (head, buckets): (&mut Head, &mut StateBuckets),
        now_ms: u64,
    ) -> Result<Result<WriteOutcome, WriteError>, ApplyFailure> {
        let mut staging = Staging::new(txn, self.id, buckets.clone());
        for (index, precondition) in batch.preconditions.iter().enumerate() {
            let matched = staging
                .any_live(&precondition.filter, now_ms)
                .map_err(ApplyFailure::Aborted)?;
            let must_match = precondition.kind == PreconditionKind::MustMatch;
            if matched != must_match {
                // Nothing was written yet: the batch is refused, the group goes on.
                return Err(ApplyFailure::Rejected(WriteError::PreconditionFailed {
                    index,
                    must_match,
                }));
            }
        }
        for (index, mutation) in batch.mutations.iter().enumerate() {
            staging
                .apply(index, mutation, &self.limits, now_ms)
                .map_err(|error| mutation_failure(index, error))?;
        }
        let Staging {
            buckets: staged,
            changed,
            operations,
            inserted,
            removed,
            ..
        } = staging;
        let operations_applied = operations.len();
        if operations.is_empty() {
            return Ok(Ok(WriteOutcome {
                revision: Revision(head.height),
                operations_applied,
                inserted,
                removed,
            }));
        }
        let pending = self
            .record_block(txn, *head, operations, staged, &changed, now_ms)
            .map_err(ApplyFailure::Aborted)?;
        *head = pending.head;
        *buckets = pending.buckets;
        Ok(Ok(WriteOutcome {
            revision: Revision(head.height),
            operations_applied,
            inserted,
            removed,
        }))
    }

    /// Everything that can be checked before the transaction: sizes, the schema, every
    /// relationship, expiries and filters.
    fn check_batch(&self, batch: &WriteBatch, now_ms: u64) -> Result<(), WriteError> {
        let limits = &self.limits;
        if batch.mutations.len() > limits.write_batch_max {
            return Err(WriteError::BatchTooLarge {
                len: batch.mutations.len(),
                limit: limits.write_batch_max,
            });
        }
        if batch.preconditions.len() > limits.preconditions_max {
            return Err(WriteError::TooManyPreconditions {
                len: batch.preconditions.len(),
                limit: limits.preconditions_max,
            });
        }
        let schema = self.active.as_ref().ok_or(WriteError::NoSchema)?;
        for (index, precondition) in batch.preconditions.iter().enumerate() {
            precondition
                .filter
                .validate()
                .map_err(|error| WriteError::PreconditionInvalid { index, error })?;
        }
        for (index, mutation) in batch.mutations.iter().enumerate() {
            check_mutation(&schema.compiled, index, mutation, now_ms)?;
        }
        Ok(())
    }

    /// Builds the block for `operations`, writes it, the changed buckets and the head.
    pub(crate) fn record_block(
        &self,
        txn: &mut WriteTransaction,
        previous: Head,
        operations: Vec<Operation>,
        buckets: StateBuckets,
        changed: &BTreeSet<u8>,
        now_ms: u64,
    ) -> Result<PendingBlock, WriteError> {
        let header = BlockHeader {
            height: previous.height + 1,
            previous_hash: previous.hash,
            timestamp_ms: now_ms,
            operations_root: operations_root(&operations),
            state_root: buckets.root(),
            operation_count: operations.len() as u64,
        };
        let hash = block_hash(&header);
        let block = Block {
            height: header.height,
            previous_hash: header.previous_hash,
            timestamp_ms: header.timestamp_ms,
            operations_root: header.operations_root,
            state_root: header.state_root,
            operations,
            hash,
        };
        let encoded = block.encode();
        let limit = self.db.limits().value_size_max;
        if encoded.len() > limit {
            return Err(WriteError::BlockTooLarge {
                bytes: encoded.len(),
                limit,
            });
        }
        txn.open_table(&tables::blocks(self.id))?
            .insert(&block.height.to_be_bytes(), &encoded)?;
        let head = Head {
            height: block.height,
            hash,
        };
        let mut state = txn.open_table(&tables::state(self.id))?;
        for bucket in changed {
            state.insert(
                &tables::bucket_key(*bucket),
                &encode_bucket(&buckets.get(*bucket)),
            )?;
        }
        state.insert(tables::HEAD_KEY, &head.encode())?;
        if self.commit_index > 0 {
            state.insert(tables::COMMIT_INDEX_KEY, &self.commit_index.to_be_bytes())?;
        }
        Ok(PendingBlock { head, buckets })
    }

    /// Compiles `text` and makes it the next schema version, unless a stored relationship
    /// would be invalid under it. The deploy is recorded as a block of its own.
    pub fn deploy_schema(
        &mut self,
        text: &str,
        now_ms: u64,
    ) -> Result<SchemaDeployed, SchemaError> {
        let limit = self.limits.schema_text_max;
        if text.len() > limit {
            return Err(SchemaError::TooLarge {
                length: text.len(),
                limit,
            });
        }
        let compiled = inferadb_ipl::compile(text)
            .map_err(SchemaError::Invalid)?
            .schema;
        let mut txn = self.db.begin_write()?;
        self.check_orphans(&mut txn, &compiled)?;
        let version = self.schemas.last().map_or(1, |latest| latest.version + 1);
        let record = SchemaVersion {
            version,
            created_at_ms: now_ms,
            revision: Revision(self.head.height + 1),
        };
        txn.open_table(&tables::schemas(self.id))?
            .insert(&version.to_be_bytes(), &encode_schema(&record, text))?;
        let operation = Operation::SchemaDeployed {
            version,
            text_sha256: sha256(text.as_bytes()),
        };
        let pending = self
            .record_block(
                &mut txn,
                self.head,
                vec![operation],
                self.buckets.clone(),
                &BTreeSet::new(),
                now_ms,
            )
            .map_err(|error| match error {
                WriteError::Storage(error) => SchemaError::Storage(error),
                other => SchemaError::Corrupt {
                    what: other.to_string(),
                },
            })?;
        txn.set_durability(self.options.commit_durability);
        txn.commit()?;
        self.head = pending.head;
        self.active = Some(build_active(
            &self.options,
            version,
            text.to_owned(),
            compiled,
        ));
        self.schemas.push(record.clone());
        Ok(SchemaDeployed {
            version,
            revision: record.revision,
        })
    }

    /// Refuses the schema when any stored relationship is invalid under it.
    fn check_orphans(
        &self,
        txn: &mut WriteTransaction,
        compiled: &CompiledSchema,
    ) -> Result<(), SchemaError> {
        let table = txn.open_table(&tables::forward(self.id))?;
        let examples_max = self.limits.orphan_examples_max;
        let mut examples = Vec::new();
        let mut total = 0u64;
        let filter = crate::RelationshipFilter::default();
        scan_matching(
            table.prefix(b"")?,
            IndexKind::Forward,
            &filter,
            &mut |_, relationship| {
                if validate_relationship(compiled, 0, &relationship).is_err() {
                    total += 1;
                    if examples.len() < examples_max {
                        examples.push(relationship);
                    }
                }
                ControlFlow::Continue(())
            },
        )
        .map_err(|error| match error {
            crate::filter::ScanError::Storage(error) => SchemaError::Storage(error),
            crate::filter::ScanError::Corrupt(what) => SchemaError::Corrupt { what },
        })?;
        if total > 0 {
            return Err(SchemaError::WouldOrphan { examples, total });
        }
        Ok(())
    }
}

/// Validates one mutation against the schema and the caller's clock.
fn check_mutation(
    schema: &CompiledSchema,
    index: usize,
    mutation: &Mutation,
    now_ms: u64,
) -> Result<(), WriteError> {
    match mutation {
        Mutation::Create(relationship) | Mutation::Touch(relationship) => {
            validate_relationship(schema, index, relationship)?;
            match relationship.expires_at_ms {
                Some(expires_at_ms) if expires_at_ms <= now_ms => Err(WriteError::ExpiryInPast {
                    index,
                    expires_at_ms,
                    now_ms,
                }),
                _ => Ok(()),
            }
        }
        // A delete is checked against the schema too: a relationship the schema cannot
        // hold cannot be stored, so deleting one is a client mistake worth naming.
        Mutation::Delete(relationship) => validate_relationship(schema, index, relationship),
        Mutation::DeleteMatching(filter) => filter
            .validate()
            .map_err(|error| WriteError::FilterInvalid { index, error }),
    }
}
