//! Inside a web service: a tower layer that reads the browser's privacy signals and the
//! subject of each request into its extensions (feature `tower`), and, with feature
//! `axum`, an extractor that checks an access before the handler runs and HTTP
//! responses for decisions and errors.
//!
//! | piece | feature | what it does |
//! |---|---|---|
//! | [`ConsentLayer`] | `tower` | `Sec-GPC` and `DNT` into [`Signals`], the subject (from a function of yours) into [`Subject`] |
//! | [`RequireConsent`] | `axum` | checks a [`Requirement`] (a purpose and categories, as a type) before the handler; a denial answers 403 `application/problem+json` |
//! | `IntoResponse` | `axum` | for [`crate::Decision`] and the library's errors, with the status mapping below |
//!
//! The check is in memory: the extractor needs no `spawn_blocking`. Recording consent
//! writes the store, which may block (the embedded redb store syncs the file): see
//! `docs/web-services.md`.
//!
//! # Status mapping
//!
//! | answer | status |
//! |---|---|
//! | an allow | 200, the decision's JSON |
//! | a denial by the policy (every code but the two below) | 403 |
//! | `consent_state_unavailable`, `audit_unavailable` (fail closed) | 503 |
//! | no subject on the request | 401 |
//! | the `ConsentLayer` missing in front of the extractor | 500 |
//! | [`EventError`](crate::error::EventError): an event the policy refuses | 422 |
//! | [`EventError::Store`](crate::error::EventError::Store), [`StoreError`](crate::error::StoreError) | 503 |
//! | [`RequestError`](crate::error::RequestError) | 422 |
//! | [`NameError`](crate::error::NameError): a malformed purpose, category or region name | 422 |
//! | [`AuditError`](crate::error::AuditError) | 503 |
//! | [`PolicyError`](crate::error::PolicyError) | 422 |
//! | [`ReloadError`](crate::reload::ReloadError): the new policy cannot take over | 409 (503 when the store failed) |
//!
//! Every error and denial body is an RFC 9457 problem (`application/problem+json`):
//! `type` (`urn:consent-guard:reason:<code>` or `urn:consent-guard:error:<code>`),
//! `title`, `status`, `detail`, `code`, and for a decision `clause`, `policy`,
//! `policy_version`, `purpose`. Store failures do not put the store's message in the
//! body (it may name hosts or files): the detail is fixed.

mod layer;

#[cfg(feature = "axum")]
mod extract;
#[cfg(feature = "axum")]
mod response;

use std::fmt;

use http::{HeaderMap, HeaderName};

pub use layer::{header_subject, ConsentLayer, ConsentService};

#[cfg(feature = "axum")]
pub use extract::{ConsentRejection, RequireConsent, Requirement};

use crate::request::Signals;

/// The `Sec-GPC` request header of Global Privacy Control (`http` has no constant).
pub const SEC_GPC: HeaderName = HeaderName::from_static("sec-gpc");

/// The subject of a request, as the [`ConsentLayer`]'s function found it. Its `Debug`
/// prints a redaction: it is personal data.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Subject(String);

impl Subject {
    /// A subject id; empty ids are not subjects.
    pub fn new(id: impl Into<String>) -> Option<Subject> {
        let id = id.into();
        (!id.is_empty()).then_some(Subject(id))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subject(<redacted>)")
    }
}

/// Reads the privacy signals of a request's headers: `Sec-GPC: 1` and `DNT: 1`. A
/// header sent more than once counts if any of its values says `1` (in doubt, the
/// user opted out). TCF and GPP strings will be read here when [`Signals`] carries them.
pub fn signals_from_headers(headers: &HeaderMap) -> Signals {
    let on = |name: &HeaderName| headers.get_all(name).iter().any(|value| value.as_bytes().trim_ascii() == b"1");
    Signals::default().with_gpc(on(&SEC_GPC)).with_dnt(on(&http::header::DNT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_read_from_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(signals_from_headers(&headers), Signals::NONE);
        headers.insert(SEC_GPC, http::HeaderValue::from_static("1"));
        headers.append(http::header::DNT, http::HeaderValue::from_static("0"));
        assert_eq!(signals_from_headers(&headers), Signals::NONE.with_gpc(true));
        headers.append(http::header::DNT, http::HeaderValue::from_static(" 1"));
        headers.insert(SEC_GPC, http::HeaderValue::from_static("yes"));
        assert_eq!(signals_from_headers(&headers), Signals::NONE.with_dnt(true));
    }

    #[test]
    fn subjects_are_redacted() {
        let subject = Subject::new("alice").unwrap_or_else(|| panic!("a subject"));
        assert_eq!(format!("{subject:?}"), "Subject(<redacted>)");
        assert!(Subject::new("").is_none());
    }
}
