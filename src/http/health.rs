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

/// The Prometheus exposition; routed on the admin listener only. With
/// `[[admin.metrics_tokens]]` configured, the scraper must send one of them as a bearer token.
pub async fn metrics(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, super::error::HttpError> {
    use super::error::IntoHttp as _;
    let tokens = &state.settings().metrics_tokens;
    if !tokens.is_empty() {
        super::api::token_name(&req, tokens, "metrics").http(&req)?;
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render()))
}
