//! Liveness and readiness: `/healthz` (the process answers) and `/readyz` (Redis and provider);
//! `/metrics` (Prometheus text) for the admin listener only.

use super::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "alive" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.ping().await;
    let provider = state.oidc.is_ready();
    let body = json!({
        "status": if store.is_ok() && provider { "ready" } else { "not_ready" },
        "checks": {
            "store": match &store { Ok(()) => "ok".to_owned(), Err(e) => e.to_string() },
            "provider_metadata": if provider { "loaded" } else { "not loaded" },
        }
    });
    if store.is_ok() && provider {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The Prometheus exposition; routed on the admin listener only.
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render())
}
