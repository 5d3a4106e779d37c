//! Table names. Node-level tables are `vaults` and `node`; each vault has six tables under
//! `v/<16 hex digits of its id>/`.

use inferadb_protocols::VaultId;

/// Vault id (u64 big-endian) → encoded vault record.
pub const VAULTS: &str = "vaults";
/// Node-wide settings (`token_secret`).
pub const NODE: &str = "node";
/// The key of the revision-token secret in [`NODE`].
pub const TOKEN_SECRET_KEY: &[u8] = b"token_secret";

/// The forward index of a vault.
pub fn forward(id: VaultId) -> String {
    format!("v/{id}/fwd")
}

/// The reverse index of a vault.
pub fn reverse(id: VaultId) -> String {
    format!("v/{id}/rev")
}

/// The expiry index of a vault: `expires_at_ms` (u64 big-endian) ‖ forward key → the
/// forward entry's value (see [`crate::keys`]), one
/// entry per stored relationship that has an expiry, so the expired ones are a prefix of
/// it and purging them never walks the relationships that do not expire.
pub fn expiry(id: VaultId) -> String {
    format!("v/{id}/exp")
}

/// The blocks of a vault (height u64 big-endian → encoded block).
pub fn blocks(id: VaultId) -> String {
    format!("v/{id}/blocks")
}

/// The schema versions of a vault (version u32 big-endian → encoded schema record).
pub fn schemas(id: VaultId) -> String {
    format!("v/{id}/schemas")
}

/// The state of a vault: bucket values (`b` ‖ bucket byte) and the head (`head`).
pub fn state(id: VaultId) -> String {
    format!("v/{id}/state")
}

/// Every table of a vault.
pub fn all(id: VaultId) -> [String; 6] {
    [
        forward(id),
        reverse(id),
        expiry(id),
        blocks(id),
        schemas(id),
        state(id),
    ]
}

/// The key of the head (height u64 big-endian ‖ last block hash) in the state table.
pub const HEAD_KEY: &[u8] = b"head";

/// The key of one bucket in the state table.
pub fn bucket_key(bucket: u8) -> [u8; 2] {
    [b'b', bucket]
}

/// The key of the caller's commit index (u64 big-endian; see `Vault::set_commit_index`) in
/// the state table.
pub const COMMIT_INDEX_KEY: &[u8] = b"commit_index";
