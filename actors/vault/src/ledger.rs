//! The ledger: blocks, operations, their canonical encoding, the operations Merkle root and
//! the bucketed state root.
//!
//! # Canonical encoding (hashed and stored; integers big-endian unless said otherwise)
//!
//! - relationship: `u32 key length ‖ forward key (see keys) ‖ expiry`, where expiry is
//!   `0x00` (never expires) or `0x01 ‖ u64 expires_at_ms`.
//! - operation: `0x01 ‖ relationship` (insert), `0x02 ‖ relationship` (remove, with the
//!   expiry it had), `0x03 ‖ u32 version ‖ 32-byte SHA-256 of the schema text` (deploy).
//! - block hash: SHA-256 of `u64 height ‖ previous_hash ‖ u64 timestamp_ms ‖
//!   operations_root ‖ state_root ‖ u64 operation count`. Genesis' previous hash is 32 zero
//!   bytes; heights start at 1.
//! - stored block: `0x01 (format) ‖ u64 height ‖ previous_hash ‖ u64 timestamp_ms ‖
//!   operations_root ‖ state_root ‖ hash ‖ u64 count ‖ count × (u32 length ‖ operation)`.
//!
//! # Roots
//!
//! - operations_root: SHA-256 Merkle root with leaf `SHA-256(0x00 ‖ operation)` and node
//!   `SHA-256(0x01 ‖ left ‖ right)`; an odd node is promoted unchanged to the next level; the
//!   root of no operations is SHA-256 of the empty string.
//! - state root: 256 buckets; a relationship's bucket is the first byte of BLAKE3 of its
//!   forward key. A bucket is a multiset hash: four u64 lanes (little-endian words of
//!   BLAKE3(canonical relationship bytes)) added lane-wise with wrapping on insert and
//!   subtracted on remove, so the value depends only on the set, not on the order of
//!   operations. The state root is BLAKE3 over the 256 buckets in order, each as 32 bytes
//!   (lanes little-endian).

use inferadb_protocols::Relationship;
use sha2::{Digest, Sha256};

use crate::keys::{canonical_key, decode_canonical};

/// A 32-byte hash.
pub type Hash32 = [u8; 32];

/// Number of state buckets.
pub const BUCKET_COUNT: usize = 256;

const OP_INSERT: u8 = 1;
const OP_REMOVE: u8 = 2;
const OP_SCHEMA: u8 = 3;
const BLOCK_FORMAT: u8 = 1;

/// One change recorded in a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A relationship was stored.
    Insert(Relationship),
    /// A relationship was removed; it carries the expiry it had.
    Remove(Relationship),
    /// A schema version was deployed.
    SchemaDeployed {
        /// The new version.
        version: u32,
        /// SHA-256 of its text.
        text_sha256: Hash32,
    },
}

/// One block of a vault's ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The block's height (its revision), from 1.
    pub height: u64,
    /// The previous block's hash (zeros for the first block).
    pub previous_hash: Hash32,
    /// The caller's clock when the block was made.
    pub timestamp_ms: u64,
    /// Merkle root of the operations.
    pub operations_root: Hash32,
    /// State root after the operations.
    pub state_root: Hash32,
    /// The operations, in order.
    pub operations: Vec<Operation>,
    /// The block hash (see the module documentation).
    pub hash: Hash32,
}

/// Appends the canonical bytes of a relationship.
pub fn encode_relationship(out: &mut Vec<u8>, relationship: &Relationship) {
    let key = canonical_key(relationship);
    let length = u32::try_from(key.len()).expect("invariant: keys are far below 4 GiB");
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&key);
    match relationship.expires_at_ms {
        None => out.push(0),
        Some(expiry) => {
            out.push(1);
            out.extend_from_slice(&expiry.to_be_bytes());
        }
    }
}

/// The canonical bytes of one operation.
pub fn encode_operation(operation: &Operation) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    match operation {
        Operation::Insert(relationship) => {
            out.push(OP_INSERT);
            encode_relationship(&mut out, relationship);
        }
        Operation::Remove(relationship) => {
            out.push(OP_REMOVE);
            encode_relationship(&mut out, relationship);
        }
        Operation::SchemaDeployed {
            version,
            text_sha256,
        } => {
            out.push(OP_SCHEMA);
            out.extend_from_slice(&version.to_be_bytes());
            out.extend_from_slice(text_sha256);
        }
    }
    out
}

/// A cursor over canonical bytes; every read fails with `None` past the end.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) fn take(&mut self, length: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < length {
            return None;
        }
        let (head, tail) = self.bytes.split_at(length);
        self.bytes = tail;
        Some(head)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|bytes| bytes[0])
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    pub(crate) fn hash(&mut self) -> Option<Hash32> {
        self.take(32)?.try_into().ok()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

fn decode_relationship(reader: &mut Reader<'_>) -> Option<Relationship> {
    let length = usize::try_from(reader.u32()?).ok()?;
    let key = reader.take(length)?;
    let expiry = match reader.u8()? {
        0 => None,
        1 => Some(reader.u64()?),
        _ => return None,
    };
    decode_canonical(key, expiry)
}

/// Decodes the canonical bytes of one operation; `None` when malformed.
pub fn decode_operation(bytes: &[u8]) -> Option<Operation> {
    let mut reader = Reader::new(bytes);
    let operation = match reader.u8()? {
        OP_INSERT => Operation::Insert(decode_relationship(&mut reader)?),
        OP_REMOVE => Operation::Remove(decode_relationship(&mut reader)?),
        OP_SCHEMA => Operation::SchemaDeployed {
            version: reader.u32()?,
            text_sha256: reader.hash()?,
        },
        _ => return None,
    };
    reader.is_empty().then_some(operation)
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Hash32 {
    Sha256::digest(bytes).into()
}

/// The Merkle root of already-encoded operations (see the module documentation).
pub fn merkle_root(encoded_operations: &[Vec<u8>]) -> Hash32 {
    if encoded_operations.is_empty() {
        return sha256(b"");
    }
    let mut level: Vec<Hash32> = encoded_operations
        .iter()
        .map(|operation| {
            let mut hasher = Sha256::new();
            hasher.update([0x00]);
            hasher.update(operation);
            hasher.finalize().into()
        })
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => {
                    let mut hasher = Sha256::new();
                    hasher.update([0x01]);
                    hasher.update(left);
                    hasher.update(right);
                    hasher.finalize().into()
                }
                [odd] => *odd,
                _ => unreachable!("chunks(2) yields one or two hashes"),
            })
            .collect();
    }
    level[0]
}

/// The operations root of a list of operations.
pub fn operations_root(operations: &[Operation]) -> Hash32 {
    let encoded: Vec<Vec<u8>> = operations.iter().map(encode_operation).collect();
    merkle_root(&encoded)
}

/// The header fields a block hash covers.
#[derive(Clone, Copy, Debug)]
pub struct BlockHeader {
    /// Height.
    pub height: u64,
    /// Previous block's hash.
    pub previous_hash: Hash32,
    /// Timestamp.
    pub timestamp_ms: u64,
    /// Operations root.
    pub operations_root: Hash32,
    /// State root.
    pub state_root: Hash32,
    /// Number of operations.
    pub operation_count: u64,
}

/// The hash of a block (see the module documentation).
pub fn block_hash(header: &BlockHeader) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(header.height.to_be_bytes());
    hasher.update(header.previous_hash);
    hasher.update(header.timestamp_ms.to_be_bytes());
    hasher.update(header.operations_root);
    hasher.update(header.state_root);
    hasher.update(header.operation_count.to_be_bytes());
    hasher.finalize().into()
}

impl Block {
    /// The fields its hash covers.
    pub fn header(&self) -> BlockHeader {
        BlockHeader {
            height: self.height,
            previous_hash: self.previous_hash,
            timestamp_ms: self.timestamp_ms,
            operations_root: self.operations_root,
            state_root: self.state_root,
            operation_count: self.operations.len() as u64,
        }
    }

    /// The stored encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(185 + 64 * self.operations.len());
        out.push(BLOCK_FORMAT);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.previous_hash);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.operations_root);
        out.extend_from_slice(&self.state_root);
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&(self.operations.len() as u64).to_be_bytes());
        for operation in &self.operations {
            let encoded = encode_operation(operation);
            let length = u32::try_from(encoded.len()).expect("invariant: an operation is small");
            out.extend_from_slice(&length.to_be_bytes());
            out.extend_from_slice(&encoded);
        }
        out
    }

    /// Decodes the stored encoding; `None` when malformed.
    pub fn decode(bytes: &[u8]) -> Option<Block> {
        let mut reader = Reader::new(bytes);
        if reader.u8()? != BLOCK_FORMAT {
            return None;
        }
        let height = reader.u64()?;
        let previous_hash = reader.hash()?;
        let timestamp_ms = reader.u64()?;
        let operations_root = reader.hash()?;
        let state_root = reader.hash()?;
        let hash = reader.hash()?;
        let count = reader.u64()?;
        let mut operations = Vec::new();
        for _ in 0..count {
            let length = usize::try_from(reader.u32()?).ok()?;
            operations.push(decode_operation(reader.take(length)?)?);
        }
        reader.is_empty().then_some(Block {
            height,
            previous_hash,
            timestamp_ms,
            operations_root,
            state_root,
            operations,
            hash,
        })
    }
}

/// One bucket's multiset hash: four wrapping u64 lanes.
pub type BucketValue = [u64; 4];

/// The 256 state buckets of a vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateBuckets {
    buckets: Box<[BucketValue; BUCKET_COUNT]>,
}

impl Default for StateBuckets {
    fn default() -> Self {
        Self {
            buckets: Box::new([[0; 4]; BUCKET_COUNT]),
        }
    }
}

/// The bucket a relationship falls in: the first byte of BLAKE3 of its forward key.
pub fn bucket_of(relationship: &Relationship) -> u8 {
    blake3::hash(&canonical_key(relationship)).as_bytes()[0]
}

/// The lanes a relationship contributes to its bucket.
pub fn relationship_lanes(relationship: &Relationship) -> BucketValue {
    let mut bytes = Vec::with_capacity(96);
    encode_relationship(&mut bytes, relationship);
    let digest = blake3::hash(&bytes);
    let mut lanes = [0u64; 4];
    for (lane, chunk) in lanes.iter_mut().zip(digest.as_bytes().chunks_exact(8)) {
        *lane = u64::from_le_bytes(chunk.try_into().expect("invariant: chunks of 8 bytes"));
    }
    lanes
}

/// Encodes a bucket value as 32 bytes (lanes little-endian).
pub fn encode_bucket(value: &BucketValue) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, lane) in out.chunks_exact_mut(8).zip(value) {
        chunk.copy_from_slice(&lane.to_le_bytes());
    }
    out
}

/// Decodes a 32-byte bucket value; `None` when the length is wrong.
pub fn decode_bucket(bytes: &[u8]) -> Option<BucketValue> {
    if bytes.len() != 32 {
        return None;
    }
    let mut value = [0u64; 4];
    for (lane, chunk) in value.iter_mut().zip(bytes.chunks_exact(8)) {
        *lane = u64::from_le_bytes(chunk.try_into().ok()?);
    }
    Some(value)
}

impl StateBuckets {
    /// Adds a relationship; returns its bucket.
    pub fn insert(&mut self, relationship: &Relationship) -> u8 {
        let bucket = bucket_of(relationship);
        let lanes = relationship_lanes(relationship);
        let value = &mut self.buckets[usize::from(bucket)];
        for (slot, lane) in value.iter_mut().zip(lanes) {
            *slot = slot.wrapping_add(lane);
        }
        bucket
    }

    /// Removes a relationship; returns its bucket.
    pub fn remove(&mut self, relationship: &Relationship) -> u8 {
        let bucket = bucket_of(relationship);
        let lanes = relationship_lanes(relationship);
        let value = &mut self.buckets[usize::from(bucket)];
        for (slot, lane) in value.iter_mut().zip(lanes) {
            *slot = slot.wrapping_sub(lane);
        }
        bucket
    }

    /// Applies one operation; returns the bucket it changed, if any.
    pub fn apply(&mut self, operation: &Operation) -> Option<u8> {
        match operation {
            Operation::Insert(relationship) => Some(self.insert(relationship)),
            Operation::Remove(relationship) => Some(self.remove(relationship)),
            Operation::SchemaDeployed { .. } => None,
        }
    }

    /// One bucket's value.
    pub fn get(&self, bucket: u8) -> BucketValue {
        self.buckets[usize::from(bucket)]
    }

    /// Sets one bucket's value.
    pub fn set(&mut self, bucket: u8, value: BucketValue) {
        self.buckets[usize::from(bucket)] = value;
    }

    /// The state root: BLAKE3 over the 256 buckets in order.
    pub fn root(&self) -> Hash32 {
        // One 8 KiB input rather than 256 updates of 32 bytes: BLAKE3 then hashes its 1 KiB
        // chunks side by side in SIMD lanes (the digest is the same; every block computes it).
        let mut bytes = [0u8; 32 * BUCKET_COUNT];
        for (out, value) in bytes.chunks_exact_mut(32).zip(self.buckets.iter()) {
            out.copy_from_slice(&encode_bucket(value));
        }
        *blake3::hash(&bytes).as_bytes()
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// Decodes lowercase hex; `None` when malformed. Only lowercase digits are accepted so that
/// every byte string has exactly one text form (tokens and cursors are compared as text).
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text
        .bytes()
        .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
    if !digits || !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok())
        .collect()
}
