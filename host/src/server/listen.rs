//! Accepting connections with limits a hostile client cannot stretch.
//!
//! `axum::serve` has no header deadline and hyper's default read buffer
//! takes ~400 KB of headers. Here each HTTP/1 connection gets a deadline
//! for its request headers (a client that trickles them is dropped), a
//! header buffer of [`MAX_HEADER_BYTES`] (more: `431`) and at most
//! [`MAX_HEADERS`] header fields. Body deadlines and limits are the
//! webhooks' (`webhooks.rs`), applied after the credential check.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::time::Duration;

/// The read buffer, and so the largest request head accepted.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Header fields per request.
pub const MAX_HEADERS: usize = 64;
/// How long open connections may take to finish once shutdown starts.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, then lets the
/// open connections finish their requests (for up to [`CLOSE_WITHIN`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, a reset before accept:
                        // wait a moment rather than spin.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(app.clone());
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection closed: {e}");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(CLOSE_WITHIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {CLOSE_WITHIN:?}; closing them");
    }
    Ok(())
}
