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

    /// What an anonymous caller sees: green or red per dependency, never a detail (details name
    /// internal hosts, URLs and containers).
    pub fn anonymous(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": self.ok,
            "azure_blob": { "ok": self.azure_blob.ok },
            "vm_api": { "ok": self.vm_api.ok },
            "llm": { "configured": self.llm.configured },
        })
    }
}

#[cfg(test)]
mod anonymous_tests {
    use super::*;

    #[test]
    fn anonymous_report_has_no_details() {
        let r = HealthReport::new(
            Check {
                ok: true,
                detail: "reachable at http://10.0.0.5:10000".into(),
            },
            Check {
                ok: false,
                detail: "VM API at http://10.0.0.6:8000 is unreachable".into(),
            },
            crate::llm_config::LlmSettings::default().status(),
        );
        let v = r.anonymous();
        let text = v.to_string();
        assert!(!text.contains("10.0.0"), "{text}");
        assert_eq!(v["ok"], false);
        assert_eq!(v["azure_blob"]["ok"], true);
        assert_eq!(v["llm"]["configured"], false);
    }
}
