//! The shard replica the simulated nodes run: a [`ShardMachine`] (catalog and vaults on the
//! storage engine over crashable `MemoryIo`s) recording, for the checkers, the write and a
//! state root (every vault's head block hash and state root) at each applied index.

use std::collections::BTreeMap;
use std::sync::Arc;

use inferadb_protocols::{ObjectId, RelationName, Relationship, TypeName, VaultId};
use inferadb_raft::group::{MembershipTarget, StateMachine};
use inferadb_shard::{MemoryVaultFiles, ShardAnswer, ShardCommand, ShardMachine, ShardOptions};
use inferadb_storage::io::{CrashMode, FaultPlan, MemoryIo};
use inferadb_vault::{open_database_with_io, Mutation, RelationshipFilter, WriteBatch};

use crate::machine::Root;

/// The vault every client writes to.
pub const VAULT: VaultId = VaultId(1);

/// The schema deployed to [`VAULT`] at bootstrap.
pub const SCHEMA: &str = "type user {}
type doc {
    relation viewer: user
    permission view = viewer
}
";

/// The raft index the bootstrap commands end at (the bootstrap snapshot's index).
pub const BOOTSTRAP_INDEX: u64 = 2;

/// A replica's storage: the catalog file and the vault files.
#[derive(Clone, Default)]
pub struct ShardDisk {
    catalog: Arc<MemoryIo>,
    files: MemoryVaultFiles,
}

impl ShardDisk {
    /// A disk whose replica created [`VAULT`] and deployed [`SCHEMA`] (indices 1 and 2),
    /// synced: every replica starts from the same state.
    pub fn bootstrapped() -> Result<Self, String> {
        let disk = ShardDisk::default();
        let mut machine = disk.open()?;
        let create = ShardCommand::CreateVault {
            id: VAULT,
            name: "sim".into(),
            now_ms: 0,
        };
        let deploy = ShardCommand::DeploySchema {
            vault: VAULT,
            text: SCHEMA.into(),
            now_ms: 0,
        };
        machine.apply_command(1, &create.encode());
        machine.apply_command(BOOTSTRAP_INDEX, &deploy.encode());
        machine.sync().map_err(|e| e.to_string())?;
        if machine.vault(VAULT).is_none() {
            return Err("the bootstrap vault was not created".into());
        }
        Ok(disk)
    }

    /// The machine over what the disk holds now.
    pub fn open(&self) -> Result<ShardMachine, String> {
        let db =
            open_database_with_io(Arc::clone(&self.catalog) as _).map_err(|e| e.to_string())?;
        let files = Box::new(self.files.clone());
        ShardMachine::open(Arc::new(db), files, ShardOptions::default()).map_err(|e| e.to_string())
    }

    /// What a power failure now leaves (unsynced writes treated by `mode`), as
    /// independent files.
    pub fn crash_copy(&self, mode: CrashMode) -> ShardDisk {
        ShardDisk {
            catalog: Arc::new(MemoryIo::from_image(self.catalog.crash_image(mode))),
            files: self.files.crash_copy(mode),
        }
    }
}

/// What pads some register ids past the 256 bytes that index keys keep whole, so runs also
/// replicate, snapshot, recover and verify shortened keys (ADR 0005).
const LONG_ID_PADDING: usize = 300;

/// The resource id of `key`: long for every third key.
fn key_id(key: u64) -> String {
    match key % 3 {
        2 => format!("k{key}-{}", "x".repeat(LONG_ID_PADDING)),
        _ => format!("k{key}"),
    }
}

/// The subject id of `value`: long for every fifth value.
fn value_id(value: u64) -> String {
    match value % 5 {
        4 => format!("v{value}-{}", "y".repeat(LONG_ID_PADDING)),
        _ => format!("v{value}"),
    }
}

/// The relationship that holds `key`'s `value`.
fn register_relationship(key: u64, value: u64) -> String {
    format!("doc:{}#viewer@user:{}", key_id(key), value_id(value))
}

/// The filter matching every relationship of `key`.
fn register_filter(key: u64) -> Result<RelationshipFilter, String> {
    let error = |e| format!("{e:?}");
    Ok(RelationshipFilter {
        resource_type: Some(TypeName::new("doc").map_err(error)?),
        resource_id: Some(ObjectId::new(key_id(key)).map_err(error)?),
        relation: Some(RelationName::new("viewer").map_err(error)?),
        ..RelationshipFilter::default()
    })
}

impl ShardDisk {
    /// Makes the catalog's next sync fail.
    pub fn fail_next_sync(&self) {
        self.catalog.set_fault_plan(FaultPlan {
            fail_sync_number: Some(0),
            ..FaultPlan::default()
        });
    }

    /// Flips bit `bit` of a byte of the catalog or the vault file, chosen by `pick`; says
    /// which.
    pub fn flip_bit(&self, pick: u64, bit: u8) -> String {
        let (name, io) = match self.files.io(VAULT) {
            Some(io) if pick.is_multiple_of(2) => ("vault file", io),
            _ => ("catalog", Arc::clone(&self.catalog)),
        };
        let len = io.image().len() as u64;
        if len == 0 {
            return format!("nothing ({name} is empty)");
        }
        let offset = pick / 2 % len;
        io.flip_bit(usize::try_from(offset).unwrap_or(0), bit);
        format!("{name} byte {offset} bit {bit}")
    }
}

/// A client's write of `value` to `key` (a register), as one atomic shard command: delete
/// the key's relationships, create the one naming `value`.
pub fn write_command(key: u64, value: u64, now_ms: u64) -> Result<Vec<u8>, String> {
    let relationship: Relationship = register_relationship(key, value)
        .parse()
        .map_err(|e| format!("{e:?}"))?;
    let command = ShardCommand::Write {
        vault: VAULT,
        batch: WriteBatch {
            mutations: vec![
                Mutation::DeleteMatching(register_filter(key)?),
                Mutation::Create(relationship),
            ],
            preconditions: vec![],
        },
        now_ms,
    };
    Ok(command.encode())
}

/// The (key, value) a [`write_command`] writes, if `data` is one.
pub fn decode_write(data: &[u8]) -> Option<(u64, u64)> {
    let Ok(ShardCommand::Write { batch, .. }) = ShardCommand::decode(data) else {
        return None;
    };
    let created = batch.mutations.iter().find_map(|m| match m {
        Mutation::Create(r) => Some(r.to_string()),
        _ => None,
    })?;
    parse_register(&created)
}

/// (key, value) from a register relationship's text (only the exact text
/// [`register_relationship`] makes).
fn parse_register(text: &str) -> Option<(u64, u64)> {
    let leading_number = |text: &str| -> Option<u64> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        text.get(..digits)?.parse().ok()
    };
    let key = leading_number(text.strip_prefix("doc:k")?)?;
    let value = leading_number(text.split_once("#viewer@user:v")?.1)?;
    (register_relationship(key, value) == text).then_some((key, value))
}

/// The revision a write's answer names, if the write applied.
pub fn written_revision(output: &[u8]) -> Option<u64> {
    match ShardAnswer::decode(output) {
        Ok(ShardAnswer::Written { revision, .. }) => Some(revision.0),
        _ => None,
    }
}

/// What a write's answer says about its effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteEffect {
    /// It applied, producing this revision.
    Written(u64),
    /// Every replica refused it: it changed nothing.
    Refused,
    /// Only the answering replica could not apply it (`vault_unavailable`: its copy of the
    /// vault is quarantined) or it stopped: the other replicas may have applied it.
    Unknown,
    /// An answer that is not a shard answer (a canary's premature one): taken at its word.
    Opaque,
}

/// What the answer `output` of a write says about its effect.
pub fn write_effect(output: &[u8]) -> WriteEffect {
    match ShardAnswer::decode(output) {
        Ok(ShardAnswer::Written { revision, .. }) => WriteEffect::Written(revision.0),
        Ok(ShardAnswer::Refused { kind, .. }) if kind == "vault_unavailable" => {
            WriteEffect::Unknown
        }
        Ok(ShardAnswer::Refused { .. }) => WriteEffect::Refused,
        Ok(ShardAnswer::Fatal { .. }) => WriteEffect::Unknown,
        Ok(_) | Err(_) => WriteEffect::Opaque,
    }
}

/// Reads `key` on `machine`: the values its relationships name (ascending) and the vault's
/// revision.
pub fn read_register(machine: &ShardMachine, key: u64) -> Result<(Vec<u64>, u64), String> {
    let vault = machine.vault(VAULT).ok_or("the vault is not open")?;
    let snapshot = vault.snapshot().map_err(|e| e.to_string())?;
    let page = snapshot
        .read_relationships(&register_filter(key)?, 16, None, 0)
        .map_err(|e| e.to_string())?;
    let mut values: Vec<u64> = page
        .relationships
        .iter()
        .filter_map(|r| parse_register(&r.to_string()).map(|(_, value)| value))
        .collect();
    values.sort_unstable();
    Ok((values, snapshot.revision().0))
}

/// The vault's revision on `machine` (0 when it is not open).
pub fn revision(machine: &ShardMachine) -> u64 {
    machine.vault(VAULT).map_or(0, |v| v.revision().0)
}

/// What a replica applied at one index: the command, the state root after it, and the
/// vault revision a write produced (`None` if it was not a write that applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEntry {
    /// The command.
    pub data: Vec<u8>,
    /// Every vault's head hash and state root after it, hashed; `None` when the machine
    /// skipped the entry as already applied (a vault synced ahead of the catalog replays
    /// its commands as no-ops, and its state then is that of a later index), or when a vault
    /// is quarantined on this replica (it detected corruption and serves the vault no more).
    pub root: Option<Root>,
    /// The revision a write produced.
    pub revision: Option<u64>,
}

/// A [`ShardMachine`] that records the state root after each entry it applies.
pub struct ShardReplica {
    machine: ShardMachine,
    roots: BTreeMap<u64, AppliedEntry>,
}

impl ShardReplica {
    /// Wraps an opened machine.
    pub fn new(machine: ShardMachine) -> Self {
        ShardReplica {
            machine,
            roots: BTreeMap::new(),
        }
    }

    /// The machine.
    pub fn machine(&self) -> &ShardMachine {
        &self.machine
    }

    /// What was applied at each index since this start.
    pub fn roots(&self) -> &BTreeMap<u64, AppliedEntry> {
        &self.roots
    }

    /// Every vault's id, head block hash and state root, hashed.
    fn state_root(&self) -> Root {
        let mut hasher = blake3::Hasher::new();
        for id in self.machine.vault_ids() {
            if let Some(vault) = self.machine.vault(id) {
                hasher.update(&id.0.to_be_bytes());
                hasher.update(&vault.head_hash());
                hasher.update(&vault.state_root());
            }
        }
        *hasher.finalize().as_bytes()
    }
}

impl ShardReplica {
    /// Records what was applied at `index`; the state root only when `root_now` (the state
    /// is that after `index`: the last entry of a batch).
    fn record(&mut self, index: u64, data: &[u8], answer: &[u8], root_now: bool) {
        // A skipped entry leaves the state of a later index; a quarantined vault (its file
        // failed to open: detected corruption) is missing from this replica's state on
        // purpose. Either way the root is not comparable with the other replicas'.
        let skipped = matches!(ShardAnswer::decode(answer), Ok(ShardAnswer::AlreadyApplied))
            || !self.machine.quarantined().is_empty();
        let entry = AppliedEntry {
            data: data.to_vec(),
            root: (root_now && !skipped).then(|| self.state_root()),
            revision: written_revision(answer),
        };
        self.roots.insert(index, entry);
    }
}

impl StateMachine for ShardReplica {
    fn apply(&mut self, index: u64, data: &[u8]) -> Vec<u8> {
        let answer = self.machine.apply(index, data);
        self.record(index, data, &answer, true);
        answer
    }

    /// The shipped path: the machine applies the batch in one storage transaction per
    /// vault. Only the state after the whole batch is observable, so only its last entry
    /// gets a state root (replicas cut their batches differently; roots are compared where
    /// two replicas' batches end at the same index, and every answer is recorded).
    fn apply_batch(&mut self, entries: &[(u64, &[u8])]) -> Vec<Vec<u8>> {
        let answers = self.machine.apply_batch(entries);
        let last = entries.len().saturating_sub(1);
        for (position, ((index, data), answer)) in entries.iter().zip(&answers).enumerate() {
            self.record(*index, data, answer, position == last);
        }
        answers
    }

    fn snapshot(&self) -> Vec<u8> {
        self.machine.snapshot()
    }

    fn restore(&mut self, data: &[u8]) {
        self.roots.clear();
        self.machine.restore(data);
    }

    fn failure(&self) -> Option<String> {
        self.machine.failure()
    }

    fn drained(&mut self) {
        self.machine.drained();
    }

    fn persist(&mut self) {
        self.machine.persist();
    }

    fn snapshot_blocked(&self) -> Option<String> {
        self.machine.snapshot_blocked()
    }

    fn membership_target(&self) -> MembershipTarget {
        self.machine.membership_target()
    }

    fn unfit_to_lead(&self) -> Option<String> {
        self.machine.unfit_to_lead()
    }

    /// The shipped path: the snapshot's bytes are produced later (off the member's thread
    /// in the node), from read views taken now.
    fn snapshot_builder(&self) -> Option<inferadb_raft::group::SnapshotBuilder> {
        self.machine.snapshot_builder()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_round_trip_through_commands_with_short_and_long_ids() {
        let mut long = 0;
        for key in 0..6 {
            for value in 0..10 {
                let text = register_relationship(key, value);
                assert_eq!(parse_register(&text), Some((key, value)), "{text}");
                let command = write_command(key, value, 1).unwrap();
                assert_eq!(decode_write(&command), Some((key, value)));
                long += usize::from(key_id(key).len() > 256 || value_id(value).len() > 256);
            }
        }
        assert!(long > 0);
        assert_eq!(parse_register("doc:k1#viewer@user:v2x"), None);
        assert_eq!(parse_register("doc:k2#viewer@user:v1"), None);
    }
}
