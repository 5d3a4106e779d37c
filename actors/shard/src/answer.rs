//! [`ShardAnswer`]: what applying a command returns to its proposer, and its encoding.
//!
//! # Encoding (format 1; integers big-endian, `str` = u32 length ‖ UTF-8, `bytes` = u32
//! length ‖ raw)
//!
//! ```text
//! answer = 0x01 (format) ‖ tag ‖ fields
//!   tag 1 VaultCreated    u64 id ‖ str name ‖ u64 created_at_ms
//!   tag 2 VaultDeleted    u64 id
//!   tag 3 SchemaDeployed  u32 version ‖ u64 revision
//!   tag 4 Written         u64 revision ‖ u64 inserted ‖ u64 removed
//!   tag 5 Refused         refusal
//!   tag 6 AlreadyApplied
//!   tag 7 Fatal           str message
//!   tag 8 LeaseGranted    u64 epoch ‖ u64 expires_at_ms
//!   tag 9 LeaseReleased
//!   tag 10 WroteGroup     u32 count ‖ item*
//!   tag 11 MembersChanged
//!   tag 12 VaultPlaced    u64 id ‖ u64 shard
//!   tag 13 VaultUnplaced  u64 id
//! item    = 1 ‖ u64 revision ‖ u64 inserted ‖ u64 removed (Written)
//!         | 2 ‖ refusal (Refused)
//! refusal = str kind ‖ str message ‖ bytes detail
//! ```
//!
//! A refusal's `detail` is the JSON of the structured error that refused the command
//! ([`WriteError`], [`SchemaError`] or [`CatalogError`]; a missing vault's
//! `vault_not_found` carries `CatalogError::VaultNotFound`, and a `PlaceVault`'s name and id
//! refusals the `CatalogError` of the same rule), empty when there is none (lease and
//! member refusals, `lease_fenced`, `placement_invalid`, malformed commands,
//! `group_too_large`); [`ShardAnswer::write_error`]
//! and its siblings decode it. Derived `serde` impls print fields in declaration order, so every
//! replica produces the same bytes for the same error.
//!
//! Answers are never stored: each member's own machine produces the answers its proposals
//! wait for, so tag 5's `detail` (added after tags 1–9) and the later tags need no new
//! format byte.

use inferadb_protocols::{Revision, VaultId};
use inferadb_vault::{CatalogError, SchemaError, WriteError};

use crate::refusal;
use crate::wire::{expect_format, DecodeError, Reader, Writer};

/// The format byte of [`ShardAnswer::encode`].
pub const ANSWER_FORMAT: u8 = 1;

const TAG_GROUP_WRITTEN: u8 = 1;
const TAG_GROUP_REFUSED: u8 = 2;

/// The outcome of one applied command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardAnswer {
    /// The vault exists now.
    VaultCreated {
        /// Its id.
        id: VaultId,
        /// Its name.
        name: String,
        /// Its creation time (the command's `now_ms`).
        created_at_ms: u64,
    },
    /// The vault and everything in it are gone.
    VaultDeleted {
        /// Its id.
        id: VaultId,
    },
    /// A schema version was deployed.
    SchemaDeployed {
        /// The new version.
        version: u32,
        /// The revision of the block that records it.
        revision: Revision,
    },
    /// A write batch was applied (`inserted == removed == 0` and the current revision when
    /// it changed nothing).
    Written {
        /// The revision that includes the batch.
        revision: Revision,
        /// Relationships inserted.
        inserted: u64,
        /// Relationships removed.
        removed: u64,
    },
    /// The command was refused and changed nothing. Deterministic: every replica refuses
    /// it identically. `kind` is a stable snake_case name (see [`crate::machine`]).
    Refused {
        /// Which rule refused it, e.g. `precondition_failed`, `vault_name_taken`.
        kind: String,
        /// The human-readable reason.
        message: String,
        /// The structured error as JSON (see the module documentation); empty when there
        /// is none.
        detail: Vec<u8>,
    },
    /// The command was already in this replica's durable state (an entry re-applied after a
    /// restart); nothing changed. Nobody waits for such an answer: a restarted member has
    /// no pending proposals.
    AlreadyApplied,
    /// The replica could not apply the command for a reason of its own (storage failure,
    /// corrupt data). **Not** a refusal: other replicas applied it. The shell must stop
    /// this member; its durable state recovers on restart (see [`crate::machine`]).
    Fatal {
        /// What failed.
        message: String,
    },
    /// A lease was granted or renewed (`AcquireLease`, `RenewLease`): its holder may run
    /// the job, fenced by `epoch`, until `expires_at_ms`.
    LeaseGranted {
        /// The fencing epoch (unchanged by a renewal).
        epoch: u64,
        /// When the lease expires.
        expires_at_ms: u64,
    },
    /// A lease was released (`ReleaseLease`).
    LeaseReleased,
    /// A group of write batches was applied (`WriteGroup`): one item per batch, in order.
    WroteGroup {
        /// Each batch's outcome.
        results: Vec<GroupItem>,
    },
    /// The cluster's member registry holds the record an `AddMember` or `RemoveMember`
    /// asked for (it may have held it already).
    MembersChanged,
    /// A vault is placed (`PlaceVault`; the same answer when it already was).
    VaultPlaced {
        /// The vault.
        id: VaultId,
        /// The data shard that holds it.
        shard: u64,
    },
    /// A vault's placement is gone (`UnplaceVault`).
    VaultUnplaced {
        /// The vault.
        id: VaultId,
    },
}

/// The outcome of one batch of a `WriteGroup`: what a `Write` of it alone would answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupItem {
    /// The batch was applied (see [`ShardAnswer::Written`]).
    Written {
        /// The revision that includes the batch.
        revision: Revision,
        /// Relationships inserted.
        inserted: u64,
        /// Relationships removed.
        removed: u64,
    },
    /// The batch was refused and changed nothing (see [`ShardAnswer::Refused`]; the kinds
    /// are those of a `Write`).
    Refused {
        /// Which rule refused it.
        kind: String,
        /// The human-readable reason.
        message: String,
        /// The [`WriteError`] as JSON; empty when there is none.
        detail: Vec<u8>,
    },
}

impl GroupItem {
    /// The write error that refused the batch, decoded from `detail`; `None` when the
    /// batch was written or the detail is empty or undecodable.
    pub fn write_error(&self) -> Option<WriteError> {
        match self {
            GroupItem::Refused { kind, detail, .. } => {
                refusal::decode(kind, detail, refusal::write_kind)
            }
            GroupItem::Written { .. } => None,
        }
    }
}

impl ShardAnswer {
    /// A refusal without a structured error (`detail` is empty).
    pub fn refused(kind: &str, message: impl Into<String>) -> Self {
        ShardAnswer::Refused {
            kind: kind.to_owned(),
            message: message.into(),
            detail: Vec::new(),
        }
    }

    /// The write error that refused a `Write`, decoded from `detail`; `None` when this is
    /// not a refusal, its kind is not a write rule's, or the detail is empty or
    /// undecodable.
    pub fn write_error(&self) -> Option<WriteError> {
        self.decode_detail(refusal::write_kind)
    }

    /// The schema error that refused a `DeploySchema` (see [`Self::write_error`]).
    pub fn schema_error(&self) -> Option<SchemaError> {
        self.decode_detail(refusal::schema_kind)
    }

    /// The catalog error that refused a `CreateVault` or a `PlaceVault` (name and id
    /// rules), or any vault command whose vault does not exist (`vault_not_found`); see
    /// [`Self::write_error`].
    pub fn catalog_error(&self) -> Option<CatalogError> {
        self.decode_detail(refusal::catalog_kind)
    }

    fn decode_detail<E: serde::de::DeserializeOwned>(
        &self,
        kind_of: fn(&E) -> Option<&'static str>,
    ) -> Option<E> {
        match self {
            ShardAnswer::Refused { kind, detail, .. } => refusal::decode(kind, detail, kind_of),
            _ => None,
        }
    }

    /// The canonical bytes (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::default();
        writer.u8(ANSWER_FORMAT);
        match self {
            ShardAnswer::VaultCreated {
                id,
                name,
                created_at_ms,
            } => {
                writer.u8(1);
                writer.u64(id.0);
                writer.str(name);
                writer.u64(*created_at_ms);
            }
            ShardAnswer::VaultDeleted { id } => {
                writer.u8(2);
                writer.u64(id.0);
            }
            ShardAnswer::SchemaDeployed { version, revision } => {
                writer.u8(3);
                writer.u32(*version);
                writer.u64(revision.0);
            }
            ShardAnswer::Written {
                revision,
                inserted,
                removed,
            } => {
                writer.u8(4);
                written_fields(&mut writer, *revision, *inserted, *removed);
            }
            ShardAnswer::Refused {
                kind,
                message,
                detail,
            } => {
                writer.u8(5);
                refusal_fields(&mut writer, kind, message, detail);
            }
            ShardAnswer::AlreadyApplied => writer.u8(6),
            ShardAnswer::Fatal { message } => {
                writer.u8(7);
                writer.str(message);
            }
            ShardAnswer::LeaseGranted {
                epoch,
                expires_at_ms,
            } => {
                writer.u8(8);
                writer.u64(*epoch);
                writer.u64(*expires_at_ms);
            }
            ShardAnswer::LeaseReleased => writer.u8(9),
            ShardAnswer::WroteGroup { results } => {
                writer.u8(10);
                encode_group(&mut writer, results);
            }
            ShardAnswer::MembersChanged => writer.u8(11),
            ShardAnswer::VaultPlaced { id, shard } => {
                writer.u8(12);
                writer.u64(id.0);
                writer.u64(*shard);
            }
            ShardAnswer::VaultUnplaced { id } => {
                writer.u8(13);
                writer.u64(id.0);
            }
        }
        writer.out
    }

    /// Decodes [`Self::encode`]'s bytes; anything else is a typed error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        expect_format(&mut reader, "shard answer", ANSWER_FORMAT)?;
        let answer = match reader.u8("answer tag")? {
            1 => ShardAnswer::VaultCreated {
                id: VaultId(reader.u64("vault id")?),
                name: reader.str("vault name")?.to_owned(),
                created_at_ms: reader.u64("created_at_ms")?,
            },
            2 => ShardAnswer::VaultDeleted {
                id: VaultId(reader.u64("vault id")?),
            },
            3 => ShardAnswer::SchemaDeployed {
                version: reader.u32("version")?,
                revision: Revision(reader.u64("revision")?),
            },
            4 => ShardAnswer::Written {
                revision: Revision(reader.u64("revision")?),
                inserted: reader.u64("inserted")?,
                removed: reader.u64("removed")?,
            },
            5 => ShardAnswer::Refused {
                kind: reader.str("refusal kind")?.to_owned(),
                message: reader.str("refusal message")?.to_owned(),
                detail: reader.bytes("refusal detail")?.to_vec(),
            },
            6 => ShardAnswer::AlreadyApplied,
            7 => ShardAnswer::Fatal {
                message: reader.str("fatal message")?.to_owned(),
            },
            8 => ShardAnswer::LeaseGranted {
                epoch: reader.u64("lease epoch")?,
                expires_at_ms: reader.u64("expires_at_ms")?,
            },
            9 => ShardAnswer::LeaseReleased,
            10 => ShardAnswer::WroteGroup {
                results: decode_group(&mut reader)?,
            },
            11 => ShardAnswer::MembersChanged,
            12 => ShardAnswer::VaultPlaced {
                id: VaultId(reader.u64("vault id")?),
                shard: reader.u64("shard")?,
            },
            13 => ShardAnswer::VaultUnplaced {
                id: VaultId(reader.u64("vault id")?),
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "answer",
                    tag,
                })
            }
        };
        reader.finish()?;
        Ok(answer)
    }
}

fn written_fields(writer: &mut Writer, revision: Revision, inserted: u64, removed: u64) {
    writer.u64(revision.0);
    writer.u64(inserted);
    writer.u64(removed);
}

fn refusal_fields(writer: &mut Writer, kind: &str, message: &str, detail: &[u8]) {
    writer.str(kind);
    writer.str(message);
    writer.bytes(detail);
}

fn encode_group(writer: &mut Writer, results: &[GroupItem]) {
    writer.len(results.len());
    for item in results {
        match item {
            GroupItem::Written {
                revision,
                inserted,
                removed,
            } => {
                writer.u8(TAG_GROUP_WRITTEN);
                written_fields(writer, *revision, *inserted, *removed);
            }
            GroupItem::Refused {
                kind,
                message,
                detail,
            } => {
                writer.u8(TAG_GROUP_REFUSED);
                refusal_fields(writer, kind, message, detail);
            }
        }
    }
}

fn decode_group(reader: &mut Reader<'_>) -> Result<Vec<GroupItem>, DecodeError> {
    // The smallest item is a refusal with three empty strings: 1 + 3 × 4 bytes.
    let count = reader.count("group result count", 13)?;
    let mut results = Vec::with_capacity(count);
    for _ in 0..count {
        results.push(match reader.u8("group item tag")? {
            TAG_GROUP_WRITTEN => GroupItem::Written {
                revision: Revision(reader.u64("revision")?),
                inserted: reader.u64("inserted")?,
                removed: reader.u64("removed")?,
            },
            TAG_GROUP_REFUSED => GroupItem::Refused {
                kind: reader.str("refusal kind")?.to_owned(),
                message: reader.str("refusal message")?.to_owned(),
                detail: reader.bytes("refusal detail")?.to_vec(),
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "group item",
                    tag,
                })
            }
        });
    }
    Ok(results)
}
