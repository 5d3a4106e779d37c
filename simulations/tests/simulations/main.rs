//! The simulator's one integration-test binary: the smoke set of seeds and the CLI.

mod cli;
mod smoke;
