//! Revision tokens: an opaque, authenticated form of a revision that clients pass back for
//! read-your-writes.
//!
//! Format: `r2_` + 16 hex digits of the shard id + 16 of the vault id + 16 of the height +
//! 16 of an 8-byte keyed BLAKE3 MAC (key: the token secret) over
//! `"inferadb revision token v2" ‖ shard ‖ vault id ‖ height` (all u64 big-endian).
//! Lowercase hex only, so a token has one text form. The shard tells a node which raft group
//! a read must wait on; the height is the vault's ledger height, which a vault keeps when it
//! moves between shards.

use inferadb_protocols::{Revision, VaultId};

use crate::error::TokenError;
use crate::ledger::{hex, unhex};

const PREFIX: &str = "r2_";
const CONTEXT: &[u8] = b"inferadb revision token v2";
const TOKEN_LENGTH: usize = 3 + 64;

/// What a revision token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenRevision {
    /// The shard (raft group) that served the revision; 0 on a single node.
    pub shard: u64,
    /// The vault's ledger height.
    pub revision: Revision,
}

/// Encodes and decodes revision tokens.
pub struct RevisionToken;

fn mac(secret: &[u8; 32], shard: u64, vault: VaultId, height: u64) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new_keyed(secret);
    hasher.update(CONTEXT);
    hasher.update(&shard.to_be_bytes());
    hasher.update(&vault.0.to_be_bytes());
    hasher.update(&height.to_be_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    out
}

fn u64_of(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().expect("invariant: 8 bytes"))
}

impl RevisionToken {
    /// The token for `revision` of `vault`, served by `shard`.
    pub fn encode(secret: &[u8; 32], shard: u64, vault: VaultId, revision: Revision) -> String {
        let height = revision.height();
        let mut bytes = Vec::with_capacity(32);
        bytes.extend_from_slice(&shard.to_be_bytes());
        bytes.extend_from_slice(&vault.0.to_be_bytes());
        bytes.extend_from_slice(&height.to_be_bytes());
        bytes.extend_from_slice(&mac(secret, shard, vault, height));
        format!("{PREFIX}{}", hex(&bytes))
    }

    /// The revision a token of `vault` names. Checks the shape, then the vault, then the
    /// MAC, so each failure is reported as what it is.
    pub fn decode(
        secret: &[u8; 32],
        vault: VaultId,
        token: &str,
    ) -> Result<TokenRevision, TokenError> {
        let body = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed {
            reason: "must start with `r2_`",
        })?;
        if token.len() != TOKEN_LENGTH {
            return Err(TokenError::Malformed {
                reason: "must be 67 characters long",
            });
        }
        let bytes = unhex(body).ok_or(TokenError::Malformed {
            reason: "must be lowercase hexadecimal after `r2_`",
        })?;
        let shard = u64_of(&bytes[0..8]);
        let found = VaultId(u64_of(&bytes[8..16]));
        if found != vault {
            return Err(TokenError::OtherVault {
                expected: vault,
                found,
            });
        }
        let height = u64_of(&bytes[16..24]);
        let expected = mac(secret, shard, vault, height);
        // Compare every byte so the time taken does not reveal a matching prefix.
        let difference = expected
            .iter()
            .zip(&bytes[24..32])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if difference != 0 {
            return Err(TokenError::Forged);
        }
        Ok(TokenRevision {
            shard,
            revision: Revision(height),
        })
    }
}
