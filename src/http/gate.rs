//! The gate: for every request that is not Clearance's own, find the route, authenticate the
//! person, evaluate their requirements, record a denial or hand the request to the proxy.

use super::error::{AppError, HttpError, IntoHttp};
use super::forwarded;
use super::normalize::{NormalizedPath, normalize_path};
use super::pages::{BlockedItem, BlockedPerson, BlockedView, WarningView};
use super::proxy::{self, Upstreams};
use super::{AppState, RequestId};
use crate::auth::claims::person_from_claims;
use crate::auth::oidc::AuthError;
use crate::auth::session::{Lookup, Session, Sessions};
use crate::config::MachineAccess;
use crate::denial_buffer::Refusal;
use crate::domain::exemption::exempt_until;
use crate::domain::{
    Decision, DenialEvent, Enforcement, Principal, RequirementKind, Route, RouteAccess, SubjectKey,
    Unmet, evaluate,
};
use crate::metrics::Outcome;
use crate::store::Standing;
use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The principal a request is made as: the one in the session it came with, shared with the
/// session (nothing is copied on the hot path), or one of its own (bearer tokens, machine
/// clients, or a session's principal that the directory changed).
#[derive(Clone, Debug)]
pub enum SharedPrincipal {
    Session(Arc<Session>),
    Own(Box<Principal>),
}

impl std::ops::Deref for SharedPrincipal {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        match self {
            Self::Session(session) => &session.principal,
            Self::Own(principal) => principal,
        }
    }
}

impl SharedPrincipal {
    /// The principal, to change: the session is copied first while it is shared (only when
    /// the directory changes the person type).
    pub fn to_mut(&mut self) -> &mut Principal {
        match self {
            Self::Session(session) => &mut Arc::make_mut(session).principal,
            Self::Own(principal) => principal,
        }
    }
}

impl From<Principal> for SharedPrincipal {
    fn from(principal: Principal) -> Self {
        Self::Own(Box::new(principal))
    }
}

/// Who is making a request: a person (browser session or bearer token), or an exempt machine.
pub struct Authenticated {
    pub principal: SharedPrincipal,
    /// The session's form token (browser sessions only).
    pub csrf: Option<String>,
    /// A machine client named exempt in `[[bearer.machine_clients]]`: no requirement applies.
    pub exempt: bool,
    /// A machine client (exempt, or acting for a person): never an overseer.
    pub machine: bool,
    /// The person's standing, when it was read together with their session.
    pub standing: Option<Arc<Standing>>,
    /// A person's bearer token: when it was issued (`iat`, else `nbf`), checked against the end
    /// of their tokens (sign out everywhere, back-channel logout) with their standing.
    pub bearer_issued: Option<Option<DateTime<Utc>>>,
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

/// Where to send someone to sign in so that they come back to `rd`.
pub fn start_url(rd: &str) -> String {
    format!(
        "/oauth2/start?rd={}",
        percent_encoding::utf8_percent_encode(rd, percent_encoding::NON_ALPHANUMERIC)
    )
}

/// Where to send a person who is not signed in: made only when someone is sent there (the
/// percent-encoded return address costs more than an admitted request's other work).
pub type SignInUrl<'a> = &'a dyn Fn() -> String;

/// A session cookie that cannot be trusted: refuse it and clear it.
fn invalid_session(state: &AppState, sign_in_url: SignInUrl<'_>) -> AppError {
    AppError::InvalidSession {
        start_url: sign_in_url(),
        clear: vec![
            state
                .sessions
                .removal(state.sessions.cookie_name().to_owned()),
        ],
    }
}

/// Identifies the caller: a bearer token when the request carries `Authorization: Bearer`
/// (and bearer tokens are enabled), otherwise the browser session.
///
/// `sign_in_url` is where to send a person who is not signed in.
pub async fn authenticate(
    req: &HttpRequest,
    state: &AppState,
    sign_in_url: SignInUrl<'_>,
) -> Result<Authenticated, AppError> {
    if state.settings().bearer.enabled
        && let Some(value) = req.headers().get(header::AUTHORIZATION)
    {
        let value = value.to_str().unwrap_or("");
        // Anything that looks like a bearer attempt is judged as one, strictly.
        if value
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("bearer"))
        {
            return bearer_identity(state, value).await;
        }
    }
    let (_, session, standing) = identify_session(req, state, sign_in_url).await?;
    Ok(Authenticated {
        csrf: Some(session.csrf.clone()),
        principal: SharedPrincipal::Session(session),
        exempt: false,
        machine: false,
        standing,
        bearer_issued: None,
    })
}

/// Verifies a bearer token and maps it to a person or a configured machine client.
async fn bearer_identity(state: &AppState, header_value: &str) -> Result<Authenticated, AppError> {
    let token = crate::auth::bearer::bearer_token(header_value)?;
    if state.bearer.jwks_uri().is_none() {
        state.bearer.set_jwks_uri(state.oidc.jwks_uri().await?);
    }
    let claims = state.bearer.verify(token).await?;
    let settings = state.settings();
    match person_from_claims(&claims, &settings.oidc) {
        Ok(principal) => {
            let principal = completed_from_last_sign_in(state, principal, &claims).await?;
            let issued = ["iat", "nbf"]
                .iter()
                .find_map(|k| claims.get(*k).and_then(serde_json::Value::as_i64))
                .and_then(|t| DateTime::from_timestamp(t, 0));
            return Ok(Authenticated {
                principal: principal.into(),
                csrf: None,
                exempt: false,
                machine: false,
                standing: None,
                bearer_issued: Some(issued),
            });
        }
        // A person the provider vouches for, whom Clearance may not admit.
        Err(e) if !e.names_nobody() => {
            return Err(AppError::BearerRejected {
                challenge: crate::auth::bearer::BearerError::InvalidToken(e.to_string())
                    .www_authenticate(),
                message: e.to_string(),
            });
        }
        Err(_) => {}
    }
    // No person in the token: a client-credentials token, admitted only if configured.
    let client_id = ["client_id", "azp"]
        .iter()
        .find_map(|k| claims.get(*k).and_then(|v| v.as_str()))
        .unwrap_or("");
    let machine = settings
        .bearer
        .machine_clients
        .iter()
        .find(|m| m.client_id == client_id)
        .ok_or_else(|| AppError::BearerRejected {
            challenge: crate::auth::bearer::BearerError::InvalidToken(
                "the token names no person and its client is not a configured machine client"
                    .into(),
            )
            .www_authenticate(),
            message: format!(
                "The token names no person, and client {client_id:?} is not configured in bearer.machine_clients."
            ),
        })?;
    match &machine.access {
        MachineAccess::Exempt => {
            let subject = SubjectKey::parse(&format!("client:{client_id}"))
                .map_err(|e| AppError::bad_request("invalid_token", e.to_string()))?;
            let mut principal = Principal::bare(subject);
            principal.person_type = Some("machine".into());
            Ok(Authenticated {
                principal: principal.into(),
                csrf: None,
                exempt: true,
                machine: true,
                standing: None,
                bearer_issued: None,
            })
        }
        MachineAccess::ActsFor(person) => {
            // The responsible person as last seen at sign-in, so that their selectors apply.
            let principal = state
                .store
                .profile(person)
                .await?
                .unwrap_or_else(|| Principal::bare(person.clone()));
            Ok(Authenticated {
                principal: principal.into(),
                csrf: None,
                exempt: false,
                machine: true,
                standing: None,
                bearer_issued: None,
            })
        }
    }
}

/// A bearer token's person, completed from their last sign-in: access tokens rarely carry the
/// person type, the manager or the groups, and a person is the same person whichever credential
/// they carry. What the token says wins; what it does not say comes from the profile kept at
/// sign-in (the directory, read with the standing, then overrides the type as for sessions).
/// The profile is read only when something is missing.
async fn completed_from_last_sign_in(
    state: &AppState,
    mut principal: Principal,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<Principal, AppError> {
    let names = &state.settings().oidc.claims;
    let has_groups = claims.contains_key(&names.groups);
    if principal.person_type.is_some() && principal.manager.is_some() && has_groups {
        return Ok(principal);
    }
    let Some(profile) = state.store.profile(&principal.subject).await? else {
        return Ok(principal);
    };
    if principal.person_type.is_none() {
        principal.person_type = profile.person_type;
    }
    if principal.manager.is_none() {
        principal.manager = profile.manager;
    }
    if !has_groups {
        principal.groups = profile.groups;
    }
    if principal.email.is_none() {
        principal.email = profile.email;
    }
    if principal.name.is_none() {
        principal.name = profile.name;
    }
    Ok(principal)
}

/// Finds the request's session and refreshes its tokens when they are about to expire.
pub async fn session_identity(
    req: &HttpRequest,
    state: &AppState,
    sign_in_url: SignInUrl<'_>,
) -> Result<(String, Arc<Session>), AppError> {
    let (id, session, _) = identify_session(req, state, sign_in_url).await?;
    Ok((id, session))
}

/// [`session_identity`], with the person's standing when it was read together with the session.
async fn identify_session(
    req: &HttpRequest,
    state: &AppState,
    sign_in_url: SignInUrl<'_>,
) -> Result<(String, Arc<Session>, Option<Arc<Standing>>), AppError> {
    let (id, session, standing) = match state.sessions.lookup(req).await? {
        Lookup::Found {
            id,
            session,
            standing,
        } => (id, session, standing),
        Lookup::Missing | Lookup::Ended => {
            return Err(AppError::SignInRequired {
                start_url: sign_in_url(),
            });
        }
        Lookup::Invalid => {
            return Err(invalid_session(state, sign_in_url));
        }
    };
    let now = state.clock.now();
    let refresh_before = chrono::Duration::from_std(state.settings().oidc.refresh_before)
        .unwrap_or_else(|_| chrono::Duration::seconds(60));
    let due = |session: &Session| {
        session
            .access_expires_at
            .is_some_and(|exp| exp - refresh_before <= now)
    };
    if !due(&session) {
        return Ok((id, session, standing));
    }
    // The decision cache keeps sessions without their tokens: read them now.
    let Some(session) = state.sessions.with_tokens(&id, session).await? else {
        return Err(AppError::SignInRequired {
            start_url: sign_in_url(),
        });
    };
    if let (true, Some(refresh_token)) = (due(&session), session.refresh_token.clone()) {
        let mut session = Arc::unwrap_or_clone(session);
        match state
            .oidc
            .refresh(&refresh_token, &session.principal.provider_sub)
            .await
        {
            Ok(signed) => {
                match person_from_claims(&signed.claims, &state.settings().oidc) {
                    Ok(principal) => {
                        if principal.subject != session.principal.subject {
                            state.sessions.destroy(&id).await?;
                            return Err(invalid_session(state, sign_in_url));
                        }
                        session.principal = principal;
                    }
                    // The provider now vouches for less (the address unverified, another
                    // tenant): the session ends.
                    Err(e) if !e.names_nobody() => {
                        state.sessions.destroy(&id).await?;
                        return Err(e.into());
                    }
                    Err(_) => {}
                }
                session.access_expires_at = signed.access_expires_at(state.clock.now());
                session.access_token = signed.access_token;
                session.refresh_token = signed.refresh_token;
                if signed.id_token.is_some() {
                    session.id_token = signed.id_token;
                }
                state.sessions.save(&id, &session).await?;
                tracing::debug!(session.id = %Sessions::log_id(&id), "tokens refreshed");
            }
            Err(AuthError::ProviderUnavailable(e)) => {
                // A provider blip must not sign everyone out; the session stays valid until its
                // own expiry and refresh is retried on the next request.
                tracing::warn!(session.id = %Sessions::log_id(&id), error.message = %e, "token refresh postponed");
            }
            Err(e) => {
                tracing::info!(session.id = %Sessions::log_id(&id), error.message = %e, "refresh refused; session ended");
                state.sessions.destroy(&id).await?;
                return Err(AppError::SignInRequired {
                    start_url: sign_in_url(),
                });
            }
        }
        return Ok((id, Arc::new(session), standing));
    }
    Ok((id, session, standing))
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
    let settings = state.settings();
    let items = missing
        .iter()
        .map(|m| {
            let req = settings.policy.get(&m.requirement);
            let kind = req.map_or(RequirementKind::Training, |r| r.kind);
            BlockedItem {
                requirement: m.requirement.to_string(),
                title: req.map_or_else(|| m.requirement.to_string(), |r| r.title.clone()),
                kind: kind.label(),
                description: req.and_then(|r| r.description.clone()),
                reason: m.reason.as_str(),
                explanation: m.reason.explain(),
                completed_at: day(m.completed_at),
                valid_until: day(m.valid_until),
                held_version: m.held_version.map(|v| v.to_string()),
                current_version: m.current_version.to_string(),
                // Documents are accepted on Clearance's own page, then back to where they were going.
                url: req.and_then(|r| match &r.document {
                    Some(_) => Some(format!(
                        "/.clearance/requirements/{}?rd={}",
                        r.id,
                        percent_encoding::utf8_percent_encode(
                            retry_url,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    )),
                    None => r.url.clone(),
                }),
                action: kind.action(),
                due: day(m.due),
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

/// Appends a denial to the log (and, for a real refusal, counts it into the person's case) and
/// emits it as a structured event. When the store does not answer, the denial waits in the
/// instance's denial buffer and is written when it answers again.
async fn record_denial(state: &AppState, event: &DenialEvent, count_into_case: bool) {
    let missing: Vec<String> = event
        .missing
        .iter()
        .map(|m| format!("{}:{}", m.requirement, m.reason.as_str()))
        .collect();
    for m in &event.missing {
        crate::metrics::unmet(m.requirement.as_str(), m.reason.as_str());
    }
    let count = count_into_case.then(|| super::followup::case_count(state));
    let outcome = state.denials.refuse(event, count).await;
    let missing = missing.join(",");
    let (id, error) = match &outcome {
        Refusal::Written { id } => (id.as_str(), None),
        Refusal::Buffered { error } => ("", Some(error.as_str())),
    };
    let message = match outcome {
        Refusal::Written { .. } => "access denied",
        Refusal::Buffered { .. } => {
            crate::metrics::denial_log_failure();
            "access denied; the denial log cannot be written now, the denial is buffered"
        }
    };
    tracing::info!(
        target: "clearance::denial",
        { denial.missing = %missing,
        denial.id = %id,
        denial.buffered = error.is_some(),
        error.message = error.unwrap_or(""),
        user.subject = %event.subject,
        user.email = event.email.as_deref().unwrap_or(""),
        user.person_type = event.person_type.as_deref().unwrap_or(""),
        user.manager = event.manager.as_deref().unwrap_or(""),
        http.host = %event.host,
        http.path = %event.path,
        route.name = %event.route,
        denial.would_deny_only = event.would_deny_only,
        denial.exempt_until = event.exempt_until.map(|t| t.to_rfc3339()).unwrap_or_default(),
        user.inactive = event.inactive,
        request.id = %event.request_id,
        client.address = %event.client_addr },
        "{message}"
    );
}

/// A gated route that needs every requirement (Clearance's own pages, forward-auth without a
/// matching route).
pub fn every_requirement(state: &AppState, path_prefix: &str, upstream: Option<&str>) -> Route {
    Route {
        host: None,
        path_prefix: path_prefix.to_owned(),
        upstream: upstream.map(str::to_owned),
        access: RouteAccess::Gated,
        requirements: state
            .settings()
            .policy
            .requirements
            .iter()
            .map(|r| r.id.clone())
            .collect(),
        preserve_host: false,
    }
}

/// Remembers the first admission of a person to a gated route (evidence for "access before
/// agreement"). Once it is on file (read with the standing) nothing is written. A failed write
/// does not refuse the person; it is logged in full so that the fact is not lost.
async fn note_first_access(
    state: &AppState,
    subject: &SubjectKey,
    on_file: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) {
    if on_file.is_some() {
        return;
    }
    if let Err(e) = state.store.mark_first_access(subject, now).await {
        tracing::error!(
            user.subject = %subject,
            user.first_access = %now.to_rfc3339(),
            error.message = %e,
            "first admitted access could not be stored"
        );
    }
}

fn route_label(route: &Route) -> String {
    format!(
        "{}{} -> {}",
        route.host.as_deref().unwrap_or("*"),
        route.path_prefix,
        route.upstream.as_deref().unwrap_or("(forward-auth)")
    )
}

/// The request being decided: where it was going, as seen by the client.
pub struct Target<'a> {
    pub host: String,
    pub path: NormalizedPath,
    /// Path and query, for coming back after sign-in and for "try again".
    pub original: String,
    pub route: &'a Route,
    /// A browser on Clearance's own reverse proxy, which can be shown the `warn` interstitial.
    pub interruptible: bool,
}

/// What a decision writes to the denial log and counts in the metrics (the block page shown
/// after nginx's redirect must not record the same refusal twice).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Recording {
    Record,
    /// A probe for `Expect: 100-continue` ([`super::expect`]): a refusal is the final answer and
    /// is recorded; an admission is not, because the request itself follows and records it.
    RefusalsOnly,
    Skip,
}

impl Recording {
    /// Whether a refusal is recorded and counted.
    fn refusals(self) -> bool {
        matches!(self, Self::Record | Self::RefusalsOnly)
    }

    /// Whether an admission (and what it notes: exemptions used, monitored requirements, the
    /// first access) is recorded and counted.
    fn admissions(self) -> bool {
        self == Self::Record
    }
}

/// What the gate decided for a request that may pass.
pub enum Admission {
    /// A public route: nobody is identified.
    Anonymous,
    /// A person or machine client who may pass.
    Person(SharedPrincipal),
}

impl Admission {
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Self::Anonymous => None,
            Self::Person(p) => Some(p),
        }
    }
}

/// The decision shared by the reverse proxy and forward-auth: public routes pass, induction
/// routes need a session, gated routes need a session and every requirement of the route.
/// A refusal is recorded in the denial log before it is returned.
pub async fn admit(
    req: &HttpRequest,
    state: &AppState,
    target: &Target<'_>,
    sign_in_url: SignInUrl<'_>,
    recording: Recording,
) -> Result<Admission, AppError> {
    if target.route.access == RouteAccess::Public {
        if recording.admissions() {
            count_decision(target.route, Outcome::Allow, "public");
        }
        return Ok(Admission::Anonymous);
    }
    let who = match authenticate(req, state, sign_in_url).await {
        Ok(who) => who,
        Err(e) => {
            if recording.refusals() {
                let (outcome, reason) = refusal_label(&e);
                count_decision(target.route, outcome, reason);
            }
            return Err(e);
        }
    };
    admit_authenticated(req, state, target, who, recording).await
}

/// Counts one decision for a route in `clearance_decisions_total`.
fn count_decision(route: &Route, outcome: Outcome, reason: &'static str) {
    let name = crate::metrics::route_name(route.host.as_deref(), &route.path_prefix);
    crate::metrics::decision(outcome, reason, &name);
}

/// The outcome and reason labels of a request that was not admitted.
fn refusal_label(e: &AppError) -> (Outcome, &'static str) {
    match e {
        AppError::Blocked(view) => (
            Outcome::Deny,
            view.items.first().map_or("none", |i| i.reason),
        ),
        AppError::Warning(view) => (
            Outcome::Warn,
            view.items.first().map_or("none", |i| i.reason),
        ),
        AppError::Deactivated => (Outcome::Deny, "inactive"),
        AppError::SignInRequired { .. } => (Outcome::SignIn, "sign_in_required"),
        AppError::InvalidSession { .. } => (Outcome::SignIn, "invalid_session"),
        AppError::BearerRejected { .. } => (Outcome::SignIn, "bearer_rejected"),
        AppError::IdentityRefused(_) => (Outcome::SignIn, "identity_refused"),
        AppError::StateUnavailable(_) => (Outcome::Error, "state_unavailable"),
        AppError::StateReadOnly(_) => (Outcome::Error, "state_read_only"),
        AppError::ProviderUnavailable(_) => (Outcome::Error, "provider_unavailable"),
        _ => (Outcome::Error, "other"),
    }
}

/// [`admit`] for a caller already identified (Clearance's own pages that need the session's
/// form token as well). Counts the decision in the metrics.
pub async fn admit_authenticated(
    req: &HttpRequest,
    state: &AppState,
    target: &Target<'_>,
    who: Authenticated,
    recording: Recording,
) -> Result<Admission, AppError> {
    let decided = decide(req, state, target, who, recording).await;
    let counted = match &decided {
        Ok((_, outcome, reason)) if recording.admissions() => Some((*outcome, *reason)),
        Err(e) if recording.refusals() => Some(refusal_label(e)),
        _ => None,
    };
    if let Some((outcome, reason)) = counted {
        count_decision(target.route, outcome, reason);
    }
    decided.map(|(admission, _, _)| admission)
}

/// The decision for an identified caller, with its outcome and reason labels.
async fn decide(
    req: &HttpRequest,
    state: &AppState,
    target: &Target<'_>,
    who: Authenticated,
    recording: Recording,
) -> Result<(Admission, Outcome, &'static str), AppError> {
    // One copy of the settings for the whole decision (a reload may swap them meanwhile).
    let settings = state.settings();
    let route = target.route;
    let Authenticated {
        principal,
        csrf,
        exempt,
        standing,
        bearer_issued,
        ..
    } = who;
    if exempt {
        tracing::info!(user.subject = %principal.subject, "exempt machine client admitted");
        return Ok((
            Admission::Person(principal),
            Outcome::Allow,
            "machine_exempt",
        ));
    }
    // Records, directory entry and exemptions: read with the session, or now in one round trip.
    let standing = match standing {
        Some(standing) => standing,
        None => state.store.decision_standing(&principal.subject).await?,
    };
    if let (Some(issued), Some(ended)) = (bearer_issued, standing.tokens_ended)
        && issued.is_none_or(|at| at <= ended)
    {
        return Err(AppError::BearerRejected {
            challenge: crate::auth::bearer::BearerError::InvalidToken(
                "the token was issued before its holder was signed out".into(),
            )
            .www_authenticate(),
            message:
                "the token was issued before its holder was signed out everywhere; get a new one"
                    .into(),
        });
    }
    let now = state.clock.now();
    let mut principal = principal;
    if let Some(person) = &standing.person {
        // The directory is authoritative for the person type.
        if person.user_type.is_some() && person.user_type != principal.person_type {
            principal.to_mut().person_type.clone_from(&person.user_type);
        }
    }
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let denial = |missing: Vec<Unmet>, would_deny_only: bool| {
        let mut event = DenialEvent::for_principal(&principal, now, missing);
        // Its own id, not the request id: a trusted proxy's request ids need not be unique.
        event.denial_id = uuid::Uuid::new_v4().to_string();
        event.host = target.host.clone();
        event.path = target.path.as_str().to_owned();
        event.route = route_label(route);
        event.request_id = request_id.clone();
        event.client_addr = forwarded::client_addr(req, &settings.trusted_proxies);
        event.user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        event.would_deny_only = would_deny_only;
        event
    };
    if standing.person.as_ref().is_some_and(|p| !p.active) {
        if recording.refusals() {
            let mut event = denial(Vec::new(), false);
            event.inactive = true;
            record_denial(state, &event, false).await;
        }
        return Err(AppError::Deactivated);
    }
    if route.access == RouteAccess::Induction {
        return Ok((Admission::Person(principal), Outcome::Allow, "induction"));
    }
    let first_access = standing.first_access;
    let records = &standing.records;
    let requirements = route
        .requirements
        .iter()
        .filter_map(|id| settings.policy.get(id));
    let evaluation = evaluate(requirements, &principal, records, now);
    match evaluation.decision() {
        Decision::Deny { missing } => {
            if let Some(until) = exempt_until(&standing.exemptions, &missing, now) {
                let reason = missing.first().map_or("none", |m| m.reason.as_str());
                // Admitted, and marked "exempt until" in the denial log and the logs.
                if recording.admissions() {
                    let mut event = denial(missing, true);
                    event.exempt_until = Some(until);
                    record_denial(state, &event, false).await;
                    note_first_access(state, &principal.subject, first_access, now).await;
                }
                return Ok((Admission::Person(principal), Outcome::Exempt, reason));
            }
            if recording.refusals() {
                let event = denial(missing.clone(), false);
                record_denial(state, &event, true).await;
            }
            let view = blocked_view(
                state,
                &principal,
                &target.host,
                &target.original,
                &missing,
                &request_id,
            );
            Err(AppError::Blocked(Box::new(view)))
        }
        Decision::Allow { would_deny } => {
            let due: Vec<Unmet> = would_deny
                .iter()
                .filter(|u| u.enforcement == Enforcement::Warn)
                .cloned()
                .collect();
            if let (true, Some(csrf), false) = (target.interruptible, csrf, due.is_empty()) {
                let ids: Vec<_> = due.iter().map(|u| u.requirement.clone()).collect();
                let seen = state
                    .store
                    .warnings_acknowledged(&principal.subject, &ids)
                    .await?;
                let pending: Vec<Unmet> = due
                    .into_iter()
                    .zip(seen)
                    .filter_map(|(u, seen)| (!seen).then_some(u))
                    .collect();
                if !pending.is_empty() {
                    if recording.refusals() {
                        record_denial(state, &denial(pending.clone(), true), false).await;
                    }
                    let blocked = blocked_view(
                        state,
                        &principal,
                        &target.host,
                        &target.original,
                        &pending,
                        &request_id,
                    );
                    return Err(AppError::Warning(Box::new(WarningView {
                        person: blocked.person,
                        host: blocked.host,
                        requirements: pending
                            .iter()
                            .map(|u| u.requirement.to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                        items: blocked.items,
                        csrf,
                        rd: target.original.clone(),
                    })));
                }
            }
            // Monitor items are logged on every request; acknowledged warnings are not.
            let monitored: Vec<Unmet> = would_deny
                .into_iter()
                .filter(|u| u.enforcement == Enforcement::Monitor)
                .collect();
            if recording.admissions() {
                if !monitored.is_empty() {
                    record_denial(state, &denial(monitored, true), false).await;
                }
                note_first_access(state, &principal.subject, first_access, now).await;
            }
            Ok((Admission::Person(principal), Outcome::Allow, "none"))
        }
    }
}

/// The catch-all handler: Clearance as the reverse proxy.
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
    let settings = state.settings();
    let route = settings
        .routes
        .find(&host, path.as_str())
        .ok_or(AppError::NoRoute)
        .http(&req)?;
    let upstream = route
        .upstream
        .as_deref()
        .ok_or(AppError::NoRoute)
        .http(&req)?;
    let original = match req.uri().query() {
        Some(q) => format!("{}?{q}", path.as_str()),
        None => path.as_str().to_owned(),
    };
    let target = Target {
        host,
        path,
        original,
        route,
        interruptible: super::error::is_browser(&req),
    };
    let probe = super::expect::is_probe(&req);
    let recording = if probe {
        Recording::RefusalsOnly
    } else {
        Recording::Record
    };
    let admission = admit(
        &req,
        &state,
        &target,
        &|| start_url(&target.original),
        recording,
    )
    .await
    .http(&req)?;
    if probe {
        return Ok(super::expect::continue_allowed());
    }
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    proxy::forward(
        &req,
        payload,
        proxy::Hop {
            upstream,
            preserve_host: route.preserve_host,
            path: &target.path,
            principal: admission.principal(),
            request_id: &request_id,
            trusted: &settings.trusted_proxies,
            extra_identity: &settings.identity_headers,
        },
        &upstreams,
    )
    .await
    .http(&req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_principal_is_read_in_place_and_copied_before_it_changes() {
        let session = Arc::new(Session {
            principal: Principal::bare(SubjectKey::parse("ann@example.com").unwrap()),
            id_token: None,
            access_token: String::new(),
            refresh_token: None,
            access_expires_at: None,
            created_at: Utc::now(),
            expires_at: Utc::now(),
            csrf: "c".into(),
            provider_sid: None,
            tokens_elided: true,
        });
        let mut shared = SharedPrincipal::Session(session.clone());
        assert!(std::ptr::eq(&*shared, &session.principal), "no copy");
        shared.to_mut().person_type = Some("contractor".into());
        assert_eq!(shared.person_type.as_deref(), Some("contractor"));
        assert_eq!(
            session.principal.person_type, None,
            "the session is not changed"
        );
        let mut own = SharedPrincipal::from(session.principal.clone());
        own.to_mut().name = Some("Ann".into());
        assert_eq!(own.name.as_deref(), Some("Ann"));
    }
}
