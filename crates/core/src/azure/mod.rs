//! Azure Blob Storage: connection-string parsing, SharedKey signing and URL building.

pub mod conn;
pub mod rest;
pub mod sign;
pub mod url;

pub use conn::{AzureAuth, AzureConfig, ConnError};
pub use sign::{authorization_header, string_to_sign, SignableRequest};

/// The REST API version every request sends in `x-ms-version`.
///
/// Azurite 3.37 accepts it in strict mode, and real Azure has served it since 2025.
pub const API_VERSION: &str = "2025-01-05";
