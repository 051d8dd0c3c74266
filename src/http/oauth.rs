//! Sign-in endpoints: `/oauth2/start`, `/oauth2/callback`, `/oauth2/sign_out`, `/oauth2/userinfo`,
//! and `/oauth2/backchannel_logout` (the provider ending sessions).

use super::AppState;
use super::error::{AppError, HttpError, IntoHttp};
use super::gate::{self, Authenticated};
use crate::auth::bearer::BearerError;
use crate::auth::claims::person_from_claims;
use crate::auth::logout;
use crate::auth::oidc::PendingLogin;
use crate::auth::redirect::safe_redirect;
use crate::auth::session::{CookieValue, LOGIN_TTL, Lookup, Session, Sessions, random_token};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
pub struct StartQuery {
    rd: Option<String>,
}

/// Validates an `rd=` target (default `/`): relative, or on an allowed host.
pub fn checked_rd(rd: Option<&str>, state: &AppState) -> Result<String, AppError> {
    safe_redirect(rd.unwrap_or("/"), &state.settings().redirect_hosts).map_err(|e| {
        AppError::bad_request(
            "invalid_redirect",
            format!("The rd parameter is not allowed: {e}"),
        )
    })
}

/// Starts a sign-in: validates `rd`, stores a one-time login state and redirects to the provider.
pub async fn start(
    req: HttpRequest,
    query: web::Query<StartQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let rd = checked_rd(query.rd.as_deref(), &state).http(&req)?;
    let (url, pending) = state.oidc.begin(rd).await.http(&req)?;
    let json = serde_json::to_string(&pending)
        .map_err(|e| AppError::Internal(e.to_string()))
        .http(&req)?;
    state
        .store
        .put_login(&pending.state, &json, LOGIN_TTL)
        .await
        .http(&req)?;
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, url.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(state.sessions.login_cookie(&pending.state))
        .finish())
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// RFC 9207: the issuer of this response.
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Finishes a sign-in: checks the state against this browser's login cookie and the one-time
/// store entry, exchanges the code, creates a fresh session and returns to `rd`.
pub async fn callback(
    req: HttpRequest,
    query: web::Query<CallbackQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    if let Some(error) = &query.error {
        let detail = query.error_description.as_deref().unwrap_or("");
        return Err(AppError::SignInFailed(format!(
            "The sign-in provider answered `{error}` {detail}"
        )))
        .http(&req);
    }
    let (Some(code), Some(returned_state)) = (&query.code, &query.state) else {
        return Err(AppError::bad_request(
            "invalid_callback",
            "The sign-in callback needs both `code` and `state`.",
        ))
        .http(&req);
    };
    let bound = match state.sessions.login_state(&req) {
        CookieValue::Value(v) => v,
        CookieValue::Missing => {
            return Err(AppError::bad_request(
                "login_state_missing",
                "This sign-in was not started in this browser (or took longer than 10 minutes).",
            ))
            .http(&req);
        }
        CookieValue::Invalid => {
            return Err(AppError::bad_request(
                "login_state_invalid",
                "The sign-in cookie could not be verified.",
            ))
            .http(&req);
        }
    };
    if !constant_eq(bound.as_bytes(), returned_state.as_bytes()) {
        return Err(AppError::bad_request(
            "login_state_mismatch",
            "The sign-in state does not match the one this browser started.",
        ))
        .http(&req);
    }
    let Some(pending) = state.store.take_login(returned_state).await.http(&req)? else {
        return Err(AppError::bad_request(
            "login_state_unknown",
            "This sign-in state is unknown or was already used.",
        ))
        .http(&req);
    };
    let pending: PendingLogin = serde_json::from_str(&pending)
        .map_err(|e| AppError::Internal(format!("login state: {e}")))
        .http(&req)?;
    state
        .oidc
        .check_response_issuer(query.iss.as_deref())
        .await
        .http(&req)?;
    let signed = state
        .oidc
        .complete(code.clone(), &pending)
        .await
        .http(&req)?;
    let principal = person_from_claims(&signed.claims, &state.settings().oidc)
        .map_err(AppError::from)
        .http(&req)?;

    // Session fixation: whatever session this browser had is ended; the new one gets a new id.
    if let Ok(Lookup::Found { id, .. }) = state.sessions.lookup(&req).await {
        state.sessions.destroy(&id).await.http(&req)?;
    }
    let now = Utc::now();
    let lifetime = chrono::Duration::from_std(state.sessions.lifetime())
        .unwrap_or_else(|_| chrono::Duration::hours(12));
    let provider_sid = signed
        .claims
        .get("sid")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    let access_expires_at = signed.access_expires_at(state.clock.now());
    let session = Session {
        principal,
        provider_sid,
        tokens_elided: false,
        id_token: signed.id_token,
        access_token: signed.access_token,
        refresh_token: signed.refresh_token,
        access_expires_at,
        created_at: now,
        expires_at: now + lifetime,
        csrf: random_token(),
    };
    state
        .store
        .put_profile(&session.principal)
        .await
        .http(&req)?;
    state.known_subjects.invalidate();
    let (id, cookie) = state.sessions.create(&session).await.http(&req)?;
    tracing::info!(
        user.subject = %session.principal.subject,
        session.id = %Sessions::log_id(&id),
        "signed in"
    );
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, pending.rd.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(cookie)
        .cookie(state.sessions.removal(state.sessions.login_cookie_name()))
        .finish())
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Ends the session here and, when the provider supports it, at the provider too.
pub async fn sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let mut id_token = None;
    if let Lookup::Found { id, session, .. } = state.sessions.lookup(&req).await.http(&req)? {
        // The ID token is the provider's hint for its own sign-out (not kept in the cache).
        let full = state
            .sessions
            .with_tokens(&id, session.clone())
            .await
            .http(&req)?;
        state.sessions.destroy(&id).await.http(&req)?;
        tracing::info!(user.subject = %session.principal.subject, session.id = %Sessions::log_id(&id), "signed out");
        id_token = full.and_then(|s| s.id_token.clone());
    }
    let target = state
        .oidc
        .end_session_url(id_token.as_deref(), &random_token())
        .map(|u| u.to_string())
        .unwrap_or_else(|| "/oauth2/signed_out".to_owned());
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, target))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(
            state
                .sessions
                .removal(state.sessions.cookie_name().to_owned()),
        )
        .finish())
}

/// `POST /oauth2/backchannel_logout` (OpenID Connect Back-Channel Logout 1.0): the provider
/// says a person signed out there. The form field `logout_token` is a JWT signed by the
/// provider; every Clearance session of its `sid` (or, without one, of its `sub`) ends, on
/// every instance. 200 with `Cache-Control: no-store`, or 400 with a JSON error.
pub async fn backchannel_logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, HttpError> {
    let bad = |m: String| AppError::bad_request("invalid_request", m);
    let token = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("The form field logout_token is required.".into()))
        .http(&req)?;
    if state.bearer.jwks_uri().is_none() {
        let uri = state
            .oidc
            .jwks_uri()
            .await
            .map_err(AppError::from)
            .http(&req)?;
        state.bearer.set_jwks_uri(uri);
    }
    let settings = state.settings();
    let claims = match state
        .bearer
        .verify_logout_token(&token, &settings.oidc.client_id)
        .await
    {
        Ok(claims) => claims,
        Err(BearerError::KeysUnavailable(m)) => {
            return Err(AppError::ProviderUnavailable(m)).http(&req);
        }
        Err(BearerError::Malformed(m) | BearerError::InvalidToken(m)) => {
            return Err(bad(format!("The logout token is not valid: {m}"))).http(&req);
        }
    };
    let leeway = settings.bearer.leeway;
    let now = state.clock.now();
    let logout = logout::logout_request(&claims, now, leeway)
        .map_err(|e| bad(format!("{e}.")))
        .http(&req)?;
    let first = state
        .store
        .use_once(
            &format!("logout:{}", logout.jti),
            logout::jti_memory(leeway),
        )
        .await
        .http(&req)?;
    if !first {
        return Err(bad(format!("{}.", logout::LogoutTokenError::Replayed))).http(&req);
    }
    let ended = logout::end_sessions(
        state.store.as_ref(),
        &logout.which,
        "oidc-provider",
        "backchannel_logout",
        now,
    )
    .await
    .http(&req)?;
    tracing::info!(
        user.provider_sub = logout.sub.as_deref().unwrap_or(""),
        sessions.ended = ended,
        "back-channel logout"
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// Where the provider sends people after signing out.
pub async fn signed_out() -> HttpResponse {
    let page = super::pages::Message {
        title: "You are signed out",
        message: "You have been signed out of Clearance and the sign-in provider.",
        detail: None,
        action_url: Some("/oauth2/start"),
        action_label: Some("Sign in again"),
        code: "signed_out",
        status: 200,
        request_id: None,
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(super::pages::render("message.html", page))
}

/// Who is signed in, as JSON (oauth2-proxy compatible field names).
pub async fn userinfo(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, HttpError> {
    let Authenticated { principal, .. } =
        gate::authenticate(&req, &state, &|| gate::start_url("/"))
            .await
            .http(&req)?;
    let p = &principal;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "user": p.subject,
            "email": p.email,
            "preferredUsername": p.name,
            "groups": p.groups,
            "personType": p.person_type,
        })))
}
