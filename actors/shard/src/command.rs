//! [`ShardCommand`]: what a shard's Raft log carries, and its canonical encoding.
//!
//! # Encoding (format 1; integers big-endian)
//!
//! ```text
//! command      = 0x01 (format) ‖ tag ‖ fields
//!   tag 1 CreateVault   u64 id ‖ str name ‖ u64 now_ms
//!   tag 2 DeleteVault   u64 id
//!   tag 3 DeploySchema  u64 vault ‖ str text ‖ u64 now_ms
//!   tag 4 Write         u64 vault ‖ u64 now_ms ‖ u32 count ‖ mutation* ‖ u32 count ‖ precondition*
//!   tag 5 AcquireLease  str job ‖ u64 holder ‖ u64 duration_ms ‖ u64 now_ms
//!   tag 6 RenewLease    str job ‖ u64 holder ‖ u64 epoch ‖ u64 duration_ms ‖ u64 now_ms
//!   tag 7 ReleaseLease  str job ‖ u64 holder ‖ u64 epoch
//!   tag 8 WriteGroup    u64 vault ‖ u64 now_ms ‖ u32 count ‖ batch*
//!   tag 9 AddMember     u64 id ‖ str address
//!   tag 10 RemoveMember u64 id
//!   tag 11 PlaceVault   u64 id ‖ str name ‖ u32 data_shards
//!   tag 12 UnplaceVault u64 id
//!   tag 13 PurgeExpired u64 vault ‖ u64 now_ms ‖ u32 limit ‖ str job ‖ u64 holder ‖ u64 epoch
//! batch        = u32 count ‖ mutation* ‖ u32 count ‖ precondition*   (as in Write)
//! mutation     = 1 ‖ str relationship (Create) | 2 ‖ str relationship (Touch)
//!              | 3 ‖ str relationship (Delete) | 4 ‖ filter (DeleteMatching)
//! precondition = 1 (MustMatch) | 2 (MustNotMatch) ‖ filter
//! filter       = 6 × opt-str: resource_type, resource_id, relation, subject_type,
//!                subject_id, subject_relation
//! str          = u32 byte length ‖ UTF-8;   opt-str = 0x00 | 0x01 ‖ str
//! ```
//!
//! A relationship travels as its text form (`Relationship`'s `Display`, with the
//! `[expires_at_ms:…]` suffix when it expires); decoding parses it and refuses any text that
//! does not print back identically, so every command has exactly one encoding. Names in
//! filters are validated as the types they are (`TypeName`, `ObjectId`, `RelationName`);
//! the filter *rules* (e.g. `resource_id` needs `resource_type`) are the vault's business
//! and give a deterministic refusal when applied. Likewise a lease's job name is any UTF-8
//! string on the wire; the [`crate::lease`] rules (1–64 bytes of `[a-z0-9_.-]`) refuse it
//! when applied (a `PurgeExpired` naming an invalid job is fenced: no lease has that
//! name), a member's address is any UTF-8 string on the wire, which the
//! [`crate::members`] rules (`IP:port`) refuse when applied, and so is a placed vault's
//! name, which the vault-name rules refuse when applied (see [`crate::placements`]).
//!
//! Tags 5–7, then tag 8, then tags 9–10, then tags 11–13 were added without changing the
//! format byte: every older encoding decodes as before. A replica of a version without them refuses them as
//! `malformed_command`, so a cluster must not propose them until every member runs a
//! version that knows them.

use inferadb_protocols::{ObjectId, RelationName, Relationship, TypeName, VaultId};
use inferadb_vault::{Mutation, Precondition, PreconditionKind, RelationshipFilter, WriteBatch};

use crate::wire::{expect_format, DecodeError, Reader, Writer};

/// The format byte of [`ShardCommand::encode`].
pub const COMMAND_FORMAT: u8 = 1;

const TAG_CREATE_VAULT: u8 = 1;
const TAG_DELETE_VAULT: u8 = 2;
const TAG_DEPLOY_SCHEMA: u8 = 3;
const TAG_WRITE: u8 = 4;
const TAG_ACQUIRE_LEASE: u8 = 5;
const TAG_RENEW_LEASE: u8 = 6;
const TAG_RELEASE_LEASE: u8 = 7;
const TAG_WRITE_GROUP: u8 = 8;
const TAG_ADD_MEMBER: u8 = 9;
const TAG_REMOVE_MEMBER: u8 = 10;
const TAG_PLACE_VAULT: u8 = 11;
const TAG_UNPLACE_VAULT: u8 = 12;
const TAG_PURGE_EXPIRED: u8 = 13;

/// One entry of a shard's Raft log. Everything a replica needs to apply it identically is
/// inside: ids and the leader's clock (`now_ms`) are chosen once, by the proposer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardCommand {
    /// Creates an empty vault (no schema yet).
    CreateVault {
        /// Its id (drawn by the proposer).
        id: VaultId,
        /// Its unique name.
        name: String,
        /// The proposer's clock: the vault's creation time.
        now_ms: u64,
    },
    /// Deletes a vault with everything in it.
    DeleteVault {
        /// The vault.
        id: VaultId,
    },
    /// Deploys a schema version to a vault.
    DeploySchema {
        /// The vault.
        vault: VaultId,
        /// The IPL text.
        text: String,
        /// The proposer's clock: the deploy block's timestamp.
        now_ms: u64,
    },
    /// Applies a write batch to a vault.
    Write {
        /// The vault.
        vault: VaultId,
        /// The batch.
        batch: WriteBatch,
        /// The proposer's clock: the block's timestamp and the expiry reference.
        now_ms: u64,
    },
    /// Acquires a singleton job's lease (see [`crate::lease::LeaseTable::acquire`]).
    AcquireLease {
        /// The job's name.
        job: String,
        /// The node asking for it.
        holder: u64,
        /// How long the lease lasts from `now_ms`.
        duration_ms: u64,
        /// The proposer's clock.
        now_ms: u64,
    },
    /// Renews a held lease (see [`crate::lease::LeaseTable::renew`]).
    RenewLease {
        /// The job's name.
        job: String,
        /// The node holding it.
        holder: u64,
        /// The epoch it holds it with.
        epoch: u64,
        /// How long the lease lasts from `now_ms`.
        duration_ms: u64,
        /// The proposer's clock.
        now_ms: u64,
    },
    /// Releases a held lease (see [`crate::lease::LeaseTable::release`]).
    ReleaseLease {
        /// The job's name.
        job: String,
        /// The node holding it.
        holder: u64,
        /// The epoch it holds it with.
        epoch: u64,
    },
    /// Applies several write batches to a vault in one storage transaction, each as a
    /// `Write` of it alone would (atomically, with its own block, in order); at most
    /// `VaultLimits::group_commit_batches_max` of them.
    WriteGroup {
        /// The vault.
        vault: VaultId,
        /// The batches, in order.
        batches: Vec<WriteBatch>,
        /// The proposer's clock: every block's timestamp and the expiry reference.
        now_ms: u64,
    },
    /// Records node `id` in the cluster's registry as a voter reachable at `address`,
    /// replacing its address and clearing its removal if it was recorded (see
    /// [`crate::members`]; kept in shard 0).
    AddMember {
        /// The node (not 0).
        id: u64,
        /// Its cluster address, `IP:port`.
        address: String,
    },
    /// Records node `id` in the cluster's registry as one that must not be a member, even
    /// if it was never added (see [`crate::members`]; kept in shard 0).
    RemoveMember {
        /// The node (not 0).
        id: u64,
    },
    /// Places vault `id`, named `name`, on the data shard among `1..=data_shards` that
    /// holds the fewest placed vaults (ties to the lowest id), claiming the name
    /// cluster-wide; placing it again under the same name answers the same shard (see
    /// [`crate::placements`]; kept in shard 0).
    PlaceVault {
        /// The vault (drawn by the proposer).
        id: VaultId,
        /// Its name, unique among placed vaults.
        name: String,
        /// How many data shards the cluster has (at least 1).
        data_shards: u32,
    },
    /// Forgets vault `id`'s placement, which frees its name (see [`crate::placements`]).
    UnplaceVault {
        /// The vault.
        id: VaultId,
    },
    /// Removes up to `limit` of a vault's stored relationships that are expired at
    /// `now_ms`, in key order, as one block (`inferadb_vault::Vault::purge_expired`): a
    /// side effect of the singleton job holding lease `job`, applied only if its fence
    /// admits it: where this machine's lease table has a lease for `job` (shard 0), while
    /// `holder` holds it with exactly `epoch`, unexpired at `now_ms` (see
    /// [`crate::lease::LeaseTable::fence`]); elsewhere (a data shard) while `epoch` is at
    /// least the highest this machine has accepted for `job` (see the machine's fencing
    /// rule, [`crate::machine`]), so a holder overtaken by a newer one never purges again.
    PurgeExpired {
        /// The vault.
        vault: VaultId,
        /// The proposer's clock: the expiry reference and the block's timestamp.
        now_ms: u64,
        /// The most relationships to remove.
        limit: u32,
        /// The job's name (its lease).
        job: String,
        /// The node that runs the job.
        holder: u64,
        /// The epoch it holds the lease with.
        epoch: u64,
    },
}

impl ShardCommand {
    /// The canonical bytes (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::default();
        writer.u8(COMMAND_FORMAT);
        writer.u8(self.tag());
        self.encode_fields(&mut writer);
        writer.out
    }

    /// The tag that selects the variant on the wire.
    fn tag(&self) -> u8 {
        match self {
            ShardCommand::CreateVault { .. } => TAG_CREATE_VAULT,
            ShardCommand::DeleteVault { .. } => TAG_DELETE_VAULT,
            ShardCommand::DeploySchema { .. } => TAG_DEPLOY_SCHEMA,
            ShardCommand::Write { .. } => TAG_WRITE,
            ShardCommand::AcquireLease { .. } => TAG_ACQUIRE_LEASE,
            ShardCommand::RenewLease { .. } => TAG_RENEW_LEASE,
            ShardCommand::ReleaseLease { .. } => TAG_RELEASE_LEASE,
            ShardCommand::WriteGroup { .. } => TAG_WRITE_GROUP,
            ShardCommand::AddMember { .. } => TAG_ADD_MEMBER,
            ShardCommand::RemoveMember { .. } => TAG_REMOVE_MEMBER,
            ShardCommand::PlaceVault { .. } => TAG_PLACE_VAULT,
            ShardCommand::UnplaceVault { .. } => TAG_UNPLACE_VAULT,
            ShardCommand::PurgeExpired { .. } => TAG_PURGE_EXPIRED,
        }
    }

    /// The fields after the tag.
    fn encode_fields(&self, writer: &mut Writer) {
        match self {
            ShardCommand::CreateVault { id, name, now_ms } => {
                vault_text(writer, *id, name).u64(*now_ms);
            }
            ShardCommand::DeleteVault { id } => writer.u64(id.0),
            ShardCommand::DeploySchema {
                vault,
                text,
                now_ms,
            } => vault_text(writer, *vault, text).u64(*now_ms),
            ShardCommand::Write {
                vault,
                batch,
                now_ms,
            } => {
                write_fields(writer, *vault, *now_ms);
                encode_batch(writer, batch);
            }
            ShardCommand::WriteGroup {
                vault,
                batches,
                now_ms,
            } => {
                write_fields(writer, *vault, *now_ms);
                writer.len(batches.len());
                batches.iter().for_each(|batch| encode_batch(writer, batch));
            }
            ShardCommand::AcquireLease {
                job,
                holder,
                duration_ms,
                now_ms,
            } => lease_fields(writer, job, &[*holder, *duration_ms, *now_ms]),
            ShardCommand::RenewLease {
                job,
                holder,
                epoch,
                duration_ms,
                now_ms,
            } => lease_fields(writer, job, &[*holder, *epoch, *duration_ms, *now_ms]),
            ShardCommand::ReleaseLease { job, holder, epoch } => {
                lease_fields(writer, job, &[*holder, *epoch]);
            }
            ShardCommand::AddMember { id, address } => {
                writer.u64(*id);
                writer.str(address);
            }
            ShardCommand::RemoveMember { id } => writer.u64(*id),
            ShardCommand::PlaceVault {
                id,
                name,
                data_shards,
            } => vault_text(writer, *id, name).u32(*data_shards),
            ShardCommand::UnplaceVault { id } => writer.u64(id.0),
            ShardCommand::PurgeExpired {
                vault,
                now_ms,
                limit,
                job,
                holder,
                epoch,
            } => {
                write_fields(writer, *vault, *now_ms);
                writer.u32(*limit);
                lease_fields(writer, job, &[*holder, *epoch]);
            }
        }
    }

    /// Decodes [`Self::encode`]'s bytes; anything else is a typed error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        expect_format(&mut reader, "shard command", COMMAND_FORMAT)?;
        let command = match reader.u8("command tag")? {
            TAG_CREATE_VAULT => ShardCommand::CreateVault {
                id: VaultId(reader.u64("vault id")?),
                name: reader.str("vault name")?.to_owned(),
                now_ms: reader.u64("now_ms")?,
            },
            TAG_DELETE_VAULT => ShardCommand::DeleteVault {
                id: VaultId(reader.u64("vault id")?),
            },
            TAG_DEPLOY_SCHEMA => ShardCommand::DeploySchema {
                vault: VaultId(reader.u64("vault id")?),
                text: reader.str("schema text")?.to_owned(),
                now_ms: reader.u64("now_ms")?,
            },
            TAG_WRITE => ShardCommand::Write {
                vault: VaultId(reader.u64("vault id")?),
                now_ms: reader.u64("now_ms")?,
                batch: decode_batch(&mut reader)?,
            },
            TAG_WRITE_GROUP => ShardCommand::WriteGroup {
                vault: VaultId(reader.u64("vault id")?),
                now_ms: reader.u64("now_ms")?,
                batches: decode_batches(&mut reader)?,
            },
            TAG_PURGE_EXPIRED => ShardCommand::PurgeExpired {
                vault: VaultId(reader.u64("vault id")?),
                now_ms: reader.u64("now_ms")?,
                limit: reader.u32("purge limit")?,
                job: reader.str("lease job")?.to_owned(),
                holder: reader.u64("lease holder")?,
                epoch: reader.u64("lease epoch")?,
            },
            tag => decode_registry_command(tag, &mut reader)?,
        };
        reader.finish()?;
        Ok(command)
    }
}

/// The fields of a lease, member or placement command (the tables shard 0 keeps for the
/// cluster), after its tag; an unknown tag is refused.
fn decode_registry_command(tag: u8, reader: &mut Reader<'_>) -> Result<ShardCommand, DecodeError> {
    Ok(match tag {
        TAG_ACQUIRE_LEASE => ShardCommand::AcquireLease {
            job: reader.str("lease job")?.to_owned(),
            holder: reader.u64("lease holder")?,
            duration_ms: reader.u64("duration_ms")?,
            now_ms: reader.u64("now_ms")?,
        },
        TAG_RENEW_LEASE => ShardCommand::RenewLease {
            job: reader.str("lease job")?.to_owned(),
            holder: reader.u64("lease holder")?,
            epoch: reader.u64("lease epoch")?,
            duration_ms: reader.u64("duration_ms")?,
            now_ms: reader.u64("now_ms")?,
        },
        TAG_RELEASE_LEASE => ShardCommand::ReleaseLease {
            job: reader.str("lease job")?.to_owned(),
            holder: reader.u64("lease holder")?,
            epoch: reader.u64("lease epoch")?,
        },
        TAG_ADD_MEMBER => ShardCommand::AddMember {
            id: reader.u64("member id")?,
            address: reader.str("member address")?.to_owned(),
        },
        TAG_REMOVE_MEMBER => ShardCommand::RemoveMember {
            id: reader.u64("member id")?,
        },
        TAG_PLACE_VAULT => ShardCommand::PlaceVault {
            id: VaultId(reader.u64("vault id")?),
            name: reader.str("vault name")?.to_owned(),
            data_shards: reader.u32("data_shards")?,
        },
        TAG_UNPLACE_VAULT => ShardCommand::UnplaceVault {
            id: VaultId(reader.u64("vault id")?),
        },
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "command",
                tag,
            })
        }
    })
}

/// A command's leading vault id and text (a name, a schema); the writer, for what follows.
fn vault_text<'w>(writer: &'w mut Writer, vault: VaultId, text: &str) -> &'w mut Writer {
    writer.u64(vault.0);
    writer.str(text);
    writer
}

/// A write command's leading fields: the vault, the clock.
fn write_fields(writer: &mut Writer, vault: VaultId, now_ms: u64) {
    writer.u64(vault.0);
    writer.u64(now_ms);
}

/// A lease command's fields: the job, then its integers in order.
fn lease_fields(writer: &mut Writer, job: &str, integers: &[u64]) {
    writer.str(job);
    for integer in integers {
        writer.u64(*integer);
    }
}

fn encode_batch(writer: &mut Writer, batch: &WriteBatch) {
    writer.len(batch.mutations.len());
    for mutation in &batch.mutations {
        match mutation {
            Mutation::Create(relationship) => relationship_field(writer, 1, relationship),
            Mutation::Touch(relationship) => relationship_field(writer, 2, relationship),
            Mutation::Delete(relationship) => relationship_field(writer, 3, relationship),
            Mutation::DeleteMatching(filter) => {
                writer.u8(4);
                encode_filter(writer, filter);
            }
        }
    }
    writer.len(batch.preconditions.len());
    for precondition in &batch.preconditions {
        writer.u8(match precondition.kind {
            PreconditionKind::MustMatch => 1,
            PreconditionKind::MustNotMatch => 2,
        });
        encode_filter(writer, &precondition.filter);
    }
}

fn relationship_field(writer: &mut Writer, tag: u8, relationship: &Relationship) {
    writer.u8(tag);
    writer.str(&relationship.to_string());
}

fn decode_batch(reader: &mut Reader<'_>) -> Result<WriteBatch, DecodeError> {
    // Every mutation takes at least 5 bytes (tag + length), every precondition 7.
    let count = reader.count("mutation count", 5)?;
    let mut mutations = Vec::with_capacity(count);
    for _ in 0..count {
        mutations.push(match reader.u8("mutation tag")? {
            1 => Mutation::Create(decode_relationship(reader)?),
            2 => Mutation::Touch(decode_relationship(reader)?),
            3 => Mutation::Delete(decode_relationship(reader)?),
            4 => Mutation::DeleteMatching(decode_filter(reader)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "mutation",
                    tag,
                })
            }
        });
    }
    let count = reader.count("precondition count", 7)?;
    let mut preconditions = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = match reader.u8("precondition kind")? {
            1 => PreconditionKind::MustMatch,
            2 => PreconditionKind::MustNotMatch,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "precondition kind",
                    tag,
                })
            }
        };
        preconditions.push(Precondition {
            kind,
            filter: decode_filter(reader)?,
        });
    }
    Ok(WriteBatch {
        mutations,
        preconditions,
    })
}

fn decode_batches(reader: &mut Reader<'_>) -> Result<Vec<WriteBatch>, DecodeError> {
    // Every batch takes at least 8 bytes (its two counts).
    let count = reader.count("batch count", 8)?;
    let mut batches = Vec::with_capacity(count);
    for _ in 0..count {
        batches.push(decode_batch(reader)?);
    }
    Ok(batches)
}

fn decode_relationship(reader: &mut Reader<'_>) -> Result<Relationship, DecodeError> {
    let what = "relationship";
    let text = reader.str(what)?;
    let relationship = Relationship::parse(text).map_err(|error| DecodeError::InvalidText {
        what,
        message: error.to_string(),
    })?;
    if !writes_exactly(&relationship, text) {
        return Err(DecodeError::NonCanonical {
            what,
            text: text.to_owned(),
        });
    }
    Ok(relationship)
}

/// Whether `value`'s text form is exactly `text`, compared as it is written: every
/// replica decodes every relationship of every write, and formatting each into a new
/// `String` only to compare it was a measurable share of the apply.
fn writes_exactly(value: &impl std::fmt::Display, text: &str) -> bool {
    struct Matcher<'t> {
        rest: &'t str,
    }
    impl std::fmt::Write for Matcher<'_> {
        fn write_str(&mut self, piece: &str) -> std::fmt::Result {
            match self.rest.strip_prefix(piece) {
                Some(rest) => {
                    self.rest = rest;
                    Ok(())
                }
                None => Err(std::fmt::Error),
            }
        }
    }
    let mut matcher = Matcher { rest: text };
    std::fmt::write(&mut matcher, format_args!("{value}")).is_ok() && matcher.rest.is_empty()
}

fn encode_filter(writer: &mut Writer, filter: &RelationshipFilter) {
    writer.opt_str(filter.resource_type.as_ref().map(TypeName::as_str));
    writer.opt_str(filter.resource_id.as_ref().map(ObjectId::as_str));
    writer.opt_str(filter.relation.as_ref().map(RelationName::as_str));
    writer.opt_str(filter.subject_type.as_ref().map(TypeName::as_str));
    writer.opt_str(filter.subject_id.as_deref());
    writer.opt_str(filter.subject_relation.as_ref().map(RelationName::as_str));
}

/// One optional validated name of a filter.
fn name<T, E: std::fmt::Display>(
    reader: &mut Reader<'_>,
    what: &'static str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, DecodeError> {
    reader
        .opt_str(what)?
        .map(|text| {
            parse(text).map_err(|error| DecodeError::InvalidText {
                what,
                message: error.to_string(),
            })
        })
        .transpose()
}

fn decode_filter(reader: &mut Reader<'_>) -> Result<RelationshipFilter, DecodeError> {
    Ok(RelationshipFilter {
        resource_type: name(reader, "filter resource_type", |text| TypeName::new(text))?,
        resource_id: name(reader, "filter resource_id", |text| ObjectId::new(text))?,
        relation: name(reader, "filter relation", |text| RelationName::new(text))?,
        subject_type: name(reader, "filter subject_type", |text| TypeName::new(text))?,
        subject_id: reader.opt_str("filter subject_id")?.map(str::to_owned),
        subject_relation: name(reader, "filter subject_relation", |text| {
            RelationName::new(text)
        })?,
    })
}

#[cfg(test)]
mod canonical_tests {
    use super::writes_exactly;

    #[test]
    fn a_text_matches_only_what_its_value_writes_in_full() {
        assert!(writes_exactly(
            &"doc:a#viewer@user:b",
            "doc:a#viewer@user:b"
        ));
        assert!(writes_exactly(&42, "42"));
        assert!(!writes_exactly(&42, "042"));
        assert!(
            !writes_exactly(&42, "4"),
            "the value writes more than the text"
        );
        assert!(
            !writes_exactly(&42, "421"),
            "the text holds more than the value writes"
        );
        assert!(!writes_exactly(&"", "x"));
    }
}
