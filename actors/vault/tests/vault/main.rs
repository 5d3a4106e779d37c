//! The vault's test binary: units (keys, ledger arithmetic, tokens), a property test against
//! a reference model, scenarios (validation, atomicity, preconditions, orphans, expiry,
//! tampering, the catalog) and the reference dataset.

mod common;
mod dataset;
mod model;
mod scenarios;
mod units;
