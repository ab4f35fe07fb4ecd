//! Building a deployment from a checkpoint: wire types and pure rules (see `deploy/mod.rs`).
