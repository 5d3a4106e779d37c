//! Read views: an immutable snapshot of one vault at one revision, the evaluator's reader.

use std::ops::ControlFlow;
use std::sync::Arc;

use inferadb_evaluator::reader::{ResourceVisitor, SubjectVisitor};
use inferadb_evaluator::{
    Evaluator, Found, ObjectKey, ReadView, RelationshipReader, SubjectFilter, SubjectKey,
};
use inferadb_ipl::CompiledSchema;
use inferadb_protocols::{Revision, VaultId};
use inferadb_storage::{ReadTable, ReadTransaction, TableHandle};

use crate::keys::{
    components, decode_index_value, forward_prefix, names_ids, push_components, push_id,
    resolve_id, IndexValue, KIND_OBJECT, KIND_USERSET, SEPARATOR,
};
use crate::limits::VaultLimits;
use crate::vault::SchemaVersion;

/// The schema version in force, compiled, with the one evaluator built for it.
pub struct ActiveSchema {
    /// Its version (from 1).
    pub version: u32,
    /// Its text as deployed.
    pub text: String,
    /// The compiled schema.
    pub compiled: Arc<CompiledSchema>,
    /// The evaluator for this version, shared by every snapshot that uses it (so its
    /// decision cache is too).
    pub evaluator: Arc<Evaluator>,
}

/// An immutable read view of one vault at one revision. `Send + Sync`: any number of
/// threads may read through it while the vault goes on writing.
pub struct VaultSnapshot {
    pub(crate) vault_id: VaultId,
    pub(crate) revision: Revision,
    pub(crate) schema: Option<Arc<ActiveSchema>>,
    pub(crate) schema_versions: Arc<[SchemaVersion]>,
    pub(crate) limits: Arc<VaultLimits>,
    pub(crate) txn: ReadTransaction,
    pub(crate) forward: TableHandle,
    pub(crate) reverse: TableHandle,
    pub(crate) expiry: TableHandle,
    pub(crate) blocks: TableHandle,
    pub(crate) state: TableHandle,
}

/// A reused key buffer: one allocation per read call, none per probe.
type KeyBuffer = Vec<u8>;

fn read_error(what: &str) -> inferadb_evaluator::ReadError {
    inferadb_evaluator::ReadError {
        message: what.to_owned(),
    }
}

fn storage_error(error: inferadb_storage::StorageError) -> inferadb_evaluator::ReadError {
    inferadb_evaluator::ReadError {
        message: error.to_string(),
    }
}

/// An index value, `None` when it is expired at `now_ms` (invisible).
fn live_value(
    value: &[u8],
    now_ms: u64,
) -> Result<Option<IndexValue<'_>>, inferadb_evaluator::ReadError> {
    let value = decode_index_value(value).ok_or_else(|| read_error("malformed index value"))?;
    Ok(match value.expires_at_ms {
        Some(at) if at <= now_ms => None,
        _ => Some(value),
    })
}

/// Parses `kind 0 subject_type 0 subject_id [0 subject_relation]`, taking a shortened
/// subject id from the entry's value.
fn subject_of<'a>(suffix: &'a [u8], value: &IndexValue<'a>) -> Option<SubjectKey<'a>> {
    let parts = components(suffix)?;
    let relation = match (parts.len(), parts.first().map(|kind| kind.as_bytes())) {
        (3, Some([KIND_OBJECT])) => None,
        (4, Some([KIND_USERSET])) => Some(parts[3]),
        _ => return None,
    };
    let full = value.full_ids.map(|ids| ids.subject_id);
    Some(SubjectKey {
        subject_type: parts[1],
        subject_id: resolve_id(parts[2], full)?,
        subject_relation: relation,
    })
}

fn push_forward_key(
    key: &mut KeyBuffer,
    resource: ObjectKey<'_>,
    relation: &str,
    subject: SubjectKey<'_>,
) {
    let kind = if subject.subject_relation.is_some() {
        KIND_USERSET
    } else {
        KIND_OBJECT
    };
    forward_prefix(
        key,
        resource.object_type,
        resource.object_id,
        relation,
        Some(kind),
    );
    push_components(key, &[subject.subject_type.as_bytes()]);
    push_id(key, subject.subject_id);
    if let Some(relation) = subject.subject_relation {
        key.push(SEPARATOR);
        key.extend_from_slice(relation.as_bytes());
    }
}

impl VaultSnapshot {
    /// The vault this snapshot belongs to.
    pub fn vault_id(&self) -> VaultId {
        self.vault_id
    }

    /// The revision (ledger height) it shows.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The schema in force at this revision, if any was deployed.
    pub fn schema(&self) -> Option<&Arc<ActiveSchema>> {
        self.schema.as_ref()
    }

    /// Every schema version deployed up to this snapshot, oldest first.
    pub fn schema_versions(&self) -> &[SchemaVersion] {
        &self.schema_versions
    }

    /// The limits of the vault it was taken from.
    pub fn limits(&self) -> &VaultLimits {
        &self.limits
    }

    /// The storage snapshot under it.
    pub fn transaction(&self) -> &ReadTransaction {
        &self.txn
    }

    /// Number of stored relationships (expired ones included until they are removed).
    pub fn relationship_count(&self) -> u64 {
        self.forward.len()
    }

    /// The evaluator's view of this snapshot at `now_ms`.
    pub fn view(&self, now_ms: u64) -> ReadView<'_, VaultSnapshot> {
        ReadView {
            reader: self,
            vault_id: self.vault_id.0,
            revision: self.revision,
            now_ms,
        }
    }

    pub(crate) fn forward_table(&self) -> ReadTable<'_> {
        self.txn.open_handle(&self.forward)
    }

    pub(crate) fn reverse_table(&self) -> ReadTable<'_> {
        self.txn.open_handle(&self.reverse)
    }

    pub(crate) fn expiry_table(&self) -> ReadTable<'_> {
        self.txn.open_handle(&self.expiry)
    }

    pub(crate) fn blocks_table(&self) -> ReadTable<'_> {
        self.txn.open_handle(&self.blocks)
    }

    pub(crate) fn state_table(&self) -> ReadTable<'_> {
        self.txn.open_handle(&self.state)
    }

    fn lookup(
        &self,
        table: &ReadTable<'_>,
        key: &mut KeyBuffer,
        resource: ObjectKey<'_>,
        relation: &str,
        subject: SubjectKey<'_>,
        now_ms: u64,
    ) -> Result<Option<Found>, inferadb_evaluator::ReadError> {
        push_forward_key(key, resource, relation, subject);
        let Some(value) = table.get(key).map_err(storage_error)? else {
            return Ok(None);
        };
        Ok(live_value(&value, now_ms)?
            .filter(|value| names_ids(value, resource.object_id, subject.subject_id))
            .map(|value| Found {
                expires_at_ms: value.expires_at_ms,
            }))
    }
}

impl RelationshipReader for VaultSnapshot {
    fn for_each_subject(
        &self,
        resource: ObjectKey<'_>,
        relation: &str,
        filter: SubjectFilter,
        now_ms: u64,
        visit: &mut SubjectVisitor<'_>,
    ) -> Result<(), inferadb_evaluator::ReadError> {
        let mut prefix = Vec::with_capacity(128);
        forward_prefix(
            &mut prefix,
            resource.object_type,
            resource.object_id,
            relation,
            None,
        );
        let base = prefix.len();
        match filter {
            SubjectFilter::All => {}
            SubjectFilter::Objects => push_components(&mut prefix, &[&[KIND_OBJECT]]),
            SubjectFilter::Usersets => push_components(&mut prefix, &[&[KIND_USERSET]]),
        }
        let table = self.forward_table();
        for entry in table.prefix(&prefix).map_err(storage_error)? {
            let (key, value) = entry.map_err(storage_error)?;
            let Some(value) = live_value(&value, now_ms)? else {
                continue;
            };
            let subject = subject_of(&key[base..], &value)
                .ok_or_else(|| read_error("malformed forward entry"))?;
            if visit(subject, value.expires_at_ms).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn contains(
        &self,
        resource: ObjectKey<'_>,
        relation: &str,
        subject: SubjectKey<'_>,
        now_ms: u64,
    ) -> Result<Option<Found>, inferadb_evaluator::ReadError> {
        let mut key = KeyBuffer::with_capacity(128);
        self.lookup(
            &self.forward_table(),
            &mut key,
            resource,
            relation,
            subject,
            now_ms,
        )
    }

    fn find_direct(
        &self,
        resource: ObjectKey<'_>,
        relation: &str,
        probes: &[SubjectKey<'_>],
        usersets: bool,
        now_ms: u64,
        visit: &mut SubjectVisitor<'_>,
    ) -> Result<Option<Found>, inferadb_evaluator::ReadError> {
        // One table handle and one key buffer for every probe of the relation.
        let table = self.forward_table();
        let mut key = KeyBuffer::with_capacity(128);
        for probe in probes {
            if let Some(found) =
                self.lookup(&table, &mut key, resource, relation, *probe, now_ms)?
            {
                return Ok(Some(found));
            }
        }
        if usersets {
            self.for_each_subject(resource, relation, SubjectFilter::Usersets, now_ms, visit)?;
        }
        Ok(None)
    }

    fn for_each_resource(
        &self,
        subject: SubjectKey<'_>,
        resource_type: &str,
        relation: &str,
        now_ms: u64,
        visit: &mut ResourceVisitor<'_>,
    ) -> Result<(), inferadb_evaluator::ReadError> {
        let mut prefix = Vec::with_capacity(128);
        push_components(&mut prefix, &[subject.subject_type.as_bytes()]);
        push_id(&mut prefix, subject.subject_id);
        prefix.push(SEPARATOR);
        push_components(
            &mut prefix,
            &[
                subject.subject_relation.unwrap_or("").as_bytes(),
                resource_type.as_bytes(),
                relation.as_bytes(),
            ],
        );
        let table = self.reverse_table();
        for entry in table.prefix(&prefix).map_err(storage_error)? {
            let (key, value) = entry.map_err(storage_error)?;
            let Some(value) = live_value(&value, now_ms)? else {
                continue;
            };
            let id = std::str::from_utf8(&key[prefix.len()..])
                .ok()
                .and_then(|id| resolve_id(id, value.full_ids.map(|ids| ids.resource_id)))
                .ok_or_else(|| read_error("malformed reverse entry"))?;
            if visit(id, value.expires_at_ms) == ControlFlow::Break(()) {
                break;
            }
        }
        Ok(())
    }
}
