//! [`Clock`]: the one way cores and shells learn the time, so tests and the simulator can
//! replace it.

/// A source of wall-clock time in Unix milliseconds.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}
