//! Shows one unit of work as a tool call on the project's socket: started, live output,
//! finished with its duration. The agent's tool calls, verification's checks, installs and the
//! terminal's commands all use it, so clients render every step the same way.

use crate::room_state::Room;
use open_replit_core::protocol::ServerEvent;
use serde_json::Value;

pub struct Step<'r> {
    room: &'r Room,
    turn_id: u64,
    call_id: String,
    started_ms: f64,
}

impl<'r> Step<'r> {
    /// Announces the step (`tool_call_started`) and starts its clock.
    pub fn start(
        room: &'r Room,
        turn_id: u64,
        call_id: String,
        name: impl Into<String>,
        arguments: Value,
    ) -> Step<'r> {
        room.emit(ServerEvent::ToolCallStarted {
            turn_id,
            call_id: call_id.clone(),
            name: name.into(),
            arguments,
        });
        Step {
            room,
            turn_id,
            call_id,
            started_ms: js_sys::Date::now(),
        }
    }

    pub fn turn_id(&self) -> u64 {
        self.turn_id
    }

    /// A piece of live output (`stream` is `stdout` or `stderr`).
    pub fn output(&self, stream: &str, data: &str) {
        self.room.emit(ServerEvent::ToolOutput {
            turn_id: self.turn_id,
            call_id: self.call_id.clone(),
            stream: stream.to_string(),
            data: data.to_string(),
        });
    }

    /// Progress a person should see while the step runs.
    pub fn status(&self, message: impl Into<String>) {
        self.room.emit(ServerEvent::Status {
            turn_id: self.turn_id,
            message: message.into(),
        });
    }

    /// Ends the step (`tool_call_finished`) with what it came to.
    pub fn finish(self, ok: bool, result: impl Into<String>) {
        self.room.emit(ServerEvent::ToolCallFinished {
            turn_id: self.turn_id,
            call_id: self.call_id,
            ok,
            result: result.into(),
            duration_ms: (js_sys::Date::now() - self.started_ms) as u64,
        });
    }
}
