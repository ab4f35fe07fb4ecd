//! The coding agent minus the I/O: its tools, the `edit_file` algorithm, and the turn state
//! machine the Worker's Durable Object drives.

pub mod context;
pub mod edit;
pub mod history;
pub mod prompt;
pub mod tools;
pub mod turn;
pub mod verify;
