//! `DropboxSignApi`: a local stand-in for Dropbox Sign's API (the real service cannot be reached
//! from the test machine), following its documented `GET /v3/signature_request/{id}`: HTTP Basic
//! with the account's API key as the user name and an empty password; 200 with
//! `{"signature_request": {...}}` for a request the account has, 404 with
//! `{"error": {"error_msg", "error_name": "not_found"}}` for one it does not, 401 with
//! `error_name` `unauthorized` for a wrong key. Tests put the requests it knows in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use serde_json::{Value, json};

#[derive(Default)]
struct Known {
    api_key: String,
    requests: HashMap<String, Value>,
    /// Every request id asked about, in order.
    asked: Vec<String>,
}

/// The fake API; stopped on drop.
pub struct DropboxSignApi {
    port: u16,
    known: Arc<Mutex<Known>>,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

async fn signature_request(
    req: HttpRequest,
    id: web::Path<String>,
    known: web::Data<Arc<Mutex<Known>>>,
) -> HttpResponse {
    let mut known = known.lock().expect("fake API lock");
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", known.api_key))
    );
    let authorised = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    if !authorised {
        return HttpResponse::Unauthorized().json(json!({
            "error": { "error_msg": "Unauthorized api key", "error_name": "unauthorized" }
        }));
    }
    known.asked.push(id.clone());
    match known.requests.get(id.as_str()) {
        Some(request) => HttpResponse::Ok().json(json!({ "signature_request": request })),
        None => HttpResponse::NotFound().json(json!({
            "error": { "error_msg": "Not found", "error_name": "not_found" }
        })),
    }
}

impl DropboxSignApi {
    /// Serves `/v3/signature_request/{id}` for the account with `api_key`.
    pub async fn start(api_key: &str) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind fake API port");
        let port = listener.local_addr().expect("local addr").port();
        let known = Arc::new(Mutex::new(Known {
            api_key: api_key.to_owned(),
            ..Known::default()
        }));
        let shared = Arc::clone(&known);
        let (handle, thread) = super::serve_in_thread(
            format!("dropbox-sign-api-{port}"),
            listener,
            move |listener| {
                Ok(HttpServer::new(move || {
                    App::new()
                        .app_data(web::Data::new(Arc::clone(&shared)))
                        .route(
                            "/v3/signature_request/{id}",
                            web::get().to(signature_request),
                        )
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .listen(listener)?
                .run())
            },
        )
        .await;
        Self {
            port,
            known,
            handle,
            thread: Some(thread),
        }
    }

    /// The base URL, as `webhooks.dropbox_sign.api_url` takes it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v3", self.port)
    }

    /// Makes the account have `request` (a signature request object), under its
    /// `signature_request_id`.
    pub fn knows(&self, request: &Value) {
        let id = request["signature_request_id"]
            .as_str()
            .expect("a signature_request_id")
            .to_owned();
        self.known
            .lock()
            .expect("fake API lock")
            .requests
            .insert(id, request.clone());
    }

    /// The request ids asked about so far.
    pub fn asked(&self) -> Vec<String> {
        self.known.lock().expect("fake API lock").asked.clone()
    }
}

impl Drop for DropboxSignApi {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
