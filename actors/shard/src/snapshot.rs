//! The logical snapshot of a shard: the catalog, for every vault its schema texts and its
//! whole ledger, from which [`crate::ShardMachine`] rebuilds identical vaults, the lease
//! table, the member registry, the vault placements and the fence epochs.
//!
//! # Encoding (format 5; integers big-endian, `str`/`bytes` = u32 length ‖ content)
//!
//! ```text
//! snapshot = 0x05 (format) ‖ u64 applied_index ‖ u32 count ‖ vault*   (vaults by id)
//!            ‖ u64 last_epoch ‖ u32 count ‖ lease*                     (leases by job name)
//!            ‖ u32 count ‖ member*                                     (members by id)
//!            ‖ u32 count ‖ placement*                                  (placements by id)
//!            ‖ u32 count ‖ fence*                                      (fences by job name)
//! vault    = u64 id ‖ str name ‖ u64 created_at_ms ‖ u64 commit_index
//!            ‖ u32 count ‖ (u32 version ‖ str text)*                   (oldest first)
//!            ‖ u32 count ‖ bytes block*                                 (height 1 up; the
//!                                                                        vault's stored block
//!                                                                        encoding)
//! lease    = str job ‖ u64 holder ‖ u64 epoch ‖ u64 expires_at_ms
//! member   = u64 id ‖ u8 removed (0 | 1) ‖ str address
//! placement = u64 vault id ‖ u64 shard ‖ str name
//! fence    = str job ‖ u64 epoch                   (the highest epoch accepted for the job)
//! ```
//!
//! Format 4 (written before fence epochs existed; see `ShardMachine::fence_epochs`) is
//! format 5 without the fence part, and decodes with no fence epochs. As with each part
//! before it, a shard with no fence epochs is still **written** in the oldest format that
//! holds it (4 when it has placements, else 3 or 2), so members of a version without fence
//! epochs keep accepting its snapshots until the first `PurgeExpired` is admitted. Fence
//! epochs are checked when decoded (valid job names in strictly ascending order, epochs
//! not 0), and a format-5 snapshot with no fence epochs decodes like its format-4 twin
//! and re-encodes as the oldest format that holds it.
//!
//! Format 3 (written before vault placements existed) is format 4 without the placement
//! part, and decodes with no placements. Like the member registry before it, a shard with
//! no placements is still **written** in the oldest format that holds it (3 when it has
//! members, else 2), so members of a version without placements keep accepting its
//! snapshots until the first `PlaceVault` is applied. Placements are checked when decoded
//! (vault ids strictly ascending, what [`crate::placements`] can record: valid, distinct
//! names and no shard 0), and a format-4 snapshot with no placements decodes like its
//! format-3 twin and re-encodes as the oldest format that holds it.
//!
//! Format 2 (written before the member registry existed) is format 3 without the member
//! part, and format 1 (before leases) is format 2 without the lease part; both still
//! decode, with no members (and, for format 1, no leases and `last_epoch` 0). A shard
//! whose registry is empty is still **written** in format 2, so members of a version
//! without the registry keep accepting its snapshots until the first `AddMember` or
//! `RemoveMember` is applied (which, like any new command tag, must wait until every member
//! runs a version that knows it). Leases are checked when decoded (valid job names in
//! strictly ascending order, distinct epochs in `1..=last_epoch`), and so are members (ids
//! strictly ascending and not 0, what [`crate::members`] can record), so each snapshot
//! decodes to one state; a format-3 snapshot with no members decodes like its format-2
//! twin, and re-encodes as it.

use inferadb_protocols::VaultId;
use inferadb_vault::{Block, VaultRecord};

use std::collections::BTreeMap;

use crate::lease::{valid_job_name, validate_parts, Lease};
use crate::members::{self, MemberRecord};
use crate::placements::{self, Placement};
use crate::wire::{DecodeError, Reader, Writer};

/// The format byte of a shard snapshot with fence epochs (the newest).
pub const SNAPSHOT_FORMAT: u8 = 5;
/// The format before fence epochs, still written when there are none but the vault
/// placements are not empty.
pub const SNAPSHOT_FORMAT_NO_FENCES: u8 = 4;
/// The format before vault placements, still written when there are none but the member
/// registry is not empty.
pub const SNAPSHOT_FORMAT_NO_PLACEMENTS: u8 = 3;
/// The format before the member registry, still written when the registry is empty.
pub const SNAPSHOT_FORMAT_NO_MEMBERS: u8 = 2;
/// The format before leases, still accepted by restores.
const SNAPSHOT_FORMAT_NO_LEASES: u8 = 1;

/// One vault of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VaultImage {
    pub(crate) record: VaultRecord,
    pub(crate) commit_index: u64,
    pub(crate) schemas: Vec<(u32, String)>,
    pub(crate) blocks: Vec<Block>,
}

impl VaultImage {
    /// The text of the schema version a block deploys, if it deploys one.
    pub(crate) fn schema_text_for(&self, block: &Block) -> Option<&str> {
        block
            .operations
            .iter()
            .find_map(|operation| match operation {
                inferadb_vault::Operation::SchemaDeployed { version, .. } => self
                    .schemas
                    .iter()
                    .find(|(stored, _)| stored == version)
                    .map(|(_, text)| text.as_str()),
                _ => None,
            })
    }
}

/// A whole shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ShardImage {
    pub(crate) applied_index: u64,
    pub(crate) vaults: Vec<VaultImage>,
    /// The lease table's epoch counter.
    pub(crate) last_epoch: u64,
    /// Every lease, by job name ascending.
    pub(crate) leases: Vec<(String, Lease)>,
    /// The member registry.
    pub(crate) members: BTreeMap<u64, MemberRecord>,
    /// The vault placements.
    pub(crate) placements: BTreeMap<VaultId, Placement>,
    /// The highest epoch accepted per job (see `ShardMachine::fence_epochs`).
    pub(crate) fence_epochs: BTreeMap<String, u64>,
}

impl ShardImage {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::default();
        writer.u8(self.format());
        writer.u64(self.applied_index);
        writer.len(self.vaults.len());
        for vault in &self.vaults {
            writer.u64(vault.record.id.0);
            writer.str(&vault.record.name);
            writer.u64(vault.record.created_at_ms);
            writer.u64(vault.commit_index);
            writer.len(vault.schemas.len());
            for (version, text) in &vault.schemas {
                writer.u32(*version);
                writer.str(text);
            }
            writer.len(vault.blocks.len());
            for block in &vault.blocks {
                writer.bytes(&block.encode());
            }
        }
        writer.u64(self.last_epoch);
        writer.len(self.leases.len());
        for (job, lease) in &self.leases {
            writer.str(job);
            writer.u64(lease.holder);
            writer.u64(lease.epoch);
            writer.u64(lease.expires_at_ms);
        }
        let format = self.format();
        if format >= SNAPSHOT_FORMAT_NO_PLACEMENTS {
            writer.len(self.members.len());
            for (id, record) in &self.members {
                writer.u64(*id);
                writer.u8(u8::from(record.removed));
                writer.str(&record.address);
            }
        }
        if format >= SNAPSHOT_FORMAT_NO_FENCES {
            writer.len(self.placements.len());
            for (id, placement) in &self.placements {
                writer.u64(id.0);
                writer.u64(placement.shard);
                writer.str(&placement.name);
            }
        }
        if format >= SNAPSHOT_FORMAT {
            writer.len(self.fence_epochs.len());
            for (job, epoch) in &self.fence_epochs {
                writer.str(job);
                writer.u64(*epoch);
            }
        }
        writer.out
    }

    /// The format [`Self::encode`] writes: the oldest that holds the image.
    fn format(&self) -> u8 {
        if !self.fence_epochs.is_empty() {
            SNAPSHOT_FORMAT
        } else if !self.placements.is_empty() {
            SNAPSHOT_FORMAT_NO_FENCES
        } else if !self.members.is_empty() {
            SNAPSHOT_FORMAT_NO_PLACEMENTS
        } else {
            SNAPSHOT_FORMAT_NO_MEMBERS
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let format = reader
            .u8("shard snapshot")
            .map_err(|_| DecodeError::Empty)?;
        if !(SNAPSHOT_FORMAT_NO_LEASES..=SNAPSHOT_FORMAT).contains(&format) {
            return Err(DecodeError::UnknownVersion {
                what: "shard snapshot",
                version: format,
            });
        }
        let applied_index = reader.u64("applied_index")?;
        let count = reader.count("vault count", 36)?;
        let mut vaults = Vec::with_capacity(count);
        for _ in 0..count {
            vaults.push(decode_vault(&mut reader)?);
        }
        let (last_epoch, leases) = if format >= SNAPSHOT_FORMAT_NO_MEMBERS {
            decode_leases(&mut reader)?
        } else {
            (0, Vec::new())
        };
        let members = if format >= SNAPSHOT_FORMAT_NO_PLACEMENTS {
            decode_members(&mut reader)?
        } else {
            BTreeMap::new()
        };
        let placements = if format >= SNAPSHOT_FORMAT_NO_FENCES {
            decode_placements(&mut reader)?
        } else {
            BTreeMap::new()
        };
        let fence_epochs = if format >= SNAPSHOT_FORMAT {
            decode_fence_epochs(&mut reader)?
        } else {
            BTreeMap::new()
        };
        reader.finish()?;
        Ok(ShardImage {
            applied_index,
            vaults,
            last_epoch,
            leases,
            members,
            placements,
            fence_epochs,
        })
    }
}

fn decode_vault(reader: &mut Reader<'_>) -> Result<VaultImage, DecodeError> {
    let record = VaultRecord {
        id: VaultId(reader.u64("vault id")?),
        name: reader.str("vault name")?.to_owned(),
        created_at_ms: reader.u64("created_at_ms")?,
    };
    let commit_index = reader.u64("commit_index")?;
    let count = reader.count("schema count", 8)?;
    let mut schemas = Vec::with_capacity(count);
    for _ in 0..count {
        schemas.push((
            reader.u32("schema version")?,
            reader.str("schema text")?.to_owned(),
        ));
    }
    let count = reader.count("block count", 4)?;
    let mut blocks = Vec::with_capacity(count);
    for _ in 0..count {
        let bytes = reader.bytes("block")?;
        blocks.push(
            Block::decode(bytes).ok_or_else(|| DecodeError::InvalidText {
                what: "block",
                message: "not a stored block encoding".into(),
            })?,
        );
    }
    Ok(VaultImage {
        record,
        commit_index,
        schemas,
        blocks,
    })
}

fn decode_leases(reader: &mut Reader<'_>) -> Result<(u64, Vec<(String, Lease)>), DecodeError> {
    let last_epoch = reader.u64("last_epoch")?;
    // Every lease takes at least 4 + 1 + 3 × 8 bytes.
    let count = reader.count("lease count", 29)?;
    let mut leases = Vec::with_capacity(count);
    for _ in 0..count {
        let job = reader.str("lease job")?.to_owned();
        let lease = Lease {
            holder: reader.u64("lease holder")?,
            epoch: reader.u64("lease epoch")?,
            expires_at_ms: reader.u64("expires_at_ms")?,
        };
        leases.push((job, lease));
    }
    validate_parts(last_epoch, &leases).map_err(|message| DecodeError::InvalidText {
        what: "leases",
        message,
    })?;
    Ok((last_epoch, leases))
}

fn decode_members(reader: &mut Reader<'_>) -> Result<BTreeMap<u64, MemberRecord>, DecodeError> {
    // Every member takes at least 8 + 1 + 4 bytes.
    let count = reader.count("member count", 13)?;
    let mut members = BTreeMap::new();
    let mut previous = 0;
    for _ in 0..count {
        let id = reader.u64("member id")?;
        let removed = match reader.u8("member removed")? {
            0 => false,
            1 => true,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "member removed",
                    tag,
                })
            }
        };
        let record = MemberRecord {
            address: reader.str("member address")?.to_owned(),
            removed,
        };
        let invalid = |message| DecodeError::InvalidText {
            what: "members",
            message,
        };
        members::check(id, &record).map_err(invalid)?;
        if id <= previous {
            return Err(invalid(format!(
                "member {id} is not above member {previous}"
            )));
        }
        previous = id;
        members.insert(id, record);
    }
    Ok(members)
}

fn decode_placements(reader: &mut Reader<'_>) -> Result<BTreeMap<VaultId, Placement>, DecodeError> {
    // Every placement takes at least 8 + 8 + 4 bytes.
    let count = reader.count("placement count", 20)?;
    let invalid = |message| DecodeError::InvalidText {
        what: "placements",
        message,
    };
    let mut decoded = BTreeMap::new();
    for _ in 0..count {
        let id = VaultId(reader.u64("placed vault id")?);
        let placement = Placement {
            shard: reader.u64("placement shard")?,
            name: reader.str("placement name")?.to_owned(),
        };
        if let Some((previous, _)) = decoded.last_key_value() {
            if id <= *previous {
                return Err(invalid(format!(
                    "placed vault {id} is not above vault {previous}"
                )));
            }
        }
        decoded.insert(id, placement);
    }
    placements::check(&decoded).map_err(invalid)?;
    Ok(decoded)
}

fn decode_fence_epochs(reader: &mut Reader<'_>) -> Result<BTreeMap<String, u64>, DecodeError> {
    // Every fence takes at least 4 + 1 + 8 bytes.
    let count = reader.count("fence count", 13)?;
    let mut decoded = BTreeMap::new();
    for _ in 0..count {
        let job = reader.str("fence job")?.to_owned();
        let epoch = reader.u64("fence epoch")?;
        let problem = if !valid_job_name(&job) {
            Some(format!("invalid job name `{job}`"))
        } else if decoded
            .keys()
            .next_back()
            .is_some_and(|previous: &String| *previous >= job)
        {
            Some(format!("job `{job}` is out of order or repeated"))
        } else if epoch == 0 {
            Some(format!("job `{job}`: epoch 0 is never granted"))
        } else {
            None
        };
        if let Some(message) = problem {
            return Err(DecodeError::InvalidText {
                what: "fence epochs",
                message,
            });
        }
        decoded.insert(job, epoch);
    }
    Ok(decoded)
}
