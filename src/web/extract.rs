//! The axum extractor: an access checked before the handler runs.

use std::future::{ready, Future};
use std::marker::PhantomData;
use std::sync::Arc;

use axum_core::extract::{FromRef, FromRequestParts};
use http::request::Parts;

use super::Subject;
use crate::category::DataCategory;
use crate::decision::OwnedDecision;
use crate::purpose::Purpose;
use crate::reload::GuardHandle;
use crate::request::{AccessRequest, Signals};

/// What a handler needs permission for: a purpose and data categories, declared once as
/// a type. Override [`Requirement::request`] to set an action, a recipient, a region or
/// a de-identification level.
///
/// A purpose or category the policy declares itself (not built in) is not a constant:
/// give its built-in parent as the constant and build the request with the declared
/// name (parsed once, in a `static` `LazyLock`) in an overridden `request`; the
/// extractor checks only what `request` returns.
///
/// ```
/// use consent_guard::web::Requirement;
/// use consent_guard::{DataCategory, Purpose};
///
/// /// Personalised ads from the browsing log.
/// struct PersonalAds;
///
/// impl Requirement for PersonalAds {
///     const PURPOSE: Purpose = Purpose::ADVERTISING_PERSONALIZED;
///     const CATEGORIES: &'static [DataCategory] = &[DataCategory::BEHAVIOR_LOG];
/// }
/// ```
pub trait Requirement: Send + Sync + 'static {
    /// Why the handler touches the data.
    const PURPOSE: Purpose;
    /// What data it touches (at least one category).
    const CATEGORIES: &'static [DataCategory];

    /// The access request checked for `subject`, with the request's signals.
    fn request(subject: &str, signals: Signals) -> AccessRequest<'_> {
        AccessRequest::new(subject, Self::PURPOSE, Self::CATEGORIES).signals(signals)
    }
}

/// An axum extractor that checks `R` for the request's subject before the handler runs,
/// on the running guard of the [`GuardHandle`] in the router's state (any state `S`
/// with `Arc<GuardHandle>: FromRef<S>`; `Arc<GuardHandle>` itself is one). The check is
/// audited as [`crate::Guard::check`] audits it.
///
/// The handler runs only on an allow. Otherwise the request is rejected
/// ([`ConsentRejection`]): 403 with a problem+json body naming the code and clause,
/// 503 when the guard failed closed, 401 without a subject. The [`super::ConsentLayer`]
/// must run in front of it (500 otherwise).
///
/// ```
/// use consent_guard::web::{RequireConsent, Requirement};
/// use consent_guard::{DataCategory, Purpose};
///
/// struct Security;
/// impl Requirement for Security {
///     const PURPOSE: Purpose = Purpose::SECURITY;
///     const CATEGORIES: &'static [DataCategory] = &[DataCategory::DEVICE_INFO];
/// }
///
/// async fn risk_score(consent: RequireConsent<Security>) -> String {
///     format!("scored under clause {:?}", consent.decision().clause())
/// }
/// ```
pub struct RequireConsent<R> {
    subject: Subject,
    decision: OwnedDecision,
    requirement: PhantomData<fn() -> R>,
}

impl<R> RequireConsent<R> {
    /// The subject the access was granted for.
    pub fn subject(&self) -> &str {
        self.subject.as_str()
    }

    /// The allow, with its clause and basis.
    pub fn decision(&self) -> &OwnedDecision {
        &self.decision
    }
}

impl<R> std::fmt::Debug for RequireConsent<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireConsent").field("decision", &self.decision).finish_non_exhaustive()
    }
}

/// Why [`RequireConsent`] did not let a request through. Each answers as the module's
/// status table says, with a problem+json body.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConsentRejection {
    /// The guard denied the access.
    Denied(OwnedDecision),
    /// The subject function found no subject on the request.
    NoSubject,
    /// No [`super::ConsentLayer`] ran in front of the extractor: a wiring mistake,
    /// denied rather than guessed around.
    LayerMissing,
}

impl<S, R> FromRequestParts<S> for RequireConsent<R>
where
    S: Send + Sync,
    R: Requirement,
    Arc<GuardHandle>: FromRef<S>,
{
    type Rejection = ConsentRejection;

    fn from_request_parts(parts: &mut Parts, state: &S) -> impl Future<Output = Result<Self, Self::Rejection>> + Send {
        // Nothing here waits: the check is in memory.
        ready(check::<S, R>(parts, state))
    }
}

fn check<S, R>(parts: &Parts, state: &S) -> Result<RequireConsent<R>, ConsentRejection>
where
    R: Requirement,
    Arc<GuardHandle>: FromRef<S>,
{
    let signals = *parts.extensions.get::<Signals>().ok_or(ConsentRejection::LayerMissing)?;
    let subject = parts.extensions.get::<Subject>().ok_or(ConsentRejection::NoSubject)?;
    let handle = Arc::<GuardHandle>::from_ref(state);
    let guard = handle.load_guard();
    let request = R::request(subject.as_str(), signals);
    let decision = guard.check(&request).into_owned();
    if decision.allowed() {
        Ok(RequireConsent { subject: subject.clone(), decision, requirement: PhantomData })
    } else {
        Err(ConsentRejection::Denied(decision))
    }
}

impl<S> FromRequestParts<S> for Subject
where
    S: Send + Sync,
{
    type Rejection = ConsentRejection;

    fn from_request_parts(parts: &mut Parts, _: &S) -> impl Future<Output = Result<Self, Self::Rejection>> + Send {
        let found = match (parts.extensions.get::<Signals>(), parts.extensions.get::<Subject>()) {
            (_, Some(subject)) => Ok(subject.clone()),
            (None, None) => Err(ConsentRejection::LayerMissing),
            (Some(_), None) => Err(ConsentRejection::NoSubject),
        };
        ready(found)
    }
}

impl<S> FromRequestParts<S> for Signals
where
    S: Send + Sync,
{
    type Rejection = ConsentRejection;

    fn from_request_parts(parts: &mut Parts, _: &S) -> impl Future<Output = Result<Self, Self::Rejection>> + Send {
        ready(parts.extensions.get::<Signals>().copied().ok_or(ConsentRejection::LayerMissing))
    }
}
