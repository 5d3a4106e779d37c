//! The vault's test binary: units (keys, ledger arithmetic, tokens), a property test against
//! a reference model, scenarios (validation, atomicity, preconditions, orphans, expiry,
//! tampering, the catalog), purging expired relationships and the reference dataset.

// Helpers outside #[test] functions unwrap too: a test's failure is its panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod dataset;
mod group;
mod model;
mod purge;
mod review;
mod scenarios;
mod units;
