//! Named limits of a vault. Every bound the vault enforces is a field here, with its
//! default documented, so the node's configuration can change any of them.

/// The bounds one vault enforces on writes, reads, schema deploys and verification.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaultLimits {
    /// Most mutations in one write batch. Default 1,000.
    pub write_batch_max: usize,
    /// Most preconditions in one write batch. Default 100.
    pub preconditions_max: usize,
    /// Most relationships one `DeleteMatching` mutation may remove (the batch fails with
    /// `TooManyMatches` beyond it). Default 100,000.
    pub delete_by_filter_max: u64,
    /// Largest page `read_relationships` returns. Default 1,000.
    pub read_page_max: usize,
    /// Largest page of blocks `blocks` returns. Default 100.
    pub block_page_max: usize,
    /// Orphaned relationships a refused schema deploy lists as examples. Default 20.
    pub orphan_examples_max: usize,
    /// Problems `verify_ledger` lists before it only counts. Default 20.
    pub verify_problems_max: usize,
    /// Longest schema text accepted by a deploy, in bytes. Default 1 MiB.
    pub schema_text_max: usize,
    /// Most write batches one group commit applies in one storage transaction (the vault
    /// actor applies the batches queued since its last flush, this many at a time). Default
    /// 256.
    pub group_commit_batches_max: usize,
}

impl Default for VaultLimits {
    fn default() -> Self {
        Self {
            write_batch_max: 1_000,
            preconditions_max: 100,
            delete_by_filter_max: 100_000,
            read_page_max: 1_000,
            block_page_max: 100,
            orphan_examples_max: 20,
            verify_problems_max: 20,
            schema_text_max: 1 << 20,
            group_commit_batches_max: 256,
        }
    }
}

/// Longest vault name, in bytes.
pub const VAULT_NAME_MAX: usize = 128;
