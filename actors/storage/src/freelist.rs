//! The free list: pages free for reuse now, and pages released by a transaction that
//! become reusable once that transaction is durable and no reader's snapshot predates it.
//!
//! Persisted by every commit whose meta page is written (an `Immediate` commit, or the
//! commit a sync makes durable; deferred commits keep the previous chain) as a chain of
//! free-list pages holding a stream of u64 words: `[free count, free ids…, pending count, (txn, count, ids…)…]`. Each page: header
//! (`[20..24)` = words in this page), next page id at `[32..40)`, words from 40.

use crate::error::StorageError;
use crate::page::{read_u32, read_u64, seal, write_u32, write_u64, PageId, PageKind, Pages};

const NEXT_AT: usize = 32;
const WORDS_AT: usize = 40;

/// Pages not reachable from the committed trees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FreeState {
    /// Reusable now.
    pub(crate) free: Vec<PageId>,
    /// `(txn, pages)`: released by `txn`, reusable once `txn` is durable and every live
    /// reader's snapshot is at least `txn`.
    pub(crate) pending: Vec<(u64, Vec<PageId>)>,
    /// `(txn, pages)`: released by `txn` but written after the newest durable commit, so
    /// no meta page on disk reaches them: reusable once every live reader's snapshot is
    /// at least `txn`. Kept apart in memory only; persisted as ordinary pending pages.
    pub(crate) pending_young: Vec<(u64, Vec<PageId>)>,
}

type PendingList = Vec<(u64, Vec<PageId>)>;

impl FreeState {
    fn all_pending(&self) -> impl Iterator<Item = &(u64, Vec<PageId>)> {
        self.pending.iter().chain(&self.pending_young)
    }

    pub(crate) fn page_total(&self) -> usize {
        self.free.len()
            + self
                .all_pending()
                .map(|(_, pages)| pages.len())
                .sum::<usize>()
    }

    fn entry_count(&self) -> usize {
        self.pending.len() + self.pending_young.len()
    }

    fn words(&self) -> Vec<u64> {
        let mut words = Vec::with_capacity(2 + self.page_total() + 2 * self.entry_count());
        words.push(self.free.len() as u64);
        words.extend(&self.free);
        words.push(self.entry_count() as u64);
        for (txn, pages) in self.all_pending() {
            words.push(*txn);
            words.push(pages.len() as u64);
            words.extend(pages);
        }
        words
    }

    fn from_words(words: &[u64]) -> Option<FreeState> {
        let mut reader = words.iter().copied();
        let mut take = |count: u64| -> Option<Vec<u64>> {
            let count = usize::try_from(count).ok()?;
            let taken: Vec<u64> = reader.by_ref().take(count).collect();
            (taken.len() == count).then_some(taken)
        };
        let free_count = take(1)?[0];
        let free = take(free_count)?;
        let pending_count = take(1)?[0];
        let mut pending = Vec::new();
        for _ in 0..pending_count {
            let header = take(2)?;
            pending.push((header[0], take(header[1])?));
        }
        Some(FreeState {
            free,
            pending,
            pending_young: Vec::new(),
        })
    }

    /// Moves pending pages that became reusable into `free`, in the order a write
    /// transaction allocates them (it pops from the end): pages released by a transaction
    /// `<= durable_horizon` (the older of the durable transaction and the oldest live
    /// reader) join the free pages, lowest id last; young pages released by one
    /// `<= reader_horizon` come after them, the most recently released last. A young page
    /// was written moments ago, so its memory is still in the CPU's caches and the page
    /// cache: filling it again costs a fraction of filling a cold page.
    pub(crate) fn release_up_to(&mut self, durable_horizon: u64, reader_horizon: u64) {
        let durable = take_ready(&mut self.pending, durable_horizon);
        let young = take_ready(&mut self.pending_young, reader_horizon);
        self.free.extend(durable);
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        self.free.extend(young);
    }
}

fn take_ready(list: &mut PendingList, horizon: u64) -> Vec<PageId> {
    let (ready, waiting): (PendingList, PendingList) = std::mem::take(list)
        .into_iter()
        .partition(|(txn, _)| *txn <= horizon);
    *list = waiting;
    ready.into_iter().flat_map(|(_, pages)| pages).collect()
}

/// Words one free-list page holds.
pub(crate) fn words_per_page(page_size: usize) -> usize {
    (page_size - WORDS_AT) / 8
}

/// Pages the chain for `state` needs.
pub(crate) fn pages_needed(state: &FreeState, page_size: usize) -> usize {
    let words = 2 + state.page_total() + 2 * state.entry_count();
    words.div_ceil(words_per_page(page_size)).max(1)
}

/// Encodes `state` into the (sealed) pages of `chain`. The chain may be longer than
/// needed; trailing pages then hold no words.
#[cfg(test)]
pub(crate) fn encode(
    state: &FreeState,
    chain: &[PageId],
    page_size: usize,
    txn: u64,
) -> Vec<Vec<u8>> {
    let words = state.words();
    (0..chain.len())
        .map(|index| {
            let mut page = vec![0u8; page_size];
            encode_page(&words, chain, index, &mut page, txn);
            page
        })
        .collect()
}

/// The words of `state`, as [`encode_page`] stores them.
pub(crate) fn words(state: &FreeState) -> Vec<u64> {
    state.words()
}

/// Encodes page `index` of `chain` (holding its share of `words`) into `page`, a zeroed
/// page buffer, and seals it.
pub(crate) fn encode_page(
    words: &[u64],
    chain: &[PageId],
    index: usize,
    page: &mut [u8],
    txn: u64,
) {
    let per_page = words_per_page(page.len());
    assert!(
        words.len() <= per_page * chain.len(),
        "free-list chain too short"
    );
    let start = (index * per_page).min(words.len());
    let end = ((index + 1) * per_page).min(words.len());
    write_u32(page, 20, (end - start) as u32);
    write_u64(page, NEXT_AT, chain.get(index + 1).copied().unwrap_or(0));
    for (slot, word) in words[start..end].iter().enumerate() {
        write_u64(page, WORDS_AT + 8 * slot, *word);
    }
    seal(chain[index], page, PageKind::FreeList, 0, txn);
}

/// Reads the chain starting at `head`; returns the state and the chain's pages.
pub(crate) fn decode(
    pages: &Pages,
    head: Option<PageId>,
) -> Result<(FreeState, Vec<PageId>), StorageError> {
    if head.is_none() {
        return Ok((FreeState::default(), Vec::new()));
    }
    let mut chain = Vec::new();
    let mut words = Vec::new();
    let mut next = head;
    while let Some(page_id) = next {
        if chain.len() as u64 > pages.page_count {
            return Err(StorageError::corruption(page_id, "free-list chain loops"));
        }
        let page = pages.page(page_id, PageKind::FreeList)?;
        let count = read_u32(page, 20) as usize;
        if count > words_per_page(pages.page_size) {
            return Err(StorageError::corruption(
                page_id,
                "free-list page word count too large",
            ));
        }
        words.extend((0..count).map(|slot| read_u64(page, WORDS_AT + 8 * slot)));
        chain.push(page_id);
        next = Some(read_u64(page, NEXT_AT)).filter(|page| *page != 0);
    }
    let state = FreeState::from_words(&words).ok_or_else(|| {
        StorageError::corruption(head.unwrap_or(0), "free-list words do not parse")
    })?;
    Ok((state, chain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_pending_pages_release_at_the_horizon() {
        let mut state = FreeState {
            free: vec![9, 8],
            pending: vec![(4, vec![20, 21]), (6, vec![30])],
            pending_young: Vec::new(),
        };
        assert_eq!(FreeState::from_words(&state.words()), Some(state.clone()));
        state.pending_young = vec![(3, vec![40, 41]), (5, vec![50]), (7, vec![60])];
        assert_eq!(
            FreeState::from_words(&[5, 1]),
            None,
            "truncated words are rejected"
        );
        state.release_up_to(5, 5);
        // Allocation pops from the end: the most recently released young page first (its
        // memory is warm), then the lowest id.
        assert_eq!(state.free, vec![21, 20, 9, 8, 40, 41, 50]);
        assert_eq!(state.pending, vec![(6, vec![30])]);
        assert_eq!(state.pending_young, vec![(7, vec![60])]);
        assert_eq!(state.page_total(), 9);
    }

    #[test]
    fn a_long_free_list_spans_a_chain_of_pages() {
        let state = FreeState {
            free: (100..1000).collect(),
            pending: Vec::new(),
            pending_young: Vec::new(),
        };
        let needed = pages_needed(&state, 512);
        assert_eq!(needed, (902usize).div_ceil(words_per_page(512)));
        let chain: Vec<PageId> = (2..2 + needed as u64 + 1).collect();
        let pages = encode(&state, &chain, 512, 3);
        assert_eq!(
            pages.len(),
            chain.len(),
            "a longer chain ends in empty pages"
        );
        assert!(pages
            .iter()
            .zip(&chain)
            .all(|(page, id)| crate::page::checksum_valid(*id, page)));
    }
}
