//! Applying many entries at once: consecutive writes to one vault share one storage
//! transaction.
//!
//! Raft hands a replica its committed entries in batches (one Ready cycle's worth), and
//! under load most of them are `Write`/`WriteGroup` commands for the same vault. Applying
//! each in its own vault transaction plus its own catalog transaction costs two page
//! write-outs per entry; merging a run of them into one `Vault::write_group_timed` (every
//! batch at its own command's `now_ms`) and one catalog transaction costs two per run.
//!
//! **Why the outcome cannot change.** `write_group_timed` gives exactly what applying each
//! batch in turn at its time gives (results, blocks, state roots), so every replica ends in
//! the same state whatever runs its Ready cycles cut; only the stored commit index differs
//! (a run stores its last entry's index in every block's transaction, which commits
//! atomically, so it is exact). What decides whether an entry may join a run (the machine
//! has not stopped, the entry is past the applied index, the vault exists, is not
//! quarantined and does not include the entry yet, a group is within
//! `group_commit_batches_max`) reads only state that a write to that same vault cannot
//! change, so judging a whole run before applying it is judging each entry just before it.
//! Everything else goes through [`ShardMachine::apply_command`] one by one, in order.

use inferadb_protocols::VaultId;
use inferadb_vault::{WriteBatch, WriteError, WriteOutcome};

use super::{group_item, write_refusal, ShardMachine};
use crate::answer::ShardAnswer;
use crate::command::ShardCommand;
use crate::error::ShardError;
use crate::refusal::Refusal;

/// How one entry of a run answers.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// A `Write`: one batch, answered `Written` or refused.
    Single,
    /// A `WriteGroup` of this many batches, answered `WroteGroup`.
    Group(usize),
}

/// Consecutive write entries for one vault, not applied yet.
struct Run {
    vault: VaultId,
    /// Each entry's index and shape, in order.
    entries: Vec<(u64, Shape)>,
    /// Every entry's batches, in order, each with its entry's time.
    batches: Vec<(WriteBatch, u64)>,
}

/// A write entry that may join a run.
struct Mergeable {
    vault: VaultId,
    shape: Shape,
    batches: Vec<(WriteBatch, u64)>,
}

impl ShardMachine {
    /// Applies consecutive entries (`(index, data)`, in log order) and returns one answer
    /// per entry, each exactly what [`Self::apply_command`] would have answered; runs of
    /// writes to one vault share one storage transaction (see the module docs), up to
    /// [`super::ShardOptions::merge_batches_max`] batches.
    pub fn apply_entries(&mut self, entries: &[(u64, &[u8])]) -> Vec<ShardAnswer> {
        let mut answers = Vec::with_capacity(entries.len());
        let mut run: Option<Run> = None;
        for &(index, data) in entries {
            let Some(entry) = self.mergeable(index, data) else {
                self.flush(run.take(), &mut answers);
                answers.push(self.apply_command(index, data));
                continue;
            };
            if run
                .as_ref()
                .is_some_and(|run| !run.admits(&entry, self.merge_batches_max))
            {
                self.flush(run.take(), &mut answers);
            }
            run.get_or_insert_with(|| Run::new(entry.vault))
                .push(index, entry);
        }
        self.flush(run, &mut answers);
        answers
    }

    /// The entry as a write that may join a run, if it is one.
    fn mergeable(&self, index: u64, data: &[u8]) -> Option<Mergeable> {
        if self.fatal.get().is_some() || index <= self.applied_index {
            return None;
        }
        let entry = match ShardCommand::decode(data).ok()? {
            ShardCommand::Write {
                vault,
                batch,
                now_ms,
            } => Mergeable {
                vault,
                shape: Shape::Single,
                batches: vec![(batch, now_ms)],
            },
            ShardCommand::WriteGroup {
                vault,
                batches,
                now_ms,
            } => Mergeable {
                vault,
                shape: Shape::Group(batches.len()),
                batches: batches.into_iter().map(|batch| (batch, now_ms)).collect(),
            },
            _ => return None,
        };
        let member = self.vaults.get(&entry.vault)?;
        let group_max = member.vault.options().limits.group_commit_batches_max;
        let fits = match entry.shape {
            Shape::Single => true,
            Shape::Group(len) => len <= group_max,
        };
        let eligible = fits
            && !self.quarantined.contains_key(&entry.vault)
            && member.vault.commit_index() < index;
        eligible.then_some(entry)
    }

    /// Applies a run (if any) and appends its answers.
    fn flush(&mut self, run: Option<Run>, answers: &mut Vec<ShardAnswer>) {
        if let Some(run) = run {
            answers.extend(self.apply_run(run));
        }
    }

    /// Applies a run's batches in one vault transaction, then records its last index in one
    /// catalog transaction; a failure of this replica's own stops the machine and every
    /// entry of the run answers `Fatal`.
    fn apply_run(&mut self, run: Run) -> Vec<ShardAnswer> {
        let count = run.entries.len();
        let Some(last) = run.entries.last().map(|(index, _)| *index) else {
            return Vec::new();
        };
        if let Some(message) = self.fatal.get() {
            let fatal = ShardAnswer::Fatal {
                message: message.clone(),
            };
            return vec![fatal; count];
        }
        let results = match self.vaults.get_mut(&run.vault) {
            Some(member) => {
                member.vault.set_commit_index(last);
                member.vault.write_group_timed(run.batches)
            }
            None => {
                let error = ShardError::Corrupt {
                    what: format!("invariant: vault {} of a run is open", run.vault),
                };
                return vec![self.stop(error); count];
            }
        };
        self.touched.insert(run.vault);
        let answers = split(results, &run.entries)
            .and_then(|answers| self.record_applied(last).map(|()| answers));
        match answers {
            Ok(answers) => {
                self.applied_index = last;
                answers
            }
            Err(error) => vec![self.stop(error); count],
        }
    }
}

impl Run {
    fn new(vault: VaultId) -> Self {
        Run {
            vault,
            entries: Vec::new(),
            batches: Vec::new(),
        }
    }

    /// Whether `entry` may join: same vault, and the run stays within `batches_max`
    /// (a run always takes its first entry, whatever its size).
    fn admits(&self, entry: &Mergeable, batches_max: usize) -> bool {
        entry.vault == self.vault && self.batches.len() + entry.batches.len() <= batches_max
    }

    fn push(&mut self, index: u64, entry: Mergeable) {
        self.entries.push((index, entry.shape));
        self.batches.extend(entry.batches);
    }
}

/// Cuts a run's results back into one answer per entry, in order.
fn split(
    results: Vec<Result<WriteOutcome, WriteError>>,
    entries: &[(u64, Shape)],
) -> Result<Vec<ShardAnswer>, ShardError> {
    let expected: usize = entries
        .iter()
        .map(|(_, shape)| match shape {
            Shape::Single => 1,
            Shape::Group(len) => *len,
        })
        .sum();
    assert_eq!(
        results.len(),
        expected,
        "invariant: a group has one result per batch"
    );
    let mut results = results.into_iter();
    let mut answers = Vec::with_capacity(entries.len());
    for (_, shape) in entries {
        let answer = match shape {
            Shape::Single => single(results.next())?,
            Shape::Group(len) => ShardAnswer::WroteGroup {
                results: results
                    .by_ref()
                    .take(*len)
                    .map(group_item)
                    .collect::<Result<_, _>>()?,
            },
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// A `Write`'s answer from its one result.
fn single(result: Option<Result<WriteOutcome, WriteError>>) -> Result<ShardAnswer, ShardError> {
    match result {
        Some(Ok(outcome)) => Ok(ShardAnswer::Written {
            revision: outcome.revision,
            inserted: outcome.inserted as u64,
            removed: outcome.removed as u64,
        }),
        Some(Err(error)) => write_refusal(&error).map(Refusal::answer),
        None => Err(ShardError::Corrupt {
            what: "invariant: a group has one result per batch".into(),
        }),
    }
}
