//! The shape of `/health` answers, shared by the Worker and the end-to-end tests.

use serde::{Deserialize, Serialize};

/// One dependency's state: a green or red light with a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

/// `GET /health` on the Worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// True when every check is green.
    pub ok: bool,
    pub azure_blob: Check,
    pub vm_api: Check,
    pub llm: crate::llm_config::LlmStatus,
}

impl HealthReport {
    pub fn new(azure_blob: Check, vm_api: Check, llm: crate::llm_config::LlmStatus) -> Self {
        HealthReport {
            ok: azure_blob.ok && vm_api.ok,
            azure_blob,
            vm_api,
            llm,
        }
    }
}
