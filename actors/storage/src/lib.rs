//! InferaDB's storage engine: a single-file, copy-on-write B+tree key-value store on a
//! memmap2-backed pager, in the LMDB/redb family.
//!
//! It owns the on-disk format (checksummed fixed-size pages, two alternating meta pages,
//! named tables, a persisted free list), one-writer/many-reader MVCC transactions, crash
//! recovery and the integrity check. It must never read the clock, spawn threads or touch
//! files except through the [`PageIo`] seam, so the simulator can run it under injected
//! faults; and it must never return bytes from a page whose checksum failed.
//!
//! Layers, bottom up: [`io`] (the seam) → `page` (header, checksum, verified reads) →
//! `node` (encoded and dirty B+tree nodes) → `btree`/`btree_write` (algorithms) →
//! `freelist`/`meta` → `db`/`table` (transactions and the facade) → `verify`.

pub mod io;

mod btree;
mod btree_write;
mod db;
mod error;
mod freelist;
mod limits;
mod meta;
mod node;
mod page;
mod table;
mod verify;

pub use btree::{Range, Value};
pub use db::{
    Builder, Database, DatabaseStats, Durability, PendingSync, ReadTransaction, TableHandle,
    WriteTransaction,
};
pub use error::{IoError, OpenError, StorageError};
pub use io::PageIo;
pub use limits::{inline_value_max, key_size_max, StorageLimits};
pub use limits::{PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PAGE_SIZE_MIN};
pub use page::PageId;
pub use table::{ReadTable, Table};
pub use verify::{TableStats, VerifyReport};
