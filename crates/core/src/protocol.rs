//! The project WebSocket protocol: one pair of serde enums tagged by `type`.
//!
//! Client → server messages are [`ClientMsg`]; server → client events are [`ServerEvent`],
//! wrapped in an [`Envelope`] that carries the project's monotonically increasing `seq`
//! (0 for transient events such as `pong` that are not written to the event log).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Liveness probe; answered with a transient `pong` carrying the same nonce.
    Ping { nonce: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent {
    /// First event on every connection: where the log stands, so a client can resume later.
    Hello {
        project_id: String,
        last_seq: u64,
    },
    /// The log no longer holds events after the client's `since`: refetch state, then go on
    /// from `last_seq`.
    Reset {
        oldest_seq: u64,
        last_seq: u64,
    },
    /// A new checkpoint exists (agent turn, save, restore), with what it changed.
    CheckpointCreated {
        checkpoint: crate::store::project::CheckpointInfo,
        diff: crate::manifest::Diff,
    },
    Pong {
        nonce: u64,
    },
    /// A message the server could not act on; the connection stays open.
    Error {
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub seq: u64,
    #[serde(flatten)]
    pub event: ServerEvent,
}

/// Parses a client frame, turning serde's message into one a person can act on.
pub fn parse_client_msg(text: &str) -> Result<ClientMsg, String> {
    serde_json::from_str(text).map_err(|e| format!("invalid client message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_flat_and_tagged() {
        let e = Envelope {
            seq: 7,
            event: ServerEvent::Hello {
                project_id: "p".into(),
                last_seq: 6,
            },
        };
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(
            s,
            r#"{"seq":7,"type":"hello","project_id":"p","last_seq":6}"#
        );
        assert_eq!(serde_json::from_str::<Envelope>(&s).unwrap(), e);
    }

    #[test]
    fn bad_client_messages_are_explained() {
        assert_eq!(
            parse_client_msg(r#"{"type":"ping","nonce":3}"#),
            Ok(ClientMsg::Ping { nonce: 3 })
        );
        assert!(parse_client_msg("{")
            .unwrap_err()
            .starts_with("invalid client message"));
        assert!(parse_client_msg(r#"{"type":"nope"}"#)
            .unwrap_err()
            .contains("unknown variant"));
    }
}
