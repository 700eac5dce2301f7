//! One error type for the whole crate. The kind is private so that callers decide by
//! `status()`, not by matching on variants that would freeze the internal taxonomy.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    /// The origin database failed or could not be reached.
    Source,
    /// The replica's own SQLite failed: a bug or a platform limit, never the user's input.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: Kind,
    message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into() }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(Kind::BadRequest, m)
    }
    pub fn unauthorized(m: impl Into<String>) -> Self {
        Self::new(Kind::Unauthorized, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(Kind::Forbidden, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(Kind::NotFound, m)
    }
    pub fn method_not_allowed(m: impl Into<String>) -> Self {
        Self::new(Kind::MethodNotAllowed, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(Kind::Conflict, m)
    }
    pub fn too_large(m: impl Into<String>) -> Self {
        Self::new(Kind::PayloadTooLarge, m)
    }
    /// `source` names the origin (e.g. `postgres via url_secret PG_URL`), never its credentials.
    pub fn source(source: &str, m: impl fmt::Display) -> Self {
        Self::new(Kind::Source, format!("source {source}: {m}"))
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(Kind::Internal, m)
    }

    pub fn status(&self) -> u16 {
        match self.kind {
            Kind::BadRequest => 400,
            Kind::Unauthorized => 401,
            Kind::Forbidden => 403,
            Kind::NotFound => 404,
            Kind::MethodNotAllowed => 405,
            Kind::Conflict => 409,
            Kind::PayloadTooLarge => 413,
            Kind::Source => 502,
            Kind::Internal => 500,
        }
    }
    pub fn is_source(&self) -> bool {
        self.kind == Kind::Source
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Prefix the message with context while keeping the kind.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error { kind: self.kind, message: format!("{what}: {}", self.message) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
