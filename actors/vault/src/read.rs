//! Paged relationship reads and block reads on a snapshot.
//!
//! A relationship cursor is `c1.<index>.<filter fingerprint>.<last key>`: the index the
//! filter's scan walks (`f` forward, `r` reverse), 16 hex digits identifying the filter, and
//! the hex of the last key returned. It only continues the read it came from.

use std::ops::{Bound, ControlFlow};

use inferadb_protocols::Relationship;

use crate::error::{ReadError, VaultError};
use crate::filter::{scan_matching, IndexKind, RelationshipFilter, ScanError, ScanPlan};
use crate::ledger::{hex, unhex, Block};
use crate::snapshot::VaultSnapshot;

/// One page of relationships.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationshipPage {
    /// Live matching relationships, in index order.
    pub relationships: Vec<Relationship>,
    /// Continues after this page; `None` when nothing matches after it.
    pub cursor: Option<String>,
}

const CURSOR_PREFIX: &str = "c1.";

fn index_tag(index: IndexKind) -> &'static str {
    match index {
        IndexKind::Forward => "f",
        IndexKind::Reverse => "r",
    }
}

fn encode_cursor(plan: &ScanPlan, fingerprint: [u8; 8], key: &[u8]) -> String {
    format!(
        "{CURSOR_PREFIX}{}.{}.{}",
        index_tag(plan.index),
        hex(&fingerprint),
        hex(key)
    )
}

/// The last key of a cursor, checked against the filter it must continue.
fn decode_cursor(
    cursor: &str,
    plan: &ScanPlan,
    fingerprint: [u8; 8],
) -> Result<Vec<u8>, ReadError> {
    let malformed = |reason| ReadError::CursorMalformed { reason };
    let body = cursor
        .strip_prefix(CURSOR_PREFIX)
        .ok_or(malformed("must start with `c1.`"))?;
    let mut parts = body.split('.');
    let (Some(index), Some(filter), Some(key), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("must have four dot-separated parts"));
    };
    if index != "f" && index != "r" {
        return Err(malformed("unknown index"));
    }
    let filter = unhex(filter)
        .filter(|bytes| bytes.len() == 8)
        .ok_or(malformed("bad filter part"))?;
    let key = unhex(key)
        .filter(|key| !key.is_empty())
        .ok_or(malformed("bad key part"))?;
    if index != index_tag(plan.index) || filter != fingerprint || !key.starts_with(&plan.prefix) {
        return Err(ReadError::CursorMismatch);
    }
    Ok(key)
}

fn scan_error(error: ScanError) -> ReadError {
    match error {
        ScanError::Storage(error) => ReadError::Storage(error),
        ScanError::Corrupt(what) => ReadError::Corrupt { what },
    }
}

impl VaultSnapshot {
    /// Live relationships matching `filter`, `limit` at a time (at most `read_page_max`),
    /// continuing after `cursor`.
    pub fn read_relationships(
        &self,
        filter: &RelationshipFilter,
        limit: usize,
        cursor: Option<&str>,
        now_ms: u64,
    ) -> Result<RelationshipPage, ReadError> {
        let max = self.limits.read_page_max;
        if limit == 0 || limit > max {
            return Err(ReadError::LimitInvalid { limit, max });
        }
        filter.validate()?;
        let plan = filter.plan();
        let fingerprint = filter.fingerprint();
        let after = cursor
            .map(|cursor| decode_cursor(cursor, &plan, fingerprint))
            .transpose()?;
        let table = match plan.index {
            IndexKind::Forward => self.forward_table(),
            IndexKind::Reverse => self.reverse_table(),
        };
        let range = match &after {
            Some(key) => table.range((Bound::Excluded(key.as_slice()), Bound::Unbounded))?,
            None => table.prefix(&plan.prefix)?,
        };
        let mut relationships = Vec::new();
        let mut last_key = Vec::new();
        let mut more = false;
        let prefix = plan.prefix.clone();
        scan_matching(range, plan.index, filter, &mut |key, relationship| {
            if !key.starts_with(&prefix) {
                return ControlFlow::Break(());
            }
            if !relationship.is_live_at(now_ms) {
                return ControlFlow::Continue(());
            }
            if relationships.len() == limit {
                // One more live match exists: the page gets a cursor.
                more = true;
                return ControlFlow::Break(());
            }
            last_key = key.to_vec();
            relationships.push(relationship);
            ControlFlow::Continue(())
        })
        .map_err(scan_error)?;
        Ok(RelationshipPage {
            relationships,
            cursor: more.then(|| encode_cursor(&plan, fingerprint, &last_key)),
        })
    }

    /// The block at `height`, if the snapshot has it.
    pub fn block(&self, height: u64) -> Result<Option<Block>, VaultError> {
        if height == 0 || height > self.revision.0 {
            return Ok(None);
        }
        let table = self.blocks_table();
        let Some(bytes) = table.get(&height.to_be_bytes())? else {
            return Ok(None);
        };
        Block::decode(&bytes)
            .map(Some)
            .ok_or_else(|| VaultError::Corrupt {
                what: format!("block {height}"),
            })
    }

    /// Up to `limit` (at most `block_page_max`) blocks from height `from` on.
    pub fn blocks(&self, from: u64, limit: usize) -> Result<Vec<Block>, VaultError> {
        let max = self.limits.block_page_max;
        if limit == 0 || limit > max {
            return Err(VaultError::LimitInvalid { limit, max });
        }
        let mut blocks = Vec::new();
        let end = self.revision.0.min(from.saturating_add(limit as u64 - 1));
        for height in from.max(1)..=end {
            match self.block(height)? {
                Some(block) => blocks.push(block),
                None => {
                    return Err(VaultError::Corrupt {
                        what: format!("block {height} is missing"),
                    })
                }
            }
        }
        Ok(blocks)
    }
}
