//! Rebuilding a vault from another copy's ledger: [`Vault::replay_block`] re-applies a stored
//! block's operations and proves, by its hash, that the copy now holds exactly the block the
//! original recorded (same operations, timestamp, state root and chain link).

use inferadb_protocols::Revision;

use crate::error::{VaultError, WriteError};
use crate::ledger::{sha256, Block, Operation};
use crate::tables;
use crate::vault::{build_active, decode_schema, encode_schema, SchemaVersion, Staging, Vault};

fn corrupt(what: impl Into<String>) -> VaultError {
    VaultError::Corrupt { what: what.into() }
}

fn from_write(error: WriteError) -> VaultError {
    match error {
        WriteError::Storage(error) => VaultError::Storage(error),
        other => corrupt(other.to_string()),
    }
}

/// Re-applies one operation of a replayed block; returns the version and text hash of a
/// schema deploy, which the caller completes.
fn replay_operation(
    staging: &mut Staging<'_>,
    block: &Block,
    operation: &Operation,
) -> Result<Option<(u32, [u8; 32])>, VaultError> {
    match operation {
        Operation::Insert(relationship) => {
            if staging.stored(relationship).map_err(from_write)?.is_some() {
                return Err(corrupt(format!(
                    "replayed block {}: inserts `{relationship}`, which is stored",
                    block.height
                )));
            }
            staging.insert(relationship.clone()).map_err(from_write)?;
            Ok(None)
        }
        Operation::Remove(relationship) => {
            let stored = staging.stored(relationship).map_err(from_write)?;
            if stored != Some(relationship.expires_at_ms) {
                return Err(corrupt(format!(
                    "replayed block {}: removes `{relationship}`, which is not stored",
                    block.height
                )));
            }
            staging
                .remove(relationship.clone(), relationship.expires_at_ms)
                .map_err(from_write)?;
            Ok(None)
        }
        Operation::SchemaDeployed {
            version,
            text_sha256,
        } => {
            staging.operations.push(operation.clone());
            Ok(Some((*version, *text_sha256)))
        }
    }
}

impl Vault {
    /// Every stored schema version with its text, oldest first.
    pub fn schema_texts(&self) -> Result<Vec<(SchemaVersion, String)>, VaultError> {
        let read = self.db.begin_read();
        let mut texts = Vec::new();
        for entry in read.open_table(&tables::schemas(self.id))?.iter()? {
            let (_, value) = entry?;
            texts.push(decode_schema(&value).ok_or_else(|| corrupt("schema record"))?);
        }
        Ok(texts)
    }

    /// Appends `block`, taken from another copy of this vault's ledger, by re-applying its
    /// operations in one transaction: every insert must be of an absent relationship and
    /// every remove of a stored one with that exact expiry, a schema deploy needs its text
    /// (`schema_text`, whose SHA-256 the operation records) and becomes the next version
    /// (created at the block's timestamp, at the block's revision). The rebuilt block must
    /// hash to `block.hash`, which covers the chain link, the timestamp, the operations
    /// root and the state root; otherwise nothing is committed and the error is `Corrupt`.
    /// The caller's commit index (if set) is stored with it, as with every commit.
    pub fn replay_block(
        &mut self,
        block: &Block,
        schema_text: Option<&str>,
    ) -> Result<(), VaultError> {
        if block.height != self.head.height + 1 || block.previous_hash != self.head.hash {
            return Err(corrupt(format!(
                "replayed block {} does not follow the head at height {}",
                block.height, self.head.height
            )));
        }
        let mut txn = self.db.begin_write()?;
        let mut deployed = None;
        let (operations, buckets, changed) = {
            let mut staging = Staging::new(&mut txn, self.id, self.buckets.clone());
            for operation in &block.operations {
                if let Some(version) = replay_operation(&mut staging, block, operation)? {
                    let text = schema_text
                        .filter(|text| sha256(text.as_bytes()) == version.1)
                        .ok_or_else(|| {
                            corrupt(format!(
                                "replayed block {}: schema version {} needs its text",
                                block.height, version.0
                            ))
                        })?;
                    deployed = Some((version.0, text));
                }
            }
            (staging.operations, staging.buckets, staging.changed)
        };
        let schema = match deployed {
            Some((version, text)) => Some(self.stage_schema(&mut txn, block, version, text)?),
            None => None,
        };
        let pending = self
            .record_block(
                &mut txn,
                self.head,
                operations,
                buckets,
                &changed,
                block.timestamp_ms,
            )
            .map_err(from_write)?;
        if pending.head.hash != block.hash {
            return Err(corrupt(format!(
                "replayed block {}: the rebuilt block's hash differs from the original's",
                block.height
            )));
        }
        txn.set_durability(self.options.commit_durability);
        txn.commit()?;
        self.head = pending.head;
        self.buckets = pending.buckets;
        if let Some((record, text, compiled)) = schema {
            self.active = Some(build_active(&self.options, record.version, text, compiled));
            self.schemas.push(record);
        }
        Ok(())
    }

    /// Stores the schema version a replayed block deploys; returns it compiled.
    fn stage_schema(
        &self,
        txn: &mut inferadb_storage::WriteTransaction,
        block: &Block,
        version: u32,
        text: &str,
    ) -> Result<(SchemaVersion, String, inferadb_ipl::CompiledSchema), VaultError> {
        let expected = self.schemas.last().map_or(1, |latest| latest.version + 1);
        if version != expected {
            return Err(corrupt(format!(
                "replayed block {}: deploys schema version {version}, expected {expected}",
                block.height
            )));
        }
        let compiled = inferadb_ipl::compile(text)
            .map_err(|_| corrupt("a replayed schema does not compile"))?
            .schema;
        let record = SchemaVersion {
            version,
            created_at_ms: block.timestamp_ms,
            revision: Revision(block.height),
        };
        txn.open_table(&tables::schemas(self.id))?
            .insert(&version.to_be_bytes(), &encode_schema(&record, text))?;
        Ok((record, text.to_owned(), compiled))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use inferadb_protocols::{Relationship, VaultId};
    use inferadb_storage::io::MemoryIo;

    use crate::{open_database_with_io, Mutation, NodeCatalog, Vault, VaultOptions, WriteBatch};

    const SCHEMA: &str = "type user {}\ntype doc { relation viewer: user }\n";
    const SCHEMA2: &str =
        "type user {}\ntype doc { relation viewer: user\n relation owner: user }\n";
    const ID: VaultId = VaultId(9);

    fn fresh() -> Vault {
        let db = Arc::new(open_database_with_io(Arc::new(MemoryIo::default())).unwrap());
        NodeCatalog::open(Arc::clone(&db), [0; 32])
            .unwrap()
            .create_vault(ID, "v", 1)
            .unwrap();
        Vault::open(db, ID, VaultOptions::default()).unwrap()
    }

    fn rel(text: &str) -> Relationship {
        text.parse().unwrap()
    }

    fn write(vault: &mut Vault, mutations: Vec<Mutation>, now_ms: u64) {
        let batch = WriteBatch {
            mutations,
            preconditions: Vec::new(),
        };
        vault.write(batch, now_ms).unwrap();
    }

    #[test]
    fn replaying_every_block_rebuilds_the_same_ledger_and_tampering_is_refused() {
        let mut original = fresh();
        original.set_commit_index(5);
        original.deploy_schema(SCHEMA, 10).unwrap();
        write(
            &mut original,
            vec![
                Mutation::Create(rel("doc:a#viewer@user:x")),
                Mutation::Create(rel("doc:a#viewer@user:y[expires_at_ms:99]")),
            ],
            11,
        );
        original.set_commit_index(7);
        original.deploy_schema(SCHEMA2, 12).unwrap();
        write(
            &mut original,
            vec![
                Mutation::Delete(rel("doc:a#viewer@user:y")),
                Mutation::Touch(rel("doc:a#owner@user:x[expires_at_ms:500]")),
            ],
            13,
        );
        let snapshot = original.snapshot().unwrap();
        let blocks = snapshot.blocks(1, 100).unwrap();
        let texts = original.schema_texts().unwrap();
        assert_eq!(texts.len(), 2);

        let mut copy = fresh();
        copy.set_commit_index(7);
        for block in &blocks {
            let text = block
                .operations
                .iter()
                .find_map(|operation| match operation {
                    crate::Operation::SchemaDeployed { version, .. } => texts
                        .iter()
                        .find(|(record, _)| record.version == *version)
                        .map(|(_, text)| text.as_str()),
                    _ => None,
                });
            // A tampered block (another timestamp) is refused and changes nothing.
            let mut tampered = block.clone();
            tampered.timestamp_ms += 1;
            assert!(copy.replay_block(&tampered, text).is_err());
            copy.replay_block(block, text).unwrap();
        }
        assert_eq!(copy.head_hash(), original.head_hash());
        assert_eq!(copy.state_root(), original.state_root());
        assert_eq!(copy.schema_versions(), original.schema_versions());
        assert_eq!(copy.schema_texts().unwrap(), texts);
        assert_eq!(copy.snapshot().unwrap().blocks(1, 100).unwrap(), blocks);
        assert!(copy.snapshot().unwrap().verify_ledger().unwrap().holds);
        // The commit index is stored with the commits and survives a reopen.
        let reopened = Vault::open(Arc::clone(&copy.db), ID, VaultOptions::default()).unwrap();
        assert_eq!(reopened.commit_index(), 7);
        assert_eq!(reopened.active_schema().unwrap().version, 2);
    }
}
