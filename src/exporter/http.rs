//! The endpoint itself: HTTP/1.1 with hyper, `GET /metrics` and little else,
//! on a thread and runtime of its own. Nothing of a scrape (accepting,
//! parsing the request, collecting, encoding, writing megabytes to the
//! socket) runs on the workers that serve clients; scrapes take turns, as
//! the runtime has one thread and a scrape does not yield.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::server::ServerState;

/// The endpoint's own state, shared by its connections.
struct Endpoint {
    state: Arc<ServerState>,
    max_tenants: usize,
    scrapes: AtomicU64,
    /// The last scrape's duration (microseconds) and size (bytes).
    last_us: AtomicU64,
    last_size: AtomicUsize,
}

/// Serves `listener` on a thread of its own until the server shuts down.
pub fn spawn(listener: std::net::TcpListener, state: Arc<ServerState>, max_tenants: usize) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("ferrite-metrics".into()).spawn(move || {
        rt.block_on(async move {
            let listener = match TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return tracing::error!("metrics endpoint: {e}"),
            };
            let ep = Endpoint { state: state.clone(), max_tenants, scrapes: 0.into(), last_us: 0.into(), last_size: 0.into() };
            tokio::select! {
                _ = serve(listener, Arc::new(ep)) => {}
                _ = stopped(&state) => {}
            }
        });
        // Dropping the runtime here ends the connections still open.
    })
}

/// Until the server shuts down (a shutdown before this started included).
async fn stopped(state: &ServerState) {
    let shutdown = state.shutdown.notified();
    tokio::pin!(shutdown);
    shutdown.as_mut().enable();
    if !state.shutting_down.load(Relaxed) {
        shutdown.await;
    }
}

async fn serve(listener: TcpListener, ep: Arc<Endpoint>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let ep = ep.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| std::future::ready(respond(&ep, req)));
            let mut http = hyper::server::conn::http1::Builder::new();
            // A client that never finishes its request does not keep a task forever.
            http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn respond(ep: &Endpoint, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n"));
    }
    match req.uri().path() {
        "/metrics" => Ok(scrape(ep)),
        "/" => Ok(reply(StatusCode::OK, "Ferrite metrics: GET /metrics\n")),
        _ => Ok(reply(StatusCode::NOT_FOUND, "not found: GET /metrics\n")),
    }
}

fn scrape(ep: &Endpoint) -> Response<Full<Bytes>> {
    let n = ep.scrapes.fetch_add(1, Relaxed) + 1;
    let (took, size) = (ep.last_us.load(Relaxed) as f64 / 1e6, ep.last_size.load(Relaxed));
    let start = Instant::now();
    // Sized as the last one: growing a 20 MB string by doubling copied and
    // faulted in twice that.
    let text = super::render(&ep.state, ep.max_tenants, n, took, size + size / 8);
    ep.last_us.store(start.elapsed().as_micros() as u64, Relaxed);
    ep.last_size.store(text.len(), Relaxed);
    let mut r = Response::new(Full::new(Bytes::from(text)));
    let ct = hyper::header::HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE);
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
    r
}
