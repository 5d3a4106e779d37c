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
    components, decode_expiry, forward_prefix, push_components, KIND_OBJECT, KIND_USERSET,
    SEPARATOR,
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

/// The expiry of an index value, `None` when it is expired at `now_ms` (invisible).
fn live_expiry(
    value: &[u8],
    now_ms: u64,
) -> Result<Option<Option<u64>>, inferadb_evaluator::ReadError> {
    let expiry = decode_expiry(value).ok_or_else(|| read_error("index value is not an expiry"))?;
    Ok(match expiry {
        Some(at) if at <= now_ms => None,
        other => Some(other),
    })
}

/// Parses `kind 0 subject_type 0 subject_id [0 subject_relation]`.
fn subject_of(suffix: &[u8]) -> Option<SubjectKey<'_>> {
    let parts = components(suffix)?;
    match (parts.len(), parts.first().map(|kind| kind.as_bytes())) {
        (3, Some([KIND_OBJECT])) => Some(SubjectKey {
            subject_type: parts[1],
            subject_id: parts[2],
            subject_relation: None,
        }),
        (4, Some([KIND_USERSET])) => Some(SubjectKey {
            subject_type: parts[1],
            subject_id: parts[2],
            subject_relation: Some(parts[3]),
        }),
        _ => None,
    }
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
    key.extend_from_slice(subject.subject_id.as_bytes());
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
        Ok(live_expiry(&value, now_ms)?.map(|expires_at_ms| Found { expires_at_ms }))
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
            let Some(expires_at_ms) = live_expiry(&value, now_ms)? else {
                continue;
            };
            let subject =
                subject_of(&key[base..]).ok_or_else(|| read_error("malformed forward key"))?;
            if visit(subject, expires_at_ms).is_break() {
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
        push_components(
            &mut prefix,
            &[
                subject.subject_type.as_bytes(),
                subject.subject_id.as_bytes(),
                subject.subject_relation.unwrap_or("").as_bytes(),
                resource_type.as_bytes(),
                relation.as_bytes(),
            ],
        );
        let table = self.reverse_table();
        for entry in table.prefix(&prefix).map_err(storage_error)? {
            let (key, value) = entry.map_err(storage_error)?;
            let Some(expires_at_ms) = live_expiry(&value, now_ms)? else {
                continue;
            };
            let id = std::str::from_utf8(&key[prefix.len()..])
                .map_err(|_| read_error("malformed reverse key"))?;
            if visit(id, expires_at_ms) == ControlFlow::Break(()) {
                break;
            }
        }
        Ok(())
    }
}
