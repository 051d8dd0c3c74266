//! `Upstream`: an in-process actix-web app on a loopback port that stands in for the protected
//! application behind Clearance (echo, streaming download/upload, SSE, slow and status routes).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::{ServerHandle, Service as _};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

const CHUNK: usize = 16 * 1024;

/// The upstream app; stopped on drop.
///
/// Routes:
/// - `/echo`, `/echo/...` (any method): JSON `{method, path, query, headers: {name: [values]}, body}`
///   of the request as received (header names lowercase, `body` as lossy UTF-8).
/// - `GET /download?bytes=N`: N bytes of [`Upstream::pattern`] data, chunked (no content-length),
///   header `x-sha256` = hex SHA-256 of the content.
/// - `POST /upload`: reads the body as a stream, answers JSON `{bytes, sha256}`.
/// - `GET /sse`: `text/event-stream`, `data: tick N\n\n` for N = 1..=5, 200 ms apart.
/// - `GET /slow?ms=N`: answers 200 `slow` after N ms.
/// - `/status/{code}`: answers that status (body `status {code}` where a body is allowed).
pub struct Upstream {
    port: u16,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    /// Binds a free loopback port and starts serving on a dedicated thread with its own actix
    /// System (so it works from any `#[tokio::test]`). Panics on failure.
    pub async fn start() -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind upstream port");
        let port = listener.local_addr().expect("upstream local addr").port();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let thread_log = Arc::clone(&log);
        let (handle, thread) =
            super::serve_in_thread(format!("upstream-{port}"), listener, move |listener| {
                Ok(HttpServer::new(move || {
                    let log = Arc::clone(&thread_log);
                    App::new()
                        .wrap_fn(move |req, srv| {
                            log.lock().expect("upstream log lock").push(format!(
                                "{} {}",
                                req.method(),
                                req.uri()
                            ));
                            srv.call(req)
                        })
                        .service(web::resource(["/echo", "/echo/{tail:.*}"]).to(echo))
                        .route("/download", web::get().to(download))
                        .route("/policy.txt", web::get().to(policy_text_handler))
                        .route("/upload", web::post().to(upload))
                        .route("/sse", web::get().to(sse))
                        .route("/slow", web::get().to(slow))
                        .route("/status/{code}", web::route().to(status))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)?
                .run())
            })
            .await;
        Upstream {
            port,
            handle,
            thread: Some(thread),
            log,
        }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `"METHOD /path?query"` of every request received so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("upstream log lock").clone()
    }

    pub fn request_count(&self) -> usize {
        self.log.lock().expect("upstream log lock").len()
    }

    /// The first `len` bytes of the deterministic pattern `/download` serves.
    pub fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(pattern_byte).collect()
    }

    /// Hex SHA-256, as in `x-sha256` and `/upload`'s answer.
    pub fn sha256_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only awaits completion.
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The text `/policy.txt` serves: a document published on an intranet page.
pub fn policy_text() -> &'static str {
    "INTRANET POLICY\n\n1. Keep data confidential.\n2. Report incidents.\n3. Lock your screen.\n"
}

async fn policy_text_handler() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(policy_text())
}

fn pattern_byte(i: usize) -> u8 {
    // 251 is prime, so chunk boundaries never line up with the period.
    (i % 251) as u8
}

async fn echo(req: HttpRequest, body: Bytes) -> HttpResponse {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    HttpResponse::Ok().json(serde_json::json!({
        "method": req.method().as_str(),
        "path": req.path(),
        "query": req.query_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    }))
}

#[derive(Deserialize)]
struct DownloadQuery {
    bytes: usize,
}

async fn download(query: web::Query<DownloadQuery>) -> HttpResponse {
    let total = query.bytes;
    let mut hasher = Sha256::new();
    let mut offset = 0;
    while offset < total {
        let end = (offset + CHUNK).min(total);
        hasher.update((offset..end).map(pattern_byte).collect::<Vec<u8>>());
        offset = end;
    }
    let digest = hex::encode(hasher.finalize());
    let stream = futures_util::stream::unfold(0usize, move |offset| async move {
        if offset >= total {
            return None;
        }
        let end = (offset + CHUNK).min(total);
        let chunk: Vec<u8> = (offset..end).map(pattern_byte).collect();
        Some((Ok::<_, Infallible>(Bytes::from(chunk)), end))
    });
    HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("x-sha256", digest))
        .streaming(stream)
}

async fn upload(mut payload: web::Payload) -> Result<HttpResponse, actix_web::Error> {
    let mut hasher = Sha256::new();
    let mut bytes: u64 = 0;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk?;
        bytes += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "bytes": bytes,
        "sha256": hex::encode(hasher.finalize()),
    })))
}

async fn sse() -> HttpResponse {
    let stream = futures_util::stream::unfold(1u32, |n| async move {
        if n > 5 {
            return None;
        }
        if n > 1 {
            actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        }
        let event = Bytes::from(format!("data: tick {n}\n\n"));
        Some((Ok::<_, Infallible>(event), n + 1))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(stream)
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: u64,
}

async fn slow(query: web::Query<SlowQuery>) -> HttpResponse {
    actix_web::rt::time::sleep(Duration::from_millis(query.ms)).await;
    HttpResponse::Ok().content_type("text/plain").body("slow")
}

async fn status(path: web::Path<u16>) -> HttpResponse {
    let code = path.into_inner();
    let Ok(status) = StatusCode::from_u16(code) else {
        return HttpResponse::BadRequest().body(format!("bad status {code}"));
    };
    let mut response = HttpResponse::build(status);
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        response.finish()
    } else {
        response
            .content_type("text/plain")
            .body(format!("status {code}"))
    }
}
