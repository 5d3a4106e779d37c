//! The shard replica the simulated nodes run: a [`ShardMachine`] (catalog and vaults on the
//! storage engine over crashable `MemoryIo`s) recording, for the checkers, the write and a
//! state root (every vault's head block hash and state root) at each applied index.

use std::collections::BTreeMap;
use std::sync::Arc;

use inferadb_protocols::{Relationship, VaultId};
use inferadb_raft::group::{MembershipTarget, StateMachine};
use inferadb_shard::{MemoryVaultFiles, ShardCommand, ShardMachine, ShardOptions};
use inferadb_storage::io::{CrashMode, MemoryIo};
use inferadb_vault::{open_database_with_io, Mutation, WriteBatch};

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

    /// What a power failure now leaves (unsynced writes lost), as independent files.
    pub fn crash_copy(&self) -> ShardDisk {
        let mode = CrashMode::LoseUnsynced;
        ShardDisk {
            catalog: Arc::new(MemoryIo::from_image(self.catalog.crash_image(mode))),
            files: self.files.crash_copy(mode),
        }
    }
}

/// A client's write of one relationship, as a shard command.
pub fn write_command(text: &str, now_ms: u64) -> Result<Vec<u8>, String> {
    let relationship: Relationship = text.parse().map_err(|e| format!("{e:?}"))?;
    let command = ShardCommand::Write {
        vault: VAULT,
        batch: WriteBatch {
            mutations: vec![Mutation::Create(relationship)],
            preconditions: vec![],
        },
        now_ms,
    };
    Ok(command.encode())
}

/// A [`ShardMachine`] that records the state root after each entry it applies.
pub struct ShardReplica {
    machine: ShardMachine,
    roots: BTreeMap<u64, (Vec<u8>, Root)>,
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

    /// (write, state root after it) by index, for the entries applied since this start.
    pub fn roots(&self) -> &BTreeMap<u64, (Vec<u8>, Root)> {
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

impl StateMachine for ShardReplica {
    fn apply(&mut self, index: u64, data: &[u8]) -> Vec<u8> {
        let answer = self.machine.apply(index, data);
        let root = self.state_root();
        self.roots.insert(index, (data.to_vec(), root));
        answer
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
}
