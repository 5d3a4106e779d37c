//! The election crate's integration tests: keepers against the real lease table on
//! simulated time (property test), and the actor shell over tokio's paused clock.

mod actor;
mod sim;
