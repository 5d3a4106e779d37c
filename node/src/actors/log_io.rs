//! [`MeteredLogIo`]: the raft log's file I/O with its latency in `/metrics`.
//!
//! The durable log and the consensus core are pure of clocks; the shell measures the I/O it
//! hands them. Appends (`inferadb_raft_log_append_seconds`) and fsyncs
//! (`inferadb_raft_log_fsync_seconds`) are histograms labelled with the raft group, so an
//! operator sees whether a slow commit is the disk or the rest of the Ready cycle.

use inferadb_raft::io::{FileLogIo, LogIo, LogIoError};

/// A [`LogIo`] that times `append` and `sync` of an inner one.
pub struct MeteredLogIo {
    inner: FileLogIo,
    group: String,
}

impl MeteredLogIo {
    /// Times the I/O of `inner`, the log of raft group `group`.
    pub fn new(inner: FileLogIo, group: u64) -> MeteredLogIo {
        MeteredLogIo {
            inner,
            group: group.to_string(),
        }
    }

    /// Runs `operation` and records its duration in histogram `name`.
    #[allow(clippy::disallowed_methods)] // a latency metric of the shell, never a decision
    fn timed<T>(&self, name: &'static str, operation: impl FnOnce() -> T) -> T {
        let started = std::time::Instant::now();
        let result = operation();
        metrics::histogram!(name, "group" => self.group.clone())
            .record(started.elapsed().as_secs_f64());
        result
    }
}

impl LogIo for MeteredLogIo {
    fn list(&self) -> Result<Vec<String>, LogIoError> {
        self.inner.list()
    }

    fn create(&self, name: &str) -> Result<(), LogIoError> {
        self.inner.create(name)
    }

    fn len(&self, name: &str) -> Result<u64, LogIoError> {
        self.inner.len(name)
    }

    fn append(&self, name: &str, bytes: &[u8]) -> Result<(), LogIoError> {
        self.timed("inferadb_raft_log_append_seconds", || {
            self.inner.append(name, bytes)
        })
    }

    fn read(&self, name: &str, offset: u64, len: usize) -> Result<Vec<u8>, LogIoError> {
        self.inner.read(name, offset, len)
    }

    fn sync(&self, name: &str) -> Result<(), LogIoError> {
        self.timed("inferadb_raft_log_fsync_seconds", || self.inner.sync(name))
    }

    fn truncate(&self, name: &str, len: u64) -> Result<(), LogIoError> {
        self.inner.truncate(name, len)
    }

    fn delete(&self, name: &str) -> Result<(), LogIoError> {
        self.inner.delete(name)
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), LogIoError> {
        self.inner.rename(from, to)
    }

    fn sync_dir(&self) -> Result<(), LogIoError> {
        self.timed("inferadb_raft_log_fsync_seconds", || self.inner.sync_dir())
    }

    fn read_all(&self, name: &str) -> Result<Vec<u8>, LogIoError> {
        self.inner.read_all(name)
    }
}
