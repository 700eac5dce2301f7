//! One error type for the whole crate, shaped like tokio-postgres's: a boxed inner value with
//! a private kind, the origin it concerns, a message, and the error that caused it.
//!
//! The kind is private so that the internal taxonomy can grow without breaking callers:
//! callers decide with the predicates (`is_busy`, `is_source`) and the HTTP layer with
//! `status()`, never by reading the message. The cause is kept as a value, so that
//! `std::error::Error::source` walks back to what the driver or parser reported.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// A request conflicts with stored state (a target table already in use).
    Conflict,
    /// A run of the config is already in progress.
    Busy,
    /// The config was changed or deleted while a run was under way.
    Superseded,
    PayloadTooLarge,
    /// The origin database failed or could not be reached.
    Source,
    /// The replica's own SQLite failed: a bug or a platform limit, never the user's input.
    Internal,
}

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

pub struct Error(Box<Inner>);

struct Inner {
    kind: Kind,
    /// The origin in words (`postgres via url_secret PG_URL (host:5432/db)`), for source errors.
    origin: Option<String>,
    /// The full text users read: `source <origin>: <detail>` for source errors.
    message: String,
    /// Where the detail starts in `message` (after the origin prefix).
    detail_at: usize,
    cause: Option<Cause>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner { kind, origin: None, message: message.into(), detail_at: 0, cause: None }))
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
    /// A run of the same config is already in progress (409).
    pub fn busy(m: impl Into<String>) -> Self {
        Self::new(Kind::Busy, m)
    }
    /// The config changed under a run; the run stops without writing.
    pub fn superseded(m: impl Into<String>) -> Self {
        Self::new(Kind::Superseded, m)
    }
    pub fn too_large(m: impl Into<String>) -> Self {
        Self::new(Kind::PayloadTooLarge, m)
    }
    /// The origin failed. `origin` names it (e.g. `postgres via url_secret PG_URL`), never
    /// its credentials.
    pub fn at_origin(origin: &str, detail: impl fmt::Display) -> Self {
        let prefix = format!("source {origin}: ");
        Error(Box::new(Inner {
            kind: Kind::Source,
            origin: Some(origin.to_string()),
            detail_at: prefix.len(),
            message: format!("{prefix}{detail}"),
            cause: None,
        }))
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(Kind::Internal, m)
    }

    /// Keeps `cause` as this error's `source()`.
    pub fn with_cause(mut self, cause: impl Into<Cause>) -> Self {
        self.0.cause = Some(cause.into());
        self
    }

    pub fn status(&self) -> u16 {
        match self.0.kind {
            Kind::BadRequest => 400,
            Kind::Unauthorized => 401,
            Kind::Forbidden => 403,
            Kind::NotFound => 404,
            Kind::MethodNotAllowed => 405,
            Kind::Conflict | Kind::Busy | Kind::Superseded => 409,
            Kind::PayloadTooLarge => 413,
            Kind::Source => 502,
            Kind::Internal => 500,
        }
    }
    pub fn is_source(&self) -> bool {
        self.0.kind == Kind::Source
    }
    /// A run of the config was already in progress, so this one did not start.
    pub fn is_busy(&self) -> bool {
        self.0.kind == Kind::Busy
    }
    /// The whole message, as API answers and run records show it.
    pub fn message(&self) -> &str {
        &self.0.message
    }
    /// The message without the `source <origin>: ` prefix.
    pub fn detail(&self) -> &str {
        &self.0.message[self.0.detail_at..]
    }
    pub fn origin(&self) -> Option<&str> {
        self.0.origin.as_deref()
    }
    /// Prefixes the message with context, keeping the kind, origin and cause.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        let inner = &mut *self.0;
        inner.message = format!("{what}: {}", inner.message);
        // The origin prefix now sits after the context: the detail is what follows it.
        if let Some(origin) = &inner.origin {
            let prefix = format!("source {origin}: ");
            inner.detail_at = inner.message.find(&prefix).map_or(0, |i| i + prefix.len());
        }
        self
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.0.kind).field("message", &self.0.message);
        if let Some(c) = &self.0.cause {
            d.field("cause", c);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.cause.as_ref().map(|c| &**c as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_errors_keep_detail_origin_and_cause() {
        let cause = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = Error::at_origin("postgres via url_secret PG_URL", "connection lost").with_cause(cause);
        assert_eq!(e.message(), "source postgres via url_secret PG_URL: connection lost");
        assert_eq!(e.detail(), "connection lost");
        assert_eq!(e.origin(), Some("postgres via url_secret PG_URL"));
        assert_eq!(e.status(), 502);
        assert!(e.is_source() && !e.is_busy());
        let c = std::error::Error::source(&e).expect("cause kept");
        assert_eq!(c.to_string(), "reset by peer");
        let e = e.context("run 3");
        assert_eq!(e.message(), "run 3: source postgres via url_secret PG_URL: connection lost");
        assert_eq!(e.detail(), "connection lost");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn kinds_decide_statuses() {
        assert!(Error::busy("x").is_busy());
        assert_eq!(Error::busy("x").status(), 409);
        assert_eq!(Error::superseded("x").status(), 409);
        assert!(!Error::conflict("x").is_busy());
        assert_eq!(Error::bad_request("x").detail(), "x");
        assert_eq!(Error::internal("x").origin(), None);
    }
}
