//! [`ShardAnswer`]: what applying a command returns to its proposer, and its encoding.
//!
//! # Encoding (format 1; integers big-endian, `str` = u32 length ‖ UTF-8)
//!
//! ```text
//! answer = 0x01 (format) ‖ tag ‖ fields
//!   tag 1 VaultCreated    u64 id ‖ str name ‖ u64 created_at_ms
//!   tag 2 VaultDeleted    u64 id
//!   tag 3 SchemaDeployed  u32 version ‖ u64 revision
//!   tag 4 Written         u64 revision ‖ u64 inserted ‖ u64 removed
//!   tag 5 Refused         str kind ‖ str message
//!   tag 6 AlreadyApplied
//!   tag 7 Fatal           str message
//!   tag 8 LeaseGranted    u64 epoch ‖ u64 expires_at_ms
//!   tag 9 LeaseReleased
//! ```

use inferadb_protocols::{Revision, VaultId};

use crate::wire::{expect_format, DecodeError, Reader, Writer};

/// The format byte of [`ShardAnswer::encode`].
pub const ANSWER_FORMAT: u8 = 1;

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
}

impl ShardAnswer {
    /// A refusal.
    pub fn refused(kind: &str, message: impl Into<String>) -> Self {
        ShardAnswer::Refused {
            kind: kind.to_owned(),
            message: message.into(),
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
                writer.u64(revision.0);
                writer.u64(*inserted);
                writer.u64(*removed);
            }
            ShardAnswer::Refused { kind, message } => {
                writer.u8(5);
                writer.str(kind);
                writer.str(message);
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
