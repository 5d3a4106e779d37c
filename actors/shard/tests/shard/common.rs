//! Shared helpers: machines over memory, a generator of command sequences, and a
//! fingerprint of a machine's whole state.

use std::collections::BTreeMap;
use std::sync::Arc;

use inferadb_protocols::{Relationship, VaultId};
use inferadb_shard::{
    Lease, LeaseLimits, LeaseTable, MemberRecord, MemoryVaultFiles, Placement, ShardAnswer,
    ShardCommand, ShardMachine, ShardOptions, VaultFiles,
};
use inferadb_storage::io::{CrashMode, MemoryIo};
use inferadb_vault::{
    open_database_with_io, Mutation, Precondition, PreconditionKind, RelationshipFilter, WriteBatch,
};
use proptest::prelude::*;

pub const SCHEMA: &str = "type user {}
type group { relation member: user | group#member }
type doc {
    relation owner: user
    relation viewer: user | user:* | group#member
    permission view = owner | viewer
}
";

/// Compatible with `SCHEMA` (adds a relation).
pub const SCHEMA_2: &str = "type user {}
type group { relation member: user | group#member }
type doc {
    relation owner: user
    relation viewer: user | user:* | group#member
    relation editor: user
    permission view = owner | viewer | editor
}
";

/// Drops `doc#viewer`'s userset and wildcard: refused while such relationships are stored.
pub const SCHEMA_NARROW: &str = "type user {}
type group { relation member: user | group#member }
type doc {
    relation owner: user
    relation viewer: user
    permission view = owner | viewer
}
";

/// A machine's storage: the catalog file and the vault files, in memory.
#[derive(Clone)]
pub struct Disk {
    pub catalog: Arc<MemoryIo>,
    pub files: MemoryVaultFiles,
}

impl Disk {
    pub fn new() -> Self {
        Disk {
            catalog: Arc::new(MemoryIo::default()),
            files: MemoryVaultFiles::new(),
        }
    }

    /// What a power failure now leaves, as independent copies.
    pub fn crash_copy(&self, mode: CrashMode) -> Disk {
        Disk {
            catalog: Arc::new(MemoryIo::from_image(self.catalog.crash_image(mode))),
            files: self.files.crash_copy(mode),
        }
    }

    pub fn open(&self) -> ShardMachine {
        self.open_with(ShardOptions::default())
    }

    pub fn open_with(&self, options: ShardOptions) -> ShardMachine {
        self.open_over(Box::new(self.files.clone()), options)
    }

    /// The machine over this disk's catalog and `files` (a wrapper of this disk's files).
    pub fn open_over(&self, files: Box<dyn VaultFiles>, options: ShardOptions) -> ShardMachine {
        let db = Arc::new(open_database_with_io(Arc::clone(&self.catalog) as _).unwrap());
        ShardMachine::open(db, files, options).unwrap()
    }
}

pub fn machine() -> (ShardMachine, Disk) {
    let disk = Disk::new();
    (disk.open(), disk)
}

/// One vault as compared between replicas.
#[derive(Debug, PartialEq, Eq)]
pub struct VaultPrint {
    pub id: VaultId,
    pub name: String,
    pub created_at_ms: u64,
    pub schemas: Vec<(u32, u64, u64, String)>,
    /// (height, hash, state root, timestamp) of every block.
    pub blocks: Vec<(u64, [u8; 32], [u8; 32], u64)>,
    pub state_root: [u8; 32],
    pub relationships: u64,
}

/// A replica's lease table: its epoch counter and every lease, by job.
pub type LeasePrint = (u64, Vec<(String, Lease)>);

/// The lease table as compared between replicas.
pub fn lease_print(machine: &ShardMachine) -> LeasePrint {
    let leases = machine.leases();
    (
        leases.last_epoch(),
        leases
            .iter()
            .map(|(job, lease)| (job.to_owned(), *lease))
            .collect(),
    )
}

/// A replica's whole state: applied index, vaults, leases, member registry, placements,
/// fence epochs.
pub type Print = (
    u64,
    Vec<VaultPrint>,
    LeasePrint,
    BTreeMap<u64, MemberRecord>,
    BTreeMap<VaultId, Placement>,
    BTreeMap<String, u64>,
);

/// Everything a replica's state is, checking each vault's ledger on the way.
pub fn fingerprint(machine: &ShardMachine) -> Print {
    let records = machine.records().unwrap();
    assert_eq!(
        records.iter().map(|record| record.id).collect::<Vec<_>>(),
        machine.vault_ids()
    );
    let vaults = records
        .into_iter()
        .map(|record| {
            let vault = machine.vault(record.id).unwrap();
            let snapshot = vault.snapshot().unwrap();
            let report = snapshot.verify_ledger().unwrap();
            assert!(report.holds, "vault {}: {:?}", record.id, report.problems);
            let blocks = (1..=snapshot.revision().0)
                .map(|height| {
                    let block = snapshot.block(height).unwrap().unwrap();
                    (
                        block.height,
                        block.hash,
                        block.state_root,
                        block.timestamp_ms,
                    )
                })
                .collect();
            let schemas = vault
                .schema_texts()
                .unwrap()
                .into_iter()
                .map(|(version, text)| {
                    (
                        version.version,
                        version.created_at_ms,
                        version.revision.0,
                        text,
                    )
                })
                .collect();
            VaultPrint {
                id: record.id,
                name: record.name,
                created_at_ms: record.created_at_ms,
                schemas,
                blocks,
                state_root: vault.state_root(),
                relationships: snapshot.relationship_count(),
            }
        })
        .collect();
    (
        machine.applied_index(),
        vaults,
        lease_print(machine),
        machine.members().clone(),
        machine.placements().clone(),
        machine.fence_epochs().clone(),
    )
}

/// A command before its clock is known: small choices, so collisions (names taken,
/// relationships that exist, preconditions that fail) are frequent.
#[derive(Clone, Debug)]
pub enum Spec {
    Create {
        vault: u8,
        name: u8,
    },
    Delete {
        vault: u8,
    },
    Deploy {
        vault: u8,
        schema: u8,
    },
    Write {
        vault: u8,
        mutations: Vec<(u8, u8, u8)>,
        precondition: Option<(bool, u8)>,
    },
    /// A `WriteGroup` of batches, each as a `Write`'s (mutations, precondition).
    WriteGroup {
        vault: u8,
        batches: Vec<BatchSpec>,
    },
    /// A lease command: kind 0..3 (acquire, renew, release), job 0..3 (2 is invalid),
    /// holder 0..4 (0: the job's current holder), epoch 0..4 (0..=2: the job's current
    /// epoch; 3: the one before), duration 0..6 (0 and 4 are refused, 5 is long). "Current"
    /// is looked up when the command is built (see [`encoded`]).
    Lease {
        kind: u8,
        job: u8,
        holder: u8,
        epoch: u8,
        duration: u8,
    },
    /// A member command: `AddMember` (with address 0..4, 3 invalid) or `RemoveMember`, of
    /// node `id` 0..5 (0 is invalid).
    Member {
        add: bool,
        id: u8,
        address: u8,
    },
    /// `PlaceVault` of vault 0..3 under name 0..4 (see [`PLACE_NAMES`]; 3 is invalid) on
    /// `shards` data shards (0 is refused).
    Place {
        vault: u8,
        name: u8,
        shards: u8,
    },
    /// `UnplaceVault` of vault 0..3.
    Unplace {
        vault: u8,
    },
    /// `PurgeExpired` of a vault, at most [`PURGE_LIMITS`]`[limit]` relationships, fenced
    /// by lease job 0..3, holder and epoch as in [`Spec::Lease`], but for a job with no
    /// lease (a data shard's, or a released one) epoch is `epoch + 1` itself, so that the
    /// fencing-token rule sees epochs rise and fall.
    Purge {
        vault: u8,
        limit: u8,
        job: u8,
        holder: u8,
        epoch: u8,
    },
    Garbage,
}

/// The names a `Spec::Place` picks from (the last is invalid).
pub const PLACE_NAMES: [&str; 4] = ["alpha", "beta", "gamma", ""];

/// The limits a `Spec::Purge` picks from.
pub const PURGE_LIMITS: [u32; 4] = [0, 1, 2, 1_000];

/// The lease jobs a `Spec::Lease` or `Spec::Purge` picks from (the last is invalid).
pub const JOBS: [&str; 3] = ["gc", "rebalance", "Not valid"];

/// One batch: its mutations and its precondition.
pub type BatchSpec = (Vec<(u8, u8, u8)>, Option<(bool, u8)>);

/// Vault 0 and 1 mostly (the prologue creates them), vault 2 sometimes.
fn vault() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(0u8), 4 => Just(1u8), 1 => Just(2u8)]
}

/// A mutation: (kind 0..5, relationship 0..12 — 11, invalid, is rare — expiry 0..8).
fn mutation() -> impl Strategy<Value = (u8, u8, u8)> {
    let pick = prop_oneof![30 => 0..11u8, 1 => Just(11u8)];
    (0..5u8, pick, 0..8u8)
}

/// Mostly the job's current holder (0), sometimes a given node.
pub fn lease_holder() -> impl Strategy<Value = u8> {
    prop_oneof![3 => Just(0u8), 2 => 1..4u8]
}

pub fn batch_spec() -> impl Strategy<Value = BatchSpec> {
    (
        prop::collection::vec(mutation(), 1..5),
        prop::option::of((any::<bool>(), 0..12u8)),
    )
}

pub fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        2 => (vault(), 0..4u8).prop_map(|(vault, name)| Spec::Create { vault, name }),
        1 => vault().prop_map(|vault| Spec::Delete { vault }),
        2 => (vault(), 0..4u8).prop_map(|(vault, schema)| Spec::Deploy { vault, schema }),
        12 => (vault(), batch_spec())
            .prop_map(|(vault, (mutations, precondition))| Spec::Write { vault, mutations, precondition }),
        4 => (vault(), prop::collection::vec(batch_spec(), 0..5))
            .prop_map(|(vault, batches)| Spec::WriteGroup { vault, batches }),
        1 => Just(Spec::Garbage),
        6 => (
            0..3u8,
            prop_oneof![8 => 0..2u8, 1 => Just(2u8)],
            lease_holder(),
            0..4u8,
            prop_oneof![8 => 1..4u8, 1 => Just(0u8), 1 => Just(4u8), 3 => Just(5u8)],
        )
            .prop_map(|(kind, job, holder, epoch, duration)| Spec::Lease { kind, job, holder, epoch, duration }),
        3 => member_spec(),
        3 => placement_spec(),
        3 => purge_spec(),
    ]
}

/// Placements and removals of a few vaults under a few names, on a few shards.
pub fn placement_spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        3 => (0..3u8, 0..4u8, prop_oneof![8 => 1..4u8, 1 => Just(0u8)])
            .prop_map(|(vault, name, shards)| Spec::Place { vault, name, shards }),
        1 => (0..3u8).prop_map(|vault| Spec::Unplace { vault }),
    ]
}

/// Purges mostly fenced in by job `gc`'s current lease (see [`Spec::Lease`]), sometimes
/// by another job, holder or epoch.
pub fn purge_spec() -> impl Strategy<Value = Spec> {
    (
        vault(),
        prop_oneof![1 => Just(0u8), 6 => 1..4u8],
        prop_oneof![8 => Just(0u8), 1 => 1..3u8],
        prop_oneof![6 => Just(0u8), 1 => 1..4u8],
        prop_oneof![6 => 0..3u8, 1 => Just(3u8)],
    )
        .prop_map(|(vault, limit, job, holder, epoch)| Spec::Purge {
            vault,
            limit,
            job,
            holder,
            epoch,
        })
}

/// Mostly valid member commands over a few nodes, adds twice as often as removals.
pub fn member_spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![2 => Just(true), 1 => Just(false)],
        prop_oneof![12 => 1..5u8, 1 => Just(0u8)],
        prop_oneof![8 => 0..3u8, 1 => Just(3u8)],
    )
        .prop_map(|(add, id, address)| Spec::Member { add, id, address })
}

/// The cluster addresses a `Spec::Member` picks from (the last is a host name: invalid).
pub const ADDRESSES: [&str; 4] = [
    "10.0.0.1:7000",
    "10.0.0.2:7000",
    "[::1]:7001",
    "node-1:7000",
];

pub fn specs(max: usize) -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(spec(), 1..max)
}

/// The relationship `pick` names (12 of them; the last is invalid under every schema).
pub fn relationship(pick: u8, expiry: Option<u64>) -> Relationship {
    let text = match pick {
        0..=3 => format!("doc:d{}#viewer@user:u{}", pick % 2, pick / 2),
        4 | 5 => format!("doc:d{}#owner@user:u0", pick % 2),
        6 => "doc:d0#viewer@group:g#member".to_owned(),
        7 => "doc:d1#viewer@user:*".to_owned(),
        8 | 9 => format!("group:g#member@user:u{}", pick % 2),
        10 => "doc:d2#editor@user:u1".to_owned(),
        _ => "folder:f#viewer@user:u0".to_owned(),
    };
    let relationship: Relationship = text.parse().unwrap();
    match expiry {
        Some(at) => relationship.with_expiry(at),
        None => relationship,
    }
}

fn filter_for(pick: u8) -> RelationshipFilter {
    let relationship = relationship(pick, None);
    RelationshipFilter {
        resource_type: Some(relationship.resource.object_type.clone()),
        resource_id: Some(relationship.resource.object_id.clone()),
        relation: Some(relationship.relation.clone()),
        ..RelationshipFilter::default()
    }
}

/// The (job, holder, epoch) a `Spec::Lease` or `Spec::Purge` names: holder 0 is the job's
/// current holder, epoch 0..=2 its current epoch and 3 the one before, where `current`
/// gives the job's (holder, epoch); for a job without a lease (`current` gives `None`),
/// holder 0 is node 1 and the epoch is `epoch + 1`.
fn fence(
    job: u8,
    holder: u8,
    epoch: u8,
    current: impl Fn(&str) -> Option<(u64, u64)>,
) -> (String, u64, u64) {
    let job = JOBS[usize::from(job)].to_owned();
    let leased = current(&job);
    let (current_holder, current_epoch) = leased.unwrap_or((1, 1));
    let holder = match holder {
        0 => current_holder,
        holder => u64::from(holder),
    };
    let epoch = match (leased, epoch) {
        (None, epoch) => u64::from(epoch) + 1,
        (Some(_), 0..=2) => current_epoch,
        (Some(_), _) => current_epoch.saturating_sub(1),
    };
    (job, holder, epoch)
}

/// The `PurgeExpired` of a `Spec::Purge`; `current` is the job's (holder, epoch), if it has
/// a lease.
fn purge_command(
    spec: &Spec,
    now_ms: u64,
    current: impl Fn(&str) -> Option<(u64, u64)>,
) -> ShardCommand {
    let Spec::Purge {
        vault,
        limit,
        job,
        holder,
        epoch,
    } = *spec
    else {
        unreachable!()
    };
    let (job, holder, epoch) = fence(job, holder, epoch, current);
    ShardCommand::PurgeExpired {
        vault: VaultId(0x100 + u64::from(vault)),
        now_ms,
        limit: PURGE_LIMITS[usize::from(limit)],
        job,
        holder,
        epoch,
    }
}

/// The lease command of a `Spec::Lease`; `current` is the job's (holder, epoch), if it has
/// a lease.
fn lease_command(
    spec: &Spec,
    now_ms: u64,
    current: impl Fn(&str) -> Option<(u64, u64)>,
) -> ShardCommand {
    let Spec::Lease {
        kind,
        job,
        holder,
        epoch,
        duration,
    } = *spec
    else {
        unreachable!()
    };
    let (job, holder, epoch) = fence(job, holder, epoch, current);
    // Entries are 10 ms apart: leases last one to a few commands, or are refused, or (5)
    // outlast most sequences, so that purges fenced by them often apply.
    let duration_ms = [0, 15, 35, 100, 60_001, 1_000][usize::from(duration)];
    match kind {
        0 => ShardCommand::AcquireLease {
            job,
            holder,
            duration_ms,
            now_ms,
        },
        1 => ShardCommand::RenewLease {
            job,
            holder,
            epoch,
            duration_ms,
            now_ms,
        },
        _ => ShardCommand::ReleaseLease { job, holder, epoch },
    }
}

/// The command for the entry at `index` (its clock is `1_000 + 10 × index`).
pub fn command(spec: &Spec, index: u64) -> ShardCommand {
    let now_ms = 1_000 + 10 * index;
    let id = |vault: u8| VaultId(0x100 + u64::from(vault));
    match spec {
        Spec::Create { vault, name } => ShardCommand::CreateVault {
            id: id(*vault),
            name: ["alpha", "beta", "alpha", ""][usize::from(*name)].to_owned(),
            now_ms,
        },
        Spec::Delete { vault } => ShardCommand::DeleteVault { id: id(*vault) },
        Spec::Deploy { vault, schema } => ShardCommand::DeploySchema {
            vault: id(*vault),
            text: [SCHEMA, SCHEMA_2, SCHEMA_NARROW, "type {"][usize::from(*schema)].to_owned(),
            now_ms,
        },
        Spec::Write {
            vault,
            mutations,
            precondition,
        } => ShardCommand::Write {
            vault: id(*vault),
            batch: batch(mutations, *precondition, now_ms),
            now_ms,
        },
        Spec::WriteGroup { vault, batches } => ShardCommand::WriteGroup {
            vault: id(*vault),
            batches: batches
                .iter()
                .map(|(mutations, precondition)| batch(mutations, *precondition, now_ms))
                .collect(),
            now_ms,
        },
        Spec::Garbage => ShardCommand::DeleteVault {
            id: VaultId(u64::MAX),
        },
        // Without a table to look at, "the current epoch" is a small fixed guess.
        Spec::Lease { .. } => lease_command(spec, now_ms, |_| Some((1, 1))),
        Spec::Purge { .. } => purge_command(spec, now_ms, |_| Some((1, 1))),
        Spec::Place {
            vault,
            name,
            shards,
        } => ShardCommand::PlaceVault {
            id: id(*vault),
            name: PLACE_NAMES[usize::from(*name)].to_owned(),
            data_shards: u32::from(*shards),
        },
        Spec::Unplace { vault } => ShardCommand::UnplaceVault { id: id(*vault) },
        Spec::Member { add, id, address } => {
            let id = u64::from(*id);
            if *add {
                ShardCommand::AddMember {
                    id,
                    address: ADDRESSES[usize::from(*address)].to_owned(),
                }
            } else {
                ShardCommand::RemoveMember { id }
            }
        }
    }
}

pub fn batch(
    mutations: &[(u8, u8, u8)],
    precondition: Option<(bool, u8)>,
    now_ms: u64,
) -> WriteBatch {
    let mutations = mutations
        .iter()
        .map(|(kind, pick, expiry)| {
            // Expiry 0..=4: none; 5: already past (refused); 6, 7: in 15 / 25 ms (entries
            // are 10 ms apart, so they expire a command or two later).
            let expiry = match expiry {
                0..=4 => None,
                5 => Some(now_ms),
                other => Some(now_ms + 10 * u64::from(*other - 4) - 5),
            };
            match kind {
                0 | 1 => Mutation::Create(relationship(*pick, expiry)),
                2 => Mutation::Touch(relationship(*pick, expiry)),
                3 => Mutation::Delete(relationship(*pick, None)),
                _ => Mutation::DeleteMatching(filter_for(*pick)),
            }
        })
        .collect();
    let preconditions = precondition
        .map(|(must_match, pick)| Precondition {
            kind: if must_match {
                PreconditionKind::MustMatch
            } else {
                PreconditionKind::MustNotMatch
            },
            filter: filter_for(pick),
        })
        .into_iter()
        .collect();
    WriteBatch {
        mutations,
        preconditions,
    }
}

/// The entries' bytes: each command's encoding, or malformed bytes for `Garbage`.
///
/// Lease and purge commands that name "the current epoch" take it from a shadow lease table
/// that applies the lease commands as they are built (exact for a machine that started
/// empty), so renewals, releases and fenced purges often hit.
pub fn encoded(specs: &[Spec], first: u64) -> Vec<Vec<u8>> {
    let mut shadow = LeaseTable::new(LeaseLimits::default());
    specs
        .iter()
        .enumerate()
        .map(|(offset, spec)| {
            let index = first + offset as u64;
            let now_ms = 1_000 + 10 * index;
            let current = |shadow: &LeaseTable, job: &str| {
                shadow.get(job).map(|lease| (lease.holder, lease.epoch))
            };
            match spec {
                Spec::Garbage => vec![1, 99, 0],
                Spec::Lease { .. } => {
                    let command = lease_command(spec, now_ms, |job| current(&shadow, job));
                    shadow_apply(&mut shadow, &command);
                    command.encode()
                }
                Spec::Purge { .. } => {
                    purge_command(spec, now_ms, |job| current(&shadow, job)).encode()
                }
                spec => command(spec, index).encode(),
            }
        })
        .collect()
}

fn shadow_apply(shadow: &mut LeaseTable, command: &ShardCommand) {
    let _ = match command {
        ShardCommand::AcquireLease {
            job,
            holder,
            duration_ms,
            now_ms,
        } => shadow
            .acquire(job, *holder, *duration_ms, *now_ms)
            .map(drop),
        ShardCommand::RenewLease {
            job,
            holder,
            epoch,
            duration_ms,
            now_ms,
        } => shadow
            .renew(job, *holder, *epoch, *duration_ms, *now_ms)
            .map(drop),
        ShardCommand::ReleaseLease { job, holder, epoch } => shadow.release(job, *holder, *epoch),
        _ => Ok(()),
    };
}

/// Applies raw entries from log index `first` on.
pub fn apply_entries(
    machine: &mut ShardMachine,
    first: u64,
    entries: &[Vec<u8>],
) -> Vec<ShardAnswer> {
    entries
        .iter()
        .enumerate()
        .map(|(offset, entry)| machine.apply_command(first + offset as u64, entry))
        .collect()
}

/// Applies raw entries from log index `first` on, the way raft hands them to a replica: in
/// consecutive slices (lengths from `cuts`, cycled), each through
/// [`ShardMachine::apply_entries`], which merges runs of writes to one vault.
pub fn apply_in_cuts(
    machine: &mut ShardMachine,
    first: u64,
    entries: &[Vec<u8>],
    cuts: &[usize],
) -> Vec<ShardAnswer> {
    let mut answers = Vec::with_capacity(entries.len());
    let mut next = 0;
    for len in cuts.iter().cycle() {
        if next >= entries.len() {
            break;
        }
        let end = (next + (*len).max(1)).min(entries.len());
        let slice: Vec<(u64, &[u8])> = (next..end)
            .map(|offset| (first + offset as u64, entries[offset].as_slice()))
            .collect();
        answers.extend(machine.apply_entries(&slice));
        next = end;
    }
    answers
}

/// [`prologue`], then node 1 acquiring job `gc`'s lease for 1 s (a hundred entries), so
/// that the random part's purges are often fenced in, not only out.
pub fn prologue_with_lease() -> Vec<Spec> {
    let mut specs = prologue();
    specs.push(Spec::Lease {
        kind: 0,
        job: 0,
        holder: 1,
        epoch: 0,
        duration: 5,
    });
    specs
}

/// A fixed prologue that makes the random part interesting: two vaults with a schema.
pub fn prologue() -> Vec<Spec> {
    vec![
        Spec::Create { vault: 0, name: 0 },
        Spec::Create { vault: 1, name: 1 },
        Spec::Deploy {
            vault: 0,
            schema: 0,
        },
        Spec::Deploy {
            vault: 1,
            schema: 1,
        },
    ]
}
