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

/// A block built and written into a transaction, not yet committed.
struct PendingBlock {
    head: Head,
    buckets: StateBuckets,
}

impl Vault {
    /// Applies a batch atomically: every mutation and one block in one transaction, or
    /// nothing at all on any error. A batch that changes nothing records no block and
    /// returns the current revision.
    pub fn write(&mut self, batch: WriteBatch, now_ms: u64) -> Result<WriteOutcome, WriteError> {
        self.check_batch(&batch, now_ms)?;
        let mut txn = self.db.begin_write()?;
        let mut staging = Staging::new(&mut txn, self.id, self.buckets.clone());
        for (index, precondition) in batch.preconditions.iter().enumerate() {
            let matched = staging.any_live(&precondition.filter, now_ms)?;
            let must_match = precondition.kind == PreconditionKind::MustMatch;
            if matched != must_match {
                return Err(WriteError::PreconditionFailed { index, must_match });
            }
        }
        for (index, mutation) in batch.mutations.iter().enumerate() {
            staging.apply(index, mutation, &self.limits, now_ms)?;
        }
        let Staging {
            buckets,
            changed,
            operations,
            inserted,
            removed,
            ..
        } = staging;
        let operations_applied = operations.len();
        if operations.is_empty() {
            // Nothing changed: dropping the transaction aborts it.
            return Ok(WriteOutcome {
                revision: self.revision(),
                operations_applied,
                inserted,
                removed,
            });
        }
        let pending = self.record_block(&mut txn, operations, buckets, &changed, now_ms)?;
        txn.set_durability(self.options.commit_durability);
        txn.commit()?;
        self.head = pending.head;
        self.buckets = pending.buckets;
        Ok(WriteOutcome {
            revision: self.revision(),
            operations_applied,
            inserted,
            removed,
        })
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
    fn record_block(
        &self,
        txn: &mut WriteTransaction,
        operations: Vec<Operation>,
        buckets: StateBuckets,
        changed: &BTreeSet<u8>,
        now_ms: u64,
    ) -> Result<PendingBlock, WriteError> {
        let header = BlockHeader {
            height: self.head.height + 1,
            previous_hash: self.head.hash,
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
