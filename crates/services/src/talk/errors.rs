//! The errors the client protocol answers with: the spec's codes and
//! messages (`{"type":"error","error":{"code","message","details"?}}`), plus
//! the ones Nextcloud returns and we pass through unchanged.

use serde_json::value::RawValue;

/// An error answered to a client, as a value (spec §1.12).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// A message other than `hello` before the session exists.
    #[error("Expected Hello request.")]
    HelloExpected,
    /// `hello.version` is not `1.0` (hello v2 is not built yet).
    #[error("The hello version is not supported.")]
    InvalidHelloVersion,
    /// `hello.auth.type` is not one we accept.
    #[error("The client type is not supported.")]
    InvalidClientType,
    /// `hello.auth.url` matches no configured backend.
    #[error("The backend URL is not supported.")]
    InvalidBackend,
    /// The backend answered something that is not an authentication.
    #[error("The user could not be authenticated.")]
    AuthFailed,
    /// The resume id names no live session.
    #[error("The session to resume does not exist.")]
    NoSuchSession,
    /// The backend did not confirm the room join.
    #[error("Could not join the room.")]
    RoomJoinFailed,
    /// The session is already in that room (details name it).
    #[error("Already joined this room.")]
    AlreadyJoined,
    /// The message needs a room and the session has none.
    #[error("No room joined yet.")]
    NotInRoom,
    /// Malformed or invalid message.
    #[error("Invalid data format.")]
    InvalidFormat,
    /// A hello v2 token was refused: `invalid_token`, `token_not_valid_yet`
    /// or `token_expired` (see [`super::jwt::TokenError::code`]).
    #[error("{}", .0.message())]
    Token(super::jwt::TokenError),
    /// An internal failure (such as an unreachable backend), with its text.
    #[error("{0}")]
    Internal(String),
    /// An error Nextcloud returned (`invalid_ticket`, `no_such_room`, …), passed through.
    #[error("{message}")]
    Backend {
        /// Nextcloud's code.
        code: String,
        /// Nextcloud's message.
        message: String,
    },
}

impl ClientError {
    /// The wire code: the label, except that a passed-through backend
    /// error keeps Nextcloud's own code.
    pub fn code(&self) -> &str {
        match self {
            ClientError::Backend { code, .. } => code,
            other => other.label(),
        }
    }

    /// The metric label: the code for our own errors, `backend` for passed-through ones
    /// (their codes come from outside and are not a fixed set).
    pub fn label(&self) -> &'static str {
        match self {
            ClientError::HelloExpected => "hello_expected",
            ClientError::InvalidHelloVersion => "invalid_hello_version",
            ClientError::InvalidClientType => "invalid_client_type",
            ClientError::InvalidBackend => "invalid_backend",
            ClientError::AuthFailed => "auth_failed",
            ClientError::NoSuchSession => "no_such_session",
            ClientError::RoomJoinFailed => "room_join_failed",
            ClientError::AlreadyJoined => "already_joined",
            ClientError::NotInRoom => "not_in_room",
            ClientError::InvalidFormat => "invalid_format",
            ClientError::Token(e) => e.code(),
            ClientError::Internal(_) => "internal_error",
            ClientError::Backend { .. } => "backend",
        }
    }

    /// The `error` object, with optional raw `details`.
    pub fn body(&self, details: Option<&RawValue>) -> serde_json::Value {
        let mut v = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        if let Some(d) = details
            && let Ok(d) = serde_json::from_str::<serde_json::Value>(d.get())
        {
            v["details"] = d;
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages_are_the_specs() {
        let table: &[(ClientError, &str, &str)] = &[
            (
                ClientError::HelloExpected,
                "hello_expected",
                "Expected Hello request.",
            ),
            (
                ClientError::InvalidHelloVersion,
                "invalid_hello_version",
                "The hello version is not supported.",
            ),
            (
                ClientError::InvalidClientType,
                "invalid_client_type",
                "The client type is not supported.",
            ),
            (
                ClientError::InvalidBackend,
                "invalid_backend",
                "The backend URL is not supported.",
            ),
            (
                ClientError::AuthFailed,
                "auth_failed",
                "The user could not be authenticated.",
            ),
            (
                ClientError::NoSuchSession,
                "no_such_session",
                "The session to resume does not exist.",
            ),
            (
                ClientError::RoomJoinFailed,
                "room_join_failed",
                "Could not join the room.",
            ),
            (
                ClientError::AlreadyJoined,
                "already_joined",
                "Already joined this room.",
            ),
            (ClientError::NotInRoom, "not_in_room", "No room joined yet."),
            (
                ClientError::InvalidFormat,
                "invalid_format",
                "Invalid data format.",
            ),
        ];
        for (e, code, message) in table {
            assert_eq!(e.code(), *code);
            assert_eq!(e.to_string(), *message);
            assert_eq!(e.label(), *code);
        }
        let passed = ClientError::Backend {
            code: "no_such_room".into(),
            message: "The user is not invited to this room.".into(),
        };
        assert_eq!(passed.code(), "no_such_room");
        assert_eq!(passed.label(), "backend");
    }
}
