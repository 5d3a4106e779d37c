//! raft-rs logs through `slog`; the rest of InferaDB logs through `tracing`. [`TracingDrain`]
//! forwards every raft-rs record to `tracing` (target `raft`, with the Raft group's name as a
//! field), so one subscriber sees everything and filters raft-rs with the usual directives
//! (`RUST_LOG=raft=debug`).

use std::fmt::{self, Write as _};

use slog::{Drain, Key, Level, OwnedKVList, Record, Serializer, KV};

/// A `slog::Drain` that re-emits raft-rs records as `tracing` events.
///
/// Levels map one to one (critical and error → `ERROR`, warning → `WARN`, info → `INFO`,
/// debug → `DEBUG`, trace → `TRACE`). slog's key-values (the record's and the logger's,
/// e.g. `raft_id`) are flattened into the message as ` key=value` pairs, because `tracing`
/// fields must be known at compile time.
#[derive(Debug, Clone)]
pub struct TracingDrain {
    group: String,
}

impl TracingDrain {
    /// A drain tagging every event with `group` (the Raft group's name, e.g. `shard/3`).
    pub fn new(group: &str) -> Self {
        Self {
            group: group.to_owned(),
        }
    }
}

/// Whether `tracing` would record an event at `level` for target `raft`: checked first so a
/// disabled level costs no formatting (raft-rs logs at debug on every election timer reset).
fn enabled(level: Level) -> bool {
    match level {
        Level::Critical | Level::Error => tracing::enabled!(target: "raft", tracing::Level::ERROR),
        Level::Warning => tracing::enabled!(target: "raft", tracing::Level::WARN),
        Level::Info => tracing::enabled!(target: "raft", tracing::Level::INFO),
        Level::Debug => tracing::enabled!(target: "raft", tracing::Level::DEBUG),
        Level::Trace => tracing::enabled!(target: "raft", tracing::Level::TRACE),
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        if !enabled(record.level()) {
            return Ok(());
        }
        let mut text = Flatten(String::new());
        let _ = write!(text.0, "{}", record.msg());
        // A failing serializer only loses key-values, never the record itself.
        let _ = record.kv().serialize(record, &mut text);
        let _ = values.serialize(record, &mut text);
        let (group, text) = (self.group.as_str(), text.0);
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "raft", group, "{text}");
            }
            Level::Warning => tracing::warn!(target: "raft", group, "{text}"),
            Level::Info => tracing::info!(target: "raft", group, "{text}"),
            Level::Debug => tracing::debug!(target: "raft", group, "{text}"),
            Level::Trace => tracing::trace!(target: "raft", group, "{text}"),
        }
        Ok(())
    }
}

/// Appends each slog key-value as ` key=value`.
struct Flatten(String);

impl Serializer for Flatten {
    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}

/// The `slog::Logger` to hand to raft-rs for the Raft group `group`: every record goes to
/// `tracing` through [`TracingDrain`].
pub fn raft_logger(group: &str) -> slog::Logger {
    slog::Logger::root(TracingDrain::new(group).fuse(), slog::o!())
}
