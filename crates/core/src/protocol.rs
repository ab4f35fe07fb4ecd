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
    /// A person's chat message; starts a turn, or is queued behind the running one.
    UserMessage {
        text: String,
        /// A model id for this message only (e.g. `anthropic/claude-sonnet-4.5`).
        #[serde(default)]
        model: Option<String>,
    },
    /// Cancels the running turn at its next await point, keeping the partial answer.
    Stop,
    /// Starts a new conversation: later turns send the model nothing of the earlier ones.
    /// The files and the transcript people see stay. Refused while a turn runs.
    NewConversation,
}

/// Why a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnEnd {
    /// The model answered without calling more tools.
    Done,
    /// A person pressed stop.
    Stopped,
    /// The per-turn step cap was reached.
    StepCap,
    /// The model repeated the same call.
    Stuck,
    /// The output-token limit cut the reply.
    Length,
    /// The provider's content filter stopped the reply.
    ContentFilter,
    /// The model could not be reached or answered with an error.
    Error,
}

/// Tokens and cost of a turn (OpenRouter reports `cost` in USD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Of `prompt_tokens`, how many the provider read from its prompt cache.
    #[serde(default)]
    pub cached_tokens: u64,
    #[serde(default)]
    pub cost: Option<f64>,
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
    /// A turn began for this message (sent to everyone, so every tab shows the message).
    TurnStarted {
        turn_id: u64,
        text: String,
        model: String,
    },
    /// The message arrived during a turn and waits; `position` 1 is next.
    Queued {
        text: String,
        position: usize,
    },
    /// A piece of the assistant's answer.
    AssistantDelta {
        turn_id: u64,
        text: String,
    },
    /// The agent called a tool (`arguments` is the parsed JSON when it parses).
    ToolCallStarted {
        turn_id: u64,
        call_id: String,
        name: String,
        arguments: serde_json::Value,
    },
    /// Live output of a running command.
    ToolOutput {
        turn_id: u64,
        call_id: String,
        stream: String,
        data: String,
    },
    /// The tool finished; `result` is what the model sees (capped).
    ToolCallFinished {
        turn_id: u64,
        call_id: String,
        ok: bool,
        result: String,
        duration_ms: u64,
    },
    /// The agent wrote (`sha256` set) or deleted (`sha256` null) a file during a turn.
    FileChanged {
        turn_id: u64,
        path: String,
        sha256: Option<String>,
    },
    /// The verify loop is about to watch the preview page for runtime errors: clients showing
    /// the preview reload it now.
    PreviewReload {
        turn_id: u64,
    },
    /// Progress a person should see: retries, fallbacks, verification.
    Status {
        turn_id: u64,
        message: String,
    },
    /// The turn is over; `checkpoint` is set when it changed files.
    TurnFinished {
        turn_id: u64,
        end: TurnEnd,
        message: Option<String>,
        usage: Usage,
        checkpoint: Option<u64>,
    },
    /// Something a command changed on the VM outside an agent turn could not simply be saved:
    /// files changed on both sides (storage keeps its version; the VM's is saved beside it),
    /// files that are never saved (symlinks, too large, past the file limit), or a save that
    /// failed and will be retried after the next command. `checkpoint` is the one the other
    /// changes went into, if any.
    WorkspaceNotice {
        checkpoint: Option<u64>,
        conflicts: Vec<crate::store::merge::FileConflict>,
        skipped: Vec<crate::vm_api::SkippedFile>,
        error: Option<String>,
        /// Files a sync removed from the VM's working copy that were never saved (storage put
        /// a file where they were, or a directory where the file was): listed so the person
        /// knows; `displaced_more` counts those past the list.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        displaced: Vec<String>,
        #[serde(default, skip_serializing_if = "is_zero")]
        displaced_more: u64,
    },
    /// A new conversation starts after turn `after_turn` (0: before the first): the model
    /// will see nothing of the turns up to it. Clients draw a divider.
    ConversationReset {
        after_turn: u64,
    },
    /// The project was deleted by its owner (sent on every open socket just before it is
    /// closed with code 4404; never logged, as the log is gone with it).
    ProjectDeleted,
    /// The earlier turns were summarized to fit the model's window (only what the model is
    /// sent changes; the transcript stays).
    Compacted {
        turn_id: u64,
        /// Estimated tokens of the earlier turns before and after.
        tokens_before: u64,
        tokens_after: u64,
    },
    /// A deployment was created or changed status (publish, rollback, unpublish).
    DeployUpdated {
        deployment: crate::deploy::record::Deployment,
    },
    /// A publish reached a step (`uploading` carries "12 new files of 40").
    DeployProgress {
        deployment: String,
        step: crate::deploy::record::DeployStep,
        message: String,
    },
    /// Output of a publish's install or build command (streamed, like `tool_output`).
    DeployLog {
        deployment: String,
        stream: String,
        data: String,
    },
    /// An external deploy (Modal, Netlify) changed: the whole record. Its output streams as
    /// `deploy_log` with the record's id (`x-N`) as `deployment`.
    ExternalDeploy {
        deploy: crate::deploy::external::ExternalDeploy,
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

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    fn agent_messages_round_trip() {
        assert_eq!(
            parse_client_msg(r#"{"type":"user_message","text":"hi"}"#),
            Ok(ClientMsg::UserMessage {
                text: "hi".into(),
                model: None
            })
        );
        assert_eq!(parse_client_msg(r#"{"type":"stop"}"#), Ok(ClientMsg::Stop));
        assert_eq!(
            parse_client_msg(r#"{"type":"new_conversation"}"#),
            Ok(ClientMsg::NewConversation)
        );
        assert_eq!(
            serde_json::to_string(&ServerEvent::ProjectDeleted).unwrap(),
            r#"{"type":"project_deleted"}"#
        );
        assert_eq!(
            serde_json::to_string(&ServerEvent::ConversationReset { after_turn: 4 }).unwrap(),
            r#"{"type":"conversation_reset","after_turn":4}"#
        );
        assert_eq!(
            serde_json::from_str::<Usage>(r#"{"prompt_tokens":5,"completion_tokens":1}"#)
                .unwrap()
                .cached_tokens,
            0
        );
        let e = Envelope {
            seq: 3,
            event: ServerEvent::TurnFinished {
                turn_id: 1,
                end: TurnEnd::StepCap,
                message: None,
                usage: Usage::default(),
                checkpoint: Some(2),
            },
        };
        let s = serde_json::to_string(&e).unwrap();
        assert!(
            s.contains(r#""type":"turn_finished""#) && s.contains(r#""end":"step_cap""#),
            "{s}"
        );
        assert_eq!(serde_json::from_str::<Envelope>(&s).unwrap(), e);
    }

    #[test]
    fn publish_events_are_tagged_and_flat() {
        let e = ServerEvent::DeployProgress {
            deployment: "d-2".into(),
            step: crate::deploy::record::DeployStep::Uploading,
            message: "3 new files of 12".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"deploy_progress","deployment":"d-2","step":"uploading","message":"3 new files of 12"}"#
        );
        let s = r#"{"seq":9,"type":"deploy_updated","deployment":{"id":"d-2","checkpoint":4,
            "status":"live","created_ms":1,"by":"local","files":3,"bytes":10,"total":3,
            "uploaded":1,"backend":true}}"#;
        let env: Envelope = serde_json::from_str(s).unwrap();
        match env.event {
            ServerEvent::DeployUpdated { deployment } => {
                assert_eq!(deployment.status, crate::deploy::record::DeployStatus::Live);
                assert_eq!(deployment.site, None);
            }
            other => panic!("{other:?}"),
        }
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
