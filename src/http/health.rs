//! Liveness and readiness: `/healthz` (the process answers) and `/readyz` (Redis and provider).

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
        },
        // Refusals waiting to be written to the denial log, and those dropped because the
        // buffer was full (both per instance, since start). They do not make the instance unready.
        "denial_buffer": {
            "buffered": state.denials.len(),
            "dropped": state.denials.dropped(),
        }
    });
    if store.is_ok() && provider {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
