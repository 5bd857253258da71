//! Test databases: see `kiban_store::testing`.

pub use kiban_store::testing::*;
