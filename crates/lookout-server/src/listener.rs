//! The HTTP/1 accept loop of both listeners (UI and API, OTLP), with the limits `axum::serve`
//! does not offer: a cap on open connections, a header-read timeout and an idle timeout.
//!
//! - **Connection cap**: one budget of connections shared by both listeners. Past it a new
//!   connection gets a minimal `503` with `Retry-After` written on the socket and is closed, so
//!   clients see why, and the process keeps file descriptors for `/healthz`, storage and checks.
//! - **Header-read timeout** (hyper's): a request's headers must arrive within it, counted from
//!   when the connection starts waiting for them; a slow-header client is cut off, and so is a
//!   keep-alive connection idle for that long.
//! - **Idle timeout**: no byte read or written for this long while the server waits on the
//!   client (a stalled upload, a response the client does not read) closes the connection. Time
//!   a handler spends working does not count: only waiting on the client does.
//!
//! Shutdown stops accepting, lets in-flight requests finish, and closes idle connections at once.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// Connection limits of the listeners (the `limits` section of the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Open connections across both listeners; past it new ones get 503.
    pub max_connections: usize,
    /// Time allowed for a request's headers (and for the next request on a kept-alive one).
    pub header_read_timeout: Duration,
    /// Time without a byte in either direction while waiting on the client.
    pub idle_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            max_connections: 4096,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Connections refused past the cap being answered at once; beyond, they are just closed.
const REFUSALS_AT_ONCE: usize = 64;

/// The answer past the connection cap.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 55\r\n\r\n{\"error\":\"too many connections; retry in a second\"}\r\n";

/// The connection budget both listeners draw from.
#[derive(Clone)]
pub struct ConnectionBudget {
    open: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
}

impl ConnectionBudget {
    /// A budget of `max` open connections.
    pub fn new(max: usize) -> Self {
        ConnectionBudget {
            open: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))),
            refusing: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
        }
    }
}

/// The most a connection's read buffer holds (request line and headers must fit).
const MAX_READ_BUFFER: usize = 64 * 1024;

/// Serves `app` on `listener` until `stop` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    name: &'static str,
    limits: ListenerLimits,
    budget: ConnectionBudget,
    stop: impl Future<Output = ()>,
) -> io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's read buffer grows to ~400 KiB by default; no route needs more than a few KiB of
    // headers, and max_connections of them at that size would be gigabytes. Past 64 KiB of
    // headers (checked between reads, so a buffer ends under twice that) the client gets 431.
    // Bodies stream through the buffer, so this does not cap them.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_READ_BUFFER)
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors (or a connection reset before accept): the socket
                    // stays readable, so pause instead of spinning.
                    tracing::warn!(listener = name, error = %e, "Accept failed.");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = &mut stop => break,
                    }
                }
            },
            () = &mut stop => break,
        };
        let Ok(permit) = budget.open.clone().try_acquire_owned() else {
            metrics::counter!("lookout_http_connections_refused_total", "listener" => name)
                .increment(1);
            refuse(stream, &budget);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let io = TokioIo::new(IdleTimeout::new(
            stream,
            limits.idle_timeout,
            activity.clone(),
        ));
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let busy = Busy::start(activity.clone());
            let mut req = req.map(|b| {
                Body::new(WatchedBody {
                    inner: b,
                    activity: activity.clone(),
                })
            });
            // The peer address, as `axum::serve`'s connect info gives it: the login throttle
            // counts failures by client.
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo::<std::net::SocketAddr>(peer));
            let app = app.clone();
            async move {
                let res = app.oneshot(req).await;
                drop(busy);
                res
            }
        });
        let conn = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            let _permit = permit;
            metrics::gauge!("lookout_http_connections_open", "listener" => name).increment(1.0);
            if let Err(e) = conn.await {
                tracing::debug!(listener = name, error = %e, "Connection closed with an error.");
            }
            metrics::gauge!("lookout_http_connections_open", "listener" => name).decrement(1.0);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Answers a connection past the cap with 503 and closes it; the request is read (briefly) after
/// the answer so closing does not reset the connection before the client has read it.
fn refuse(mut stream: TcpStream, budget: &ConnectionBudget) {
    let Ok(permit) = budget.refusing.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            stream.write_all(BUSY).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            let mut left: usize = 64 * 1024;
            while left > 0 {
                let n = stream.read(&mut sink).await?;
                if n == 0 {
                    break;
                }
                left = left.saturating_sub(n);
            }
            Ok::<_, io::Error>(())
        })
        .await;
    });
}

/// What a connection is doing, as far as the idle timeout cares.
#[derive(Default)]
struct Activity {
    /// Requests whose handler is running.
    handlers: AtomicUsize,
    /// A handler is waiting for request-body bytes.
    body_wait: AtomicBool,
}

impl Activity {
    /// Whether the connection is waiting on the client (so idle time counts).
    fn waiting_on_client(&self) -> bool {
        self.handlers.load(Ordering::Relaxed) == 0 || self.body_wait.load(Ordering::Relaxed)
    }
}

/// A running handler; the idle clock stops while one runs (unless it waits for the body).
struct Busy(Arc<Activity>);

impl Busy {
    fn start(a: Arc<Activity>) -> Self {
        a.handlers.fetch_add(1, Ordering::Relaxed);
        Busy(a)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.handlers.fetch_sub(1, Ordering::Relaxed);
        self.0.body_wait.store(false, Ordering::Relaxed);
    }
}

/// A request body that records when its handler waits for the client to send more.
struct WatchedBody {
    inner: Incoming,
    activity: Arc<Activity>,
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        self.activity
            .body_wait
            .store(polled.is_pending(), Ordering::Relaxed);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that fails with `TimedOut` once nothing has moved for `timeout` while the connection
/// waits on the client.
struct IdleTimeout {
    inner: TcpStream,
    timeout: Duration,
    last: Instant,
    sleep: Pin<Box<Sleep>>,
    activity: Arc<Activity>,
}

impl IdleTimeout {
    fn new(inner: TcpStream, timeout: Duration, activity: Arc<Activity>) -> Self {
        let now = Instant::now();
        IdleTimeout {
            inner,
            timeout,
            last: now,
            sleep: Box::pin(tokio::time::sleep_until(now + timeout)),
            activity,
        }
    }

    /// Called when the socket would block: an error once the idle time is used up.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.activity.waiting_on_client() {
            self.last = Instant::now();
            return false;
        }
        loop {
            // The sleep is moved only when it fires, not on every byte.
            let deadline = self.last + self.timeout;
            if self.sleep.deadline() < deadline {
                self.sleep.as_mut().reset(deadline);
            }
            match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) if Instant::now() >= self.last + self.timeout => return true,
                Poll::Ready(()) => continue,
                Poll::Pending => return false,
            }
        }
    }
}

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle too long")
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    self.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
