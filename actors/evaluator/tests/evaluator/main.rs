//! The evaluator's integration tests, in one binary: the conformance corpus, the reference
//! dataset, property tests against a naive least-fixpoint model, and per-operator and
//! per-error scenarios.

// Test helpers unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod conformance;
mod dataset;
mod properties;
mod review;
mod scenarios;
