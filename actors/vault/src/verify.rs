//! Ledger verification: every block, every root, the replayed state against the stored
//! buckets and the indexes, and the reverse index against the forward one.

use inferadb_protocols::Relationship;

use crate::error::VaultError;
use crate::keys::{decode_forward, expiry_key, reverse_key};
use crate::ledger::{
    block_hash, decode_bucket, hex, operations_root, sha256, Block, Hash32, Operation, StateBuckets,
};
use crate::snapshot::VaultSnapshot;
use crate::tables;
use crate::vault::Head;

/// What `verify_ledger` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerReport {
    /// Whether every check passed.
    pub holds: bool,
    /// The snapshot's height.
    pub height: u64,
    /// Blocks checked.
    pub blocks_checked: u64,
    /// Relationships in the forward index.
    pub relationships: u64,
    /// The state root recomputed from the forward index, in hex.
    pub state_root_hex: String,
    /// The first `verify_problems_max` problems found.
    pub problems: Vec<String>,
    /// How many problems were found in all.
    pub problems_total: u64,
}

struct Problems {
    list: Vec<String>,
    total: u64,
    max: usize,
}

impl Problems {
    fn push(&mut self, problem: String) {
        self.total += 1;
        if self.list.len() < self.max {
            self.list.push(problem);
        }
    }
}

/// A schema deploy the ledger records: version, SHA-256 of the text, height.
type Deploy = (u32, Hash32, u64);

/// What replaying the chain gives: the buckets, the last block's hash, the block count,
/// the schema deploys and the number of live relationships the operations leave.
type Replayed = (StateBuckets, Hash32, u64, Vec<Deploy>, u64);

impl VaultSnapshot {
    /// Recomputes every block hash, chain link and operations root, replays every
    /// operation into fresh buckets checking each block's state root, then checks the
    /// replayed buckets against the stored ones and against buckets recomputed from the
    /// forward index, and that the reverse index mirrors the forward index exactly.
    pub fn verify_ledger(&self) -> Result<LedgerReport, VaultError> {
        let mut problems = Problems {
            list: Vec::new(),
            total: 0,
            max: self.limits.verify_problems_max,
        };
        let (replayed, last_hash, blocks_checked, deployed, replayed_count) =
            self.replay_blocks(&mut problems)?;
        self.check_schemas(&deployed, &mut problems)?;
        self.check_state_table(&replayed, last_hash, &mut problems)?;
        let (indexed, relationships) = self.check_indexes(&mut problems)?;
        if indexed != replayed {
            problems.push("the forward index does not hold the state the ledger replays to".into());
        }
        // The bucket sums alone could in principle be matched by a crafted set of extra
        // relationships; the count must match too.
        if relationships != replayed_count {
            problems.push(format!(
                "the forward index holds {relationships} relationships, the ledger replays to {replayed_count}"
            ));
        }
        Ok(LedgerReport {
            holds: problems.total == 0,
            height: self.revision.0,
            blocks_checked,
            relationships,
            state_root_hex: hex(&indexed.root()),
            problems: problems.list,
            problems_total: problems.total,
        })
    }

    /// Replays the chain; returns the buckets, the last block's hash, the block count and
    /// every schema deploy the ledger records (version, text hash, height).
    fn replay_blocks(&self, problems: &mut Problems) -> Result<Replayed, VaultError> {
        let table = self.blocks_table();
        let mut buckets = StateBuckets::default();
        let mut previous = [0u8; 32];
        let mut checked = 0;
        let mut deployed = Vec::new();
        let mut count: u64 = 0;
        for height in 1..=self.revision.0 {
            let Some(bytes) = table.get(&height.to_be_bytes())? else {
                problems.push(format!("block {height}: missing"));
                continue;
            };
            checked += 1;
            let Some(block) = Block::decode(&bytes) else {
                problems.push(format!("block {height}: cannot be decoded"));
                continue;
            };
            check_block(&block, height, &previous, problems);
            for operation in &block.operations {
                buckets.apply(operation);
                match operation {
                    Operation::Insert(_) => count = count.wrapping_add(1),
                    Operation::Remove(_) => count = count.wrapping_sub(1),
                    Operation::SchemaDeployed {
                        version,
                        text_sha256,
                    } => deployed.push((*version, *text_sha256, height)),
                }
            }
            if buckets.root() != block.state_root {
                problems.push(format!(
                    "block {height}: state_root differs from the replayed state"
                ));
            }
            previous = block.hash;
        }
        if table.len() != self.revision.0 {
            problems.push(format!(
                "{} blocks stored for height {}",
                table.len(),
                self.revision.0
            ));
        }
        Ok((buckets, previous, checked, deployed, count))
    }

    /// Every stored schema version with its text.
    fn schema_records(&self) -> Result<Vec<(crate::vault::SchemaVersion, String)>, VaultError> {
        let table = self
            .transaction()
            .open_table(&tables::schemas(self.vault_id))?;
        let mut records = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            let record =
                crate::vault::decode_schema(&value).ok_or_else(|| VaultError::Corrupt {
                    what: "schema record".into(),
                })?;
            records.push(record);
        }
        Ok(records)
    }

    /// The stored schema versions must be exactly the deploys the ledger records: same
    /// versions, same text (by SHA-256), at the recorded heights.
    fn check_schemas(
        &self,
        deployed: &[Deploy],
        problems: &mut Problems,
    ) -> Result<(), VaultError> {
        let stored = self.schema_records()?;
        if stored.len() != deployed.len() {
            problems.push(format!(
                "{} schema versions stored, the ledger records {} deploys",
                stored.len(),
                deployed.len()
            ));
        }
        for (version, text_sha256, height) in deployed {
            match stored.iter().find(|(record, _)| record.version == *version) {
                None => problems.push(format!("schema version {version}: missing")),
                Some((record, text)) => {
                    if sha256(text.as_bytes()) != *text_sha256 {
                        problems.push(format!(
                            "schema version {version}: text differs from the ledger's hash"
                        ));
                    }
                    if record.revision.0 != *height {
                        problems.push(format!(
                            "schema version {version}: recorded at revision {}, the ledger says {height}",
                            record.revision.0
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The stored head and buckets must equal the replayed ones.
    fn check_state_table(
        &self,
        replayed: &StateBuckets,
        last_hash: Hash32,
        problems: &mut Problems,
    ) -> Result<(), VaultError> {
        let state = self.state_table();
        let head = state
            .get(tables::HEAD_KEY)?
            .and_then(|bytes| Head::decode(&bytes));
        let expected = Head {
            height: self.revision.0,
            hash: last_hash,
        };
        if self.revision.0 > 0 && head != Some(expected) {
            problems.push("the stored head is not the last block".into());
        }
        let mut stored = StateBuckets::default();
        for bucket in 0..=u8::MAX {
            if let Some(bytes) = state.get(&tables::bucket_key(bucket))? {
                match decode_bucket(&bytes) {
                    Some(value) => stored.set(bucket, value),
                    None => problems.push(format!("bucket {bucket}: malformed")),
                }
            }
        }
        for bucket in 0..=u8::MAX {
            if stored.get(bucket) != replayed.get(bucket) {
                problems.push(format!(
                    "bucket {bucket}: stored value differs from the replayed one"
                ));
            }
        }
        Ok(())
    }

    /// Recomputes the buckets from the forward index and checks the reverse mirror.
    fn check_indexes(&self, problems: &mut Problems) -> Result<(StateBuckets, u64), VaultError> {
        let forward = self.forward_table();
        let reverse = self.reverse_table();
        let expiry = self.expiry_table();
        let mut buckets = StateBuckets::default();
        let mut count = 0u64;
        let mut expiring = 0u64;
        for entry in forward.iter()? {
            let (key, value) = entry?;
            count += 1;
            let Some(relationship) = decode_forward(key, &value) else {
                problems.push(format!("forward entry {}: malformed", hex(key)));
                continue;
            };
            buckets.insert(&relationship);
            check_mirror(&reverse, &relationship, &value, problems)?;
            if let Some(expires_at_ms) = relationship.expires_at_ms {
                expiring += 1;
                match expiry.get(&expiry_key(expires_at_ms, key))? {
                    Some(mirror) if mirror.as_ref() == value.as_ref() => {}
                    Some(_) => {
                        problems.push(format!("expiry entry of {relationship}: other value"))
                    }
                    None => problems.push(format!("expiry entry of {relationship}: missing")),
                }
            }
        }
        if expiry.len() != expiring {
            problems.push(format!(
                "the expiry index has {} entries, the forward index {expiring} with an expiry",
                expiry.len()
            ));
        }
        if reverse.len() != count {
            problems.push(format!(
                "the reverse index has {} entries, the forward index {count}",
                reverse.len()
            ));
        }
        Ok((buckets, count))
    }
}

fn check_mirror(
    reverse: &inferadb_storage::ReadTable<'_>,
    relationship: &Relationship,
    value: &[u8],
    problems: &mut Problems,
) -> Result<(), VaultError> {
    match reverse.get(&reverse_key(relationship))? {
        Some(mirror) if mirror.as_ref() == value => {}
        Some(_) => problems.push(format!("reverse entry of {relationship}: other expiry")),
        None => problems.push(format!("reverse entry of {relationship}: missing")),
    }
    Ok(())
}

/// Checks one block's height, link, operations root and hash.
fn check_block(block: &Block, height: u64, previous: &Hash32, problems: &mut Problems) {
    if block.height != height {
        problems.push(format!("block {height}: records height {}", block.height));
    }
    if &block.previous_hash != previous {
        problems.push(format!(
            "block {height}: previous_hash does not link to block {}",
            height - 1
        ));
    }
    if operations_root(&block.operations) != block.operations_root {
        problems.push(format!(
            "block {height}: operations_root does not match its operations"
        ));
    }
    if block_hash(&block.header()) != block.hash {
        problems.push(format!("block {height}: hash does not match its contents"));
    }
}
