//! The gate: for every request that is not Clearance's own, find the route, authenticate the
//! person, evaluate their requirements, record a denial or hand the request to the proxy.

use super::error::{AppError, HttpError, IntoHttp};
use super::normalize::normalize_path;
use super::pages::{BlockedItem, BlockedPerson, BlockedView};
use super::proxy::{self, Upstreams};
use super::{AppState, RequestId};
use crate::auth::claims::principal_from_claims;
use crate::auth::oidc::AuthError;
use crate::auth::session::{Lookup, Session, Sessions};
use crate::domain::{Decision, DenialEvent, Principal, RequirementKind, Route, Unmet, evaluate};
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};

/// A signed-in request.
pub struct Authenticated {
    pub id: String,
    pub session: Box<Session>,
}

/// The host the client asked for (never taken from forwarded headers here).
pub fn request_host(req: &HttpRequest) -> String {
    req.uri()
        .host()
        .map(str::to_owned)
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

fn start_url(rd: &str) -> String {
    format!(
        "/oauth2/start?rd={}",
        percent_encoding::utf8_percent_encode(rd, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// A session cookie that cannot be trusted: refuse it and clear it.
fn invalid_session(state: &AppState, rd: &str) -> AppError {
    AppError::InvalidSession {
        start_url: start_url(rd),
        clear: vec![
            state
                .sessions
                .removal(state.sessions.cookie_name().to_owned()),
        ],
    }
}

/// Finds the request's session and refreshes its tokens when they are about to expire.
///
/// `rd` is where sign-in should return to if the person is not signed in.
pub async fn authenticate(
    req: &HttpRequest,
    state: &AppState,
    rd: &str,
) -> Result<Authenticated, AppError> {
    let (id, mut session) = match state.sessions.lookup(req).await? {
        Lookup::Found { id, session } => (id, session),
        Lookup::Missing | Lookup::Ended => {
            return Err(AppError::SignInRequired {
                start_url: start_url(rd),
            });
        }
        Lookup::Invalid => {
            return Err(invalid_session(state, rd));
        }
    };
    let now = state.clock.now();
    let refresh_before = chrono::Duration::from_std(state.settings.oidc.refresh_before)
        .unwrap_or_else(|_| chrono::Duration::seconds(60));
    let due = session
        .access_expires_at
        .is_some_and(|exp| exp - refresh_before <= now);
    if let (true, Some(refresh_token)) = (due, session.refresh_token.clone()) {
        match state
            .oidc
            .refresh(&refresh_token, &session.principal.provider_sub)
            .await
        {
            Ok(signed) => {
                if let Ok(principal) =
                    principal_from_claims(&signed.claims, &state.settings.oidc.claims)
                {
                    if principal.subject != session.principal.subject {
                        state.sessions.destroy(&id).await?;
                        return Err(invalid_session(state, rd));
                    }
                    session.principal = principal;
                }
                session.access_token = signed.access_token;
                session.refresh_token = signed.refresh_token;
                session.access_expires_at = signed.access_expires_at;
                if signed.id_token.is_some() {
                    session.id_token = signed.id_token;
                }
                state.sessions.save(&id, &session).await?;
                tracing::debug!(session.id = %Sessions::log_id(&id), "tokens refreshed");
            }
            Err(AuthError::ProviderUnavailable(e)) => {
                // A provider blip must not sign everyone out; the session stays valid until its
                // own expiry and refresh is retried on the next request.
                tracing::warn!(session.id = %Sessions::log_id(&id), error = %e, "token refresh postponed");
            }
            Err(e) => {
                tracing::info!(session.id = %Sessions::log_id(&id), error = %e, "refresh refused; session ended");
                state.sessions.destroy(&id).await?;
                return Err(AppError::SignInRequired {
                    start_url: start_url(rd),
                });
            }
        }
    }
    Ok(Authenticated { id, session })
}

fn day(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.format("%Y-%m-%d").to_string())
}

fn blocked_view(
    state: &AppState,
    principal: &Principal,
    host: &str,
    retry_url: &str,
    missing: &[Unmet],
    request_id: &str,
) -> BlockedView {
    let items = missing
        .iter()
        .map(|m| {
            let req = state.settings.policy.get(&m.requirement);
            let kind = req.map_or(RequirementKind::Training, |r| r.kind);
            BlockedItem {
                id: m.requirement.to_string(),
                title: req.map_or_else(|| m.requirement.to_string(), |r| r.title.clone()),
                kind: kind.label(),
                description: req.and_then(|r| r.description.clone()),
                reason: m.reason.as_str(),
                explanation: m.reason.explain(),
                completed_at: day(m.completed_at),
                valid_until: day(m.valid_until),
                held_version: m.held_version.map(|v| v.to_string()),
                current_version: m.current_version.to_string(),
                url: req.and_then(|r| r.url.clone()),
                action: match kind {
                    RequirementKind::Training => "Take the training",
                    RequirementKind::Agreement => "Sign the agreement",
                    RequirementKind::Policy => "Read and accept the policy",
                },
            }
        })
        .collect();
    BlockedView {
        person: BlockedPerson {
            subject: principal.subject.to_string(),
            name: principal.name.clone(),
            email: principal.email.clone(),
        },
        host: host.to_owned(),
        items,
        retry_url: retry_url.to_owned(),
        request_id: request_id.to_owned(),
    }
}

/// Appends a denial to the log and emits it as a structured event. A failed append is logged in
/// full so that the record is not lost.
async fn record_denial(state: &AppState, event: &DenialEvent) {
    let missing: Vec<String> = event
        .missing
        .iter()
        .map(|m| format!("{}:{}", m.requirement, m.reason.as_str()))
        .collect();
    let result = state.store.append_denial(event).await;
    let missing = missing.join(",");
    match result {
        Ok(id) => tracing::info!(
            target: "clearance::denial",
            missing = %missing,
            denial.id = %id,
            user.subject = %event.subject,
            user.email = event.email.as_deref().unwrap_or(""),
            user.person_type = event.person_type.as_deref().unwrap_or(""),
            user.manager = event.manager.as_deref().unwrap_or(""),
            http.host = %event.host,
            http.path = %event.path,
            route = %event.route,
            would_deny_only = event.would_deny_only,
            request.id = %event.request_id,
            client.address = %event.client_addr,
            "access denied"
        ),
        Err(e) => tracing::error!(
            target: "clearance::denial",
            missing = %missing,
            error = %e,
            denial = %serde_json::to_string(event).unwrap_or_default(),
            "access denied; the denial could not be stored"
        ),
    }
}

fn route_label(route: &Route) -> String {
    format!(
        "{}{} -> {}",
        route.host.as_deref().unwrap_or("*"),
        route.path_prefix,
        route.upstream
    )
}

/// The catch-all handler.
pub async fn gate(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    upstreams: web::Data<Upstreams>,
) -> Result<HttpResponse, HttpError> {
    let path = normalize_path(req.uri().path())
        .map_err(|e| AppError::bad_request("invalid_path", e.to_string()))
        .http(&req)?;
    let host = request_host(&req);
    let route = state
        .settings
        .routes
        .find(&host, path.as_str())
        .ok_or(AppError::NoRoute)
        .http(&req)?;
    let original = match req.uri().query() {
        Some(q) => format!("{}?{q}", path.as_str()),
        None => path.as_str().to_owned(),
    };
    let Authenticated { session, .. } = authenticate(&req, &state, &original).await.http(&req)?;
    let principal = &session.principal;

    let records = state.store.records(&principal.subject).await.http(&req)?;
    let now = state.clock.now();
    let requirements = route
        .requirements
        .iter()
        .filter_map(|id| state.settings.policy.get(id));
    let evaluation = evaluate(requirements, principal, &records, now);
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let denial = |missing: Vec<Unmet>, would_deny_only: bool| {
        let mut event = DenialEvent::for_principal(principal, now, missing);
        event.host = host.clone();
        event.path = path.as_str().to_owned();
        event.route = route_label(route);
        event.request_id = request_id.clone();
        event.client_addr = req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        event.user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        event.would_deny_only = would_deny_only;
        event
    };
    match evaluation.decision() {
        Decision::Deny { missing } => {
            record_denial(&state, &denial(missing.clone(), false)).await;
            let view = blocked_view(&state, principal, &host, &original, &missing, &request_id);
            Err(AppError::Blocked(Box::new(view))).http(&req)
        }
        Decision::Allow { would_deny } => {
            if !would_deny.is_empty() {
                record_denial(&state, &denial(would_deny, true)).await;
            }
            proxy::forward(
                &req,
                payload,
                route,
                &path,
                principal,
                &upstreams,
                &request_id,
            )
            .await
            .http(&req)
        }
    }
}
