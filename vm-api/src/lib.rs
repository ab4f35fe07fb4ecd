//! The VM API as a library: configuration, shared state and the router, so tests can drive
//! `app()` with `oneshot` and no socket.

pub mod config;
pub mod routes;

pub use config::Config;
pub use routes::{app, AppState};
