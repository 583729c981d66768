//! Connection-level limits, below HTTP: a cap on open connections, a deadline for a
//! connection's first byte, an idle timeout, and HTTP/2 refused unless asked for.
//!
//! hyper's header timeout starts only once hyper-util has sniffed the protocol, and the
//! sniff waits for bytes without a deadline: a client that connected and sent nothing
//! (or one byte) was held for ever, and enough of them exhausted the file descriptors
//! (issue 30). The limits here hold for every connection, plaintext or TLS, HTTP/1 or
//! HTTP/2, before hyper sees a byte.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits every accepted connection is held to.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// One permit per open connection.
    pub(crate) permits: Arc<Semaphore>,
    /// From accept to the first byte (and to the end of a TLS handshake).
    pub(crate) first_byte: Duration,
    /// With no byte read or written.
    pub(crate) idle: Duration,
    pub(crate) http2: bool,
}

/// An acceptor that applies [`Limits`] around `inner` (TCP_NODELAY, TLS).
#[derive(Clone, Debug)]
pub(crate) struct LimitAcceptor<A> {
    pub(crate) inner: A,
    pub(crate) limits: Limits,
}

type Accepted<S, T> = Pin<Box<dyn Future<Output = io::Result<(Limited<S>, T)>> + Send>>;

impl<A, S> Accept<TcpStream, S> for LimitAcceptor<A>
where
    A: Accept<TcpStream, S> + Clone + Send + Sync + 'static,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
    S: Send + 'static,
{
    type Stream = Limited<A::Stream>;
    type Service = A::Service;
    type Future = Accepted<A::Stream, A::Service>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        // Over the cap the connection is closed at once: its file descriptor is freed
        // now rather than held until a timeout.
        let Ok(permit) = Arc::clone(&self.limits.permits).try_acquire_owned() else {
            drop(stream);
            metrics::counter!("consent_guard_http_connections_refused_total").increment(1);
            return Box::pin(std::future::ready(Err(io::Error::other("connection cap reached"))));
        };
        let (inner, limits) = (self.inner.clone(), self.limits.clone());
        Box::pin(async move {
            let (stream, service) = tokio::time::timeout(limits.first_byte, inner.accept(stream, service))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
            Ok((Limited::new(stream, permit, &limits), service))
        })
    }
}

/// The HTTP/2 connection preface begins so; no HTTP/1 method does.
const H2_PREFACE: &[u8; 4] = b"PRI ";

/// A connection under [`Limits`]; its permit is released when it is dropped (closed).
pub(crate) struct Limited<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
    /// Fires at the first-byte deadline, then `idle` after the last byte either way.
    deadline: Pin<Box<tokio::time::Sleep>>,
    idle: Duration,
    /// The first bytes read, up to four, while they may still be the HTTP/2 preface.
    head: Vec<u8>,
    /// Whether the first bytes were looked at (or need not be).
    head_checked: bool,
}

impl<S> Limited<S> {
    fn new(inner: S, permit: OwnedSemaphorePermit, limits: &Limits) -> Limited<S> {
        Limited {
            inner,
            _permit: permit,
            deadline: Box::pin(tokio::time::sleep(limits.first_byte)),
            idle: limits.idle,
            head: Vec::with_capacity(H2_PREFACE.len()),
            head_checked: limits.http2,
        }
    }

    fn touch(&mut self) {
        let next = tokio::time::Instant::now() + self.idle;
        self.deadline.as_mut().reset(next);
    }

    /// Whether the deadline passed: the caller then fails the I/O, and hyper closes the
    /// connection.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }

    fn check_head(&mut self, read: &[u8]) -> io::Result<()> {
        if self.head_checked {
            return Ok(());
        }
        let wanted = H2_PREFACE.len().saturating_sub(self.head.len());
        self.head.extend(read.iter().take(wanted));
        if !H2_PREFACE.starts_with(&self.head) {
            self.head_checked = true;
            return Ok(());
        }
        if self.head.len() == H2_PREFACE.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "HTTP/2 is off on this listener"));
        }
        Ok(())
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle past its timeout")
}

impl<S: AsyncRead + Unpin> AsyncRead for Limited<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().get(before..).unwrap_or_default();
                if !read.is_empty() {
                    let read = read.to_vec();
                    self.check_head(&read)?;
                    self.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Limited<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    self.touch();
                }
                Poll::Ready(Ok(written))
            }
            // A client that stops reading holds the connection no longer than one that
            // stops writing.
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    self.touch();
                }
                Poll::Ready(Ok(written))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn limited(http2: bool) -> Limited<tokio::io::DuplexStream> {
        let (a, _b) = tokio::io::duplex(64);
        let limits = Limits {
            permits: Arc::new(Semaphore::new(1)),
            first_byte: Duration::from_secs(5),
            idle: Duration::from_secs(5),
            http2,
        };
        let permit = Arc::clone(&limits.permits).try_acquire_owned().unwrap();
        Limited::new(a, permit, &limits)
    }

    #[tokio::test]
    async fn the_http2_preface_is_refused_unless_asked_for() {
        let mut off = limited(false);
        off.check_head(b"PR").unwrap();
        assert!(off.check_head(b"I * HTTP/2.0").is_err());
        let mut http1 = limited(false);
        http1.check_head(b"P").unwrap();
        http1.check_head(b"OST /v1/check").unwrap();
        http1.check_head(b"PRI ").unwrap();
        let mut on = limited(true);
        on.check_head(b"PRI * HTTP/2.0").unwrap();
    }
}
