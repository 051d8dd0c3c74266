//! Liveness and readiness: `/healthz` (the process answers) and `/readyz` (Redis and provider);
//! `/metrics` (Prometheus text) for the admin listener only.

use super::AppState;
use crate::store::StoreError;
use actix_web::{HttpResponse, web};
use serde_json::json;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "alive" }))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let read = state.store.ping().await;
    // Only worth asking when it answers at all.
    let write = match &read {
        Ok(()) => state.store.probe_writes().await,
        Err(_) => Ok(()),
    };
    match &write {
        Ok(()) => crate::metrics::store_writable(None),
        Err(StoreError::ReadOnly(e)) => crate::metrics::store_writable(Some(e)),
        Err(_) => {}
    }
    let provider = state.oidc.is_ready();
    let (status, store) = match (&read, &write) {
        (Err(e), _) => ("not_ready", e.to_string()),
        // Decisions go on from what the store holds (the instance stays in service), but no
        // change can be made and refusals wait in the buffer: its own state, to alert on.
        (Ok(()), Err(e @ StoreError::ReadOnly(_))) => ("read_only", e.to_string()),
        (Ok(()), Err(e)) => ("not_ready", e.to_string()),
        (Ok(()), Ok(())) => ("ready", "ok".to_owned()),
    };
    let status = if provider { status } else { "not_ready" };
    let body = json!({
        "status": status,
        "checks": {
            "store": store,
            "provider_metadata": if provider { "loaded" } else { "not loaded" },
        },
        // Refusals waiting to be written to the denial log, and those dropped because the
        // buffer was full (both per instance, since start). They do not make the instance unready.
        "denial_buffer": {
            "buffered": state.denials.len(),
            "dropped": state.denials.dropped(),
        }
    });
    if status == "not_ready" {
        HttpResponse::ServiceUnavailable().json(body)
    } else {
        HttpResponse::Ok().json(body)
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
