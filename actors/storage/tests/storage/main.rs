//! Integration tests of the storage engine: the public API, a model-based property test,
//! the crash-consistency suite, corruption detection and space reuse.

mod api;
mod common;
mod corruption;
mod crash;
mod model;
mod review;
mod space;
