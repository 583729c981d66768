//! The tower layer: privacy signals and the subject into request extensions.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{HeaderMap, Request};
use tower_layer::Layer;
use tower_service::Service;

use super::{signals_from_headers, Subject};
use crate::request::Signals;

/// A tower [`Layer`] that puts the request's [`Signals`] (always) and its [`Subject`]
/// (when the function finds one) into the request's extensions, where
/// [`RequireConsent`](super::RequireConsent) and handlers read them.
///
/// The subject function sees the request's head: read a session cookie, an
/// authenticated user an earlier layer put into the extensions, or a header set by
/// your authenticating proxy ([`header_subject`]). An empty id is no subject.
///
/// ```
/// use consent_guard::web::{header_subject, ConsentLayer};
///
/// let layer = ConsentLayer::new(header_subject("x-user-id"));
/// // or: ConsentLayer::new(|parts: &http::request::Parts| parts.extensions.get::<MyUser>().map(|u| u.id.clone()))
/// # let _ = layer;
/// ```
pub struct ConsentLayer<F> {
    subject: Arc<F>,
    signals: fn(&HeaderMap) -> Signals,
}

impl<F> ConsentLayer<F>
where
    F: Fn(&Parts) -> Option<String> + Send + Sync + 'static,
{
    /// A layer that finds the subject with `subject` and reads the signals with
    /// [`signals_from_headers`].
    pub fn new(subject: F) -> ConsentLayer<F> {
        ConsentLayer { subject: Arc::new(subject), signals: signals_from_headers }
    }

    /// Reads the signals with another function: to honour a signal the crate does not
    /// read yet, or a header your CDN renames.
    #[must_use]
    pub fn signals(mut self, read: fn(&HeaderMap) -> Signals) -> Self {
        self.signals = read;
        self
    }
}

impl<F> Clone for ConsentLayer<F> {
    fn clone(&self) -> Self {
        ConsentLayer { subject: Arc::clone(&self.subject), signals: self.signals }
    }
}

impl<F> std::fmt::Debug for ConsentLayer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentLayer").finish_non_exhaustive()
    }
}

impl<S, F> Layer<S> for ConsentLayer<F> {
    type Service = ConsentService<S, F>;

    fn layer(&self, inner: S) -> ConsentService<S, F> {
        ConsentService { inner, subject: Arc::clone(&self.subject), signals: self.signals }
    }
}

/// The service [`ConsentLayer`] wraps around yours.
pub struct ConsentService<S, F> {
    inner: S,
    subject: Arc<F>,
    signals: fn(&HeaderMap) -> Signals,
}

impl<S: Clone, F> Clone for ConsentService<S, F> {
    fn clone(&self) -> Self {
        ConsentService { inner: self.inner.clone(), subject: Arc::clone(&self.subject), signals: self.signals }
    }
}

impl<S, F> std::fmt::Debug for ConsentService<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentService").finish_non_exhaustive()
    }
}

impl<S, F, B> Service<Request<B>> for ConsentService<S, F>
where
    S: Service<Request<B>>,
    F: Fn(&Parts) -> Option<String>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> S::Future {
        let (mut parts, body) = request.into_parts();
        let signals = (self.signals)(&parts.headers);
        // A subject put there before this layer (by a client-controlled path) must not
        // stand in for the one the function finds.
        let subject = (self.subject)(&parts).and_then(Subject::new);
        parts.extensions.insert(signals);
        match subject {
            Some(subject) => parts.extensions.insert(subject),
            None => parts.extensions.remove::<Subject>(),
        };
        self.inner.call(Request::from_parts(parts, body))
    }
}

/// A subject function reading the header `name` (set by an authenticating proxy: a
/// header the client itself can set is no proof of identity).
pub fn header_subject(name: &'static str) -> impl Fn(&Parts) -> Option<String> + Clone + Send + Sync + 'static {
    move |parts: &Parts| parts.headers.get(name)?.to_str().ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::future::{ready, Ready};

    /// Answers with what the layer put into the extensions.
    #[derive(Clone)]
    struct Echo;

    impl Service<Request<()>> for Echo {
        type Response = (Option<Signals>, Option<String>);
        type Error = Infallible;
        type Future = Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<()>) -> Self::Future {
            let extensions = request.extensions();
            let subject = extensions.get::<Subject>().map(|s| s.as_str().to_owned());
            ready(Ok((extensions.get::<Signals>().copied(), subject)))
        }
    }

    fn answer(request: Request<()>) -> (Option<Signals>, Option<String>) {
        let mut service = ConsentLayer::new(header_subject("x-user")).layer(Echo);
        let future = service.call(request);
        match future.into_inner() {
            Ok(answer) => answer,
            Err(never) => match never {},
        }
    }

    #[test]
    fn the_layer_fills_the_extensions() {
        let request = Request::builder().header("sec-gpc", "1").header("x-user", "u1").body(());
        let request = request.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(answer(request), (Some(Signals::NONE.with_gpc(true)), Some("u1".to_owned())));

        let mut request = Request::new(());
        request.extensions_mut().insert(Subject("forged".to_owned()));
        assert_eq!(answer(request), (Some(Signals::NONE), None));

        let request = Request::builder().header("x-user", "").body(()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(answer(request).1, None);
    }
}
