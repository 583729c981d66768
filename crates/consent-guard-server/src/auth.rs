//! Bearer tokens and their roles: who may decide, record, read and administer.
//!
//! The check runs on the headers, in the extractor [`Authorized`], before any body is
//! read: a client without a token is answered `401` at once, whatever body it
//! announces, and the server holds none of it.
//!
//! Tokens are kept as SHA-256 digests and a presented token is compared with every
//! configured digest in constant time (`subtle`), so neither the bytes nor the length
//! of a configured token leak through the time an answer takes.

use std::fmt;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::ApiError;
use super::{App, ServerError};

/// What a token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Decide: `POST /v1/check`, `POST /v1/check/batch`.
    Check,
    /// Write consent events: `POST /v1/events`.
    Record,
    /// Read histories, exports and metrics: `GET /v1/subjects/{id}/history`,
    /// `GET /v1/subjects/{id}/export`, `GET /metrics`.
    Read,
    /// Everything, and `POST /v1/policy/reload`.
    Admin,
}

impl Role {
    /// The role's name in a tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Check => "check",
            Role::Record => "record",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    fn parse(name: &str) -> Option<Role> {
        match name {
            "check" => Some(Role::Check),
            "record" => Some(Role::Record),
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether a token of this role may do what `needed` allows (`None`: any role).
    fn allows(self, needed: Option<Role>) -> bool {
        self == Role::Admin || needed.is_none_or(|needed| self == needed)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bearer tokens a server accepts, each with its roles.
///
/// The text form, in a file or the environment, is one `ROLE TOKEN` (or `ROLE:TOKEN`)
/// per line or comma-separated; `#` starts a comment line. A token may appear on
/// several lines to get several roles.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], Role)>,
}

impl fmt::Debug for Tokens {
    /// Prints the roles only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|(_, role)| role)).finish()
    }
}

/// Why a request was not let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No token, or one not configured: 401.
    Unauthenticated,
    /// A known token without the role: 403.
    Forbidden,
}

impl Tokens {
    /// No token: a server with none refuses to start.
    pub fn new() -> Tokens {
        Tokens::default()
    }

    /// Adds a token with a role.
    #[must_use]
    pub fn with(mut self, role: Role, token: &str) -> Tokens {
        self.entries.push((digest(token.as_bytes()), role));
        self
    }

    /// Parses the text form (see [`Tokens`]).
    ///
    /// # Errors
    ///
    /// On an unknown role, a missing or too short token (under 16 bytes), naming the
    /// line; the token itself is never part of the message.
    pub fn parse(text: &str, origin: &str) -> Result<Tokens, ServerError> {
        let mut tokens = Tokens::new();
        for (number, item) in text.split(['\n', ',']).enumerate() {
            let item = item.trim();
            if item.is_empty() || item.starts_with('#') {
                continue;
            }
            let bad = |message: &str| ServerError::Config(format!("{origin}: entry {}: {message}", number + 1));
            let (role, token) = item.split_once([' ', '\t', ':']).ok_or_else(|| bad("expected `ROLE TOKEN`"))?;
            let role =
                Role::parse(role.trim()).ok_or_else(|| bad("unknown role (expected check, record, read or admin)"))?;
            let token = token.trim();
            if token.len() < 16 {
                return Err(bad("a token must have at least 16 characters"));
            }
            tokens = tokens.with(role, token);
        }
        Ok(tokens)
    }

    /// Reads the text form from a file.
    ///
    /// # Errors
    ///
    /// When the file cannot be read, or as [`Tokens::parse`].
    pub fn from_file(path: &Path) -> Result<Tokens, ServerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::Config(format!("{}: cannot read: {e}", path.display())))?;
        Tokens::parse(&text, &path.display().to_string())
    }

    /// Reads the text form from an environment variable; `None` when it is unset.
    ///
    /// # Errors
    ///
    /// As [`Tokens::parse`].
    pub fn from_env(var: &str) -> Result<Option<Tokens>, ServerError> {
        match std::env::var(var) {
            Ok(text) => Tokens::parse(&text, var).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Adds every token of `other`.
    #[must_use]
    pub fn merge(mut self, other: Tokens) -> Tokens {
        self.entries.extend(other.entries);
        self
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks an `Authorization` header value against the role needed (`None`: any).
    /// The scheme is case-insensitive (RFC 9110, section 11.1): `BEARER x` is `Bearer x`.
    pub(crate) fn authorize(&self, header: Option<&[u8]>, needed: Option<Role>) -> Result<(), Refusal> {
        let presented = header
            .and_then(|value| {
                let space = value.iter().position(|b| *b == b' ')?;
                let (scheme, token) = value.split_at(space);
                scheme.eq_ignore_ascii_case(b"bearer").then_some(token)
            })
            .ok_or(Refusal::Unauthenticated)?;
        let presented = digest(presented.trim_ascii());
        // Every entry is compared, so the time does not tell which matched.
        let mut known = subtle::Choice::from(0);
        let mut allowed = subtle::Choice::from(0);
        for (token, role) in &self.entries {
            let same = token.ct_eq(&presented);
            known |= same;
            allowed |= same & subtle::Choice::from(u8::from(role.allows(needed)));
        }
        match (bool::from(known), bool::from(allowed)) {
            (_, true) => Ok(()),
            (true, false) => Err(Refusal::Forbidden),
            (false, _) => Err(Refusal::Unauthenticated),
        }
    }
}

/// The role an endpoint needs, as a type: the parameter of [`Authorized`].
pub(crate) trait Needs: Send + Sync + 'static {
    /// `None`: any configured token.
    const ROLE: Option<Role>;
}

/// Any configured token.
pub(crate) struct AnyRole;
/// [`Role::Check`].
pub(crate) struct CheckRole;
/// [`Role::Record`].
pub(crate) struct RecordRole;
/// [`Role::Read`].
pub(crate) struct ReadRole;
/// [`Role::Admin`].
pub(crate) struct AdminRole;

impl Needs for AnyRole {
    const ROLE: Option<Role> = None;
}
impl Needs for CheckRole {
    const ROLE: Option<Role> = Some(Role::Check);
}
impl Needs for RecordRole {
    const ROLE: Option<Role> = Some(Role::Record);
}
impl Needs for ReadRole {
    const ROLE: Option<Role> = Some(Role::Read);
}
impl Needs for AdminRole {
    const ROLE: Option<Role> = Some(Role::Admin);
}

/// A request whose bearer token has the role `N` needs. Extracted from the headers
/// only, before the body: a handler takes it before its body extractor.
pub(crate) struct Authorized<N>(PhantomData<N>);

impl<N: Needs> FromRequestParts<Arc<App>> for Authorized<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).map(axum::http::HeaderValue::as_bytes);
        match app.tokens.authorize(header, N::ROLE) {
            Ok(()) => Ok(Authorized(PhantomData)),
            Err(Refusal::Unauthenticated) => Err(ApiError::Unauthenticated),
            Err(Refusal::Forbidden) => Err(ApiError::Forbidden(N::ROLE)),
        }
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_refusals() {
        let tokens = Tokens::parse("# service\ncheck aaaaaaaaaaaaaaaa\nadmin:bbbbbbbbbbbbbbbb", "t")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(tokens.authorize(Some(b"Bearer aaaaaaaaaaaaaaaa"), Some(Role::Check)), Ok(()));
        assert_eq!(tokens.authorize(Some(b"Bearer aaaaaaaaaaaaaaaa"), Some(Role::Record)), Err(Refusal::Forbidden));
        assert_eq!(tokens.authorize(Some(b"Bearer bbbbbbbbbbbbbbbb"), Some(Role::Record)), Ok(()));
        assert_eq!(
            tokens.authorize(Some(b"Bearer cccccccccccccccc"), Some(Role::Check)),
            Err(Refusal::Unauthenticated)
        );
        assert_eq!(tokens.authorize(None, Some(Role::Check)), Err(Refusal::Unauthenticated));
        assert_eq!(tokens.authorize(Some(b"Basic xyz"), Some(Role::Check)), Err(Refusal::Unauthenticated));
        // The scheme is case-insensitive; the token is not.
        assert_eq!(tokens.authorize(Some(b"BEARER aaaaaaaaaaaaaaaa"), Some(Role::Check)), Ok(()));
        assert_eq!(tokens.authorize(Some(b"bEaReR aaaaaaaaaaaaaaaa"), Some(Role::Check)), Ok(()));
        assert_eq!(
            tokens.authorize(Some(b"Bearer AAAAAAAAAAAAAAAA"), Some(Role::Check)),
            Err(Refusal::Unauthenticated)
        );
        assert_eq!(tokens.authorize(Some(b"Bearer"), Some(Role::Check)), Err(Refusal::Unauthenticated));
        assert_eq!(
            tokens.authorize(Some(b"Bearerx aaaaaaaaaaaaaaaa"), Some(Role::Check)),
            Err(Refusal::Unauthenticated)
        );
        assert!(Tokens::parse("writer aaaaaaaaaaaaaaaa", "t").is_err());
        assert!(Tokens::parse("check short", "t").is_err());
    }
}
