//! The node catalog: which vaults exist on this node, and the node's token secret.

use std::path::Path;
use std::sync::Arc;

use inferadb_protocols::VaultId;
use inferadb_storage::{io::PageIo, Database, WriteTransaction};

use crate::error::{CatalogError, DatabaseError};
use crate::ledger::Reader;
use crate::limits::VAULT_NAME_MAX;
use crate::tables;

/// The page size of vault and catalog files: 4 KiB pages allow 1,008-byte keys. Index keys
/// shorten ids longer than 256 bytes, so the longest is
/// [`INDEX_KEY_LENGTH_MAX`](crate::keys::INDEX_KEY_LENGTH_MAX) bytes (ADR 0005). A commit
/// writes every leaf it touches, and random relationships touch one leaf each per index:
/// at 16 KiB pages a replica's apply copied four times the bytes.
pub const PAGE_SIZE: usize = 4096;

fn checked(db: Database) -> Result<Database, DatabaseError> {
    let found = db.limits().page_size;
    if found != PAGE_SIZE {
        return Err(DatabaseError::PageSize {
            expected: PAGE_SIZE,
            found,
        });
    }
    Ok(db)
}

/// Opens (creating if missing) the node's database file with [`PAGE_SIZE`] pages.
pub fn open_database(path: impl AsRef<Path>) -> Result<Database, DatabaseError> {
    checked(Database::builder().page_size(PAGE_SIZE).open(path)?)
}

/// Opens the node's database over any [`PageIo`] (tests use `MemoryIo`).
pub fn open_database_with_io(io: Arc<dyn PageIo>) -> Result<Database, DatabaseError> {
    checked(Database::builder().page_size(PAGE_SIZE).open_with_io(io)?)
}

/// One vault as the catalog records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaultRecord {
    /// The vault's id.
    pub id: VaultId,
    /// Its unique name.
    pub name: String,
    /// When it was created (caller's clock).
    pub created_at_ms: u64,
}

impl VaultRecord {
    /// Encoding: `u64 id ‖ u64 created_at_ms ‖ name bytes` (big-endian).
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.name.len());
        out.extend_from_slice(&self.id.0.to_be_bytes());
        out.extend_from_slice(&self.created_at_ms.to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, CatalogError> {
        let corrupt = || CatalogError::Corrupt {
            what: "vault record".into(),
        };
        let mut reader = Reader::new(bytes);
        let id = VaultId(reader.u64().ok_or_else(corrupt)?);
        let created_at_ms = reader.u64().ok_or_else(corrupt)?;
        let name = std::str::from_utf8(&bytes[16..]).map_err(|_| corrupt())?;
        Ok(Self {
            id,
            name: name.to_owned(),
            created_at_ms,
        })
    }
}

/// Checks a vault name: 1 to 128 bytes, no control characters.
pub fn validate_vault_name(name: &str) -> Result<(), CatalogError> {
    let rule = if name.is_empty() || name.len() > VAULT_NAME_MAX {
        "must be 1 to 128 bytes long"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(CatalogError::NameInvalid { rule: rule.into() })
}

/// The vaults of a node, over the node's shared database. Cloning shares the database.
#[derive(Clone)]
pub struct NodeCatalog {
    db: Arc<Database>,
    token_secret: [u8; 32],
}

impl NodeCatalog {
    /// Opens the catalog, creating its tables on first use and storing `fresh_secret` as the
    /// token secret when none is stored (the caller draws it, so this stays deterministic).
    pub fn open(db: Arc<Database>, fresh_secret: [u8; 32]) -> Result<Self, CatalogError> {
        let mut write = db.begin_write()?;
        write.open_table(tables::VAULTS)?;
        let token_secret = {
            let mut node = write.open_table(tables::NODE)?;
            let stored = node
                .get(tables::TOKEN_SECRET_KEY)?
                .map(|value| value.to_vec());
            match stored {
                Some(bytes) => bytes.try_into().map_err(|_| CatalogError::Corrupt {
                    what: "token_secret is not 32 bytes".into(),
                })?,
                None => {
                    node.insert(tables::TOKEN_SECRET_KEY, &fresh_secret)?;
                    fresh_secret
                }
            }
        };
        write.commit()?;
        Ok(Self { db, token_secret })
    }

    /// The shared database.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// The secret that authenticates revision tokens.
    pub fn token_secret(&self) -> [u8; 32] {
        self.token_secret
    }

    /// Every vault, by id.
    pub fn list_vaults(&self) -> Result<Vec<VaultRecord>, CatalogError> {
        NodeCatalog::read_vaults(&self.db)
    }

    /// Every vault record of the catalog in `db`, by id, read without opening the catalog
    /// (which writes): a reader must never commit on a catalog another owner writes with
    /// deferred durability, since its commit would make the owner's deferred changes durable
    /// out of order.
    pub fn read_vaults(db: &Database) -> Result<Vec<VaultRecord>, CatalogError> {
        let read = db.begin_read();
        let table = match read.open_table(tables::VAULTS) {
            Ok(table) => table,
            Err(inferadb_storage::StorageError::TableNotFound(_)) => return Ok(Vec::new()),
            Err(error) => return Err(error.into()),
        };
        let mut vaults = Vec::new();
        for entry in table.iter()? {
            let (_, value) = entry?;
            vaults.push(VaultRecord::decode(&value)?);
        }
        Ok(vaults)
    }

    /// One vault's record.
    pub fn get(&self, id: VaultId) -> Result<Option<VaultRecord>, CatalogError> {
        let read = self.db.begin_read();
        let table = read.open_table(tables::VAULTS)?;
        let value = table.get(&id.0.to_be_bytes())?;
        value.map(|bytes| VaultRecord::decode(&bytes)).transpose()
    }

    /// Creates a vault and its (empty) tables in one transaction.
    pub fn create_vault(
        &self,
        id: VaultId,
        name: &str,
        now_ms: u64,
    ) -> Result<VaultRecord, CatalogError> {
        let mut write = self.db.begin_write()?;
        let record = self.create_vault_in(&mut write, id, name, now_ms)?;
        write.commit()?;
        Ok(record)
    }

    /// [`Self::create_vault`] inside the caller's write transaction on this catalog's
    /// database, which the caller commits (with its own durability) together with whatever
    /// else it records there, e.g. a replicated log index. On an error the transaction may
    /// hold part of the change: the caller drops it.
    pub fn create_vault_in(
        &self,
        write: &mut WriteTransaction,
        id: VaultId,
        name: &str,
        now_ms: u64,
    ) -> Result<VaultRecord, CatalogError> {
        validate_vault_name(name)?;
        let record = VaultRecord {
            id,
            name: name.to_owned(),
            created_at_ms: now_ms,
        };
        {
            let mut vaults = write.open_table(tables::VAULTS)?;
            if vaults.get(&id.0.to_be_bytes())?.is_some() {
                return Err(CatalogError::IdTaken { id });
            }
            // Names are unique; a node holds few enough vaults that a scan is fine.
            for entry in vaults.prefix(b"")? {
                let (_, value) = entry?;
                let existing = VaultRecord::decode(&value)?;
                if existing.name == name {
                    return Err(CatalogError::NameTaken {
                        name: name.to_owned(),
                        existing: existing.id,
                    });
                }
            }
            vaults.insert(&id.0.to_be_bytes(), &record.encode())?;
        }
        for table in tables::all(id) {
            write.open_table(&table)?;
        }
        Ok(record)
    }

    /// Deletes a vault's record and every one of its tables in one transaction.
    pub fn delete_vault(&self, id: VaultId) -> Result<(), CatalogError> {
        let mut write = self.db.begin_write()?;
        self.delete_vault_in(&mut write, id)?;
        write.commit()?;
        Ok(())
    }

    /// [`Self::delete_vault`] inside the caller's write transaction on this catalog's
    /// database, which the caller commits; on an error the caller drops it.
    pub fn delete_vault_in(
        &self,
        write: &mut WriteTransaction,
        id: VaultId,
    ) -> Result<(), CatalogError> {
        if write
            .open_table(tables::VAULTS)?
            .remove(&id.0.to_be_bytes())?
            .is_none()
        {
            return Err(CatalogError::VaultNotFound { id });
        }
        let prefix = format!("v/{id}/");
        for table in write.list_tables()? {
            if table.starts_with(&prefix) {
                write.delete_table(&table)?;
            }
        }
        Ok(())
    }
}
