//! Ending sessions from outside the browser: an admin's "sign out everywhere" and OpenID Connect
//! Back-Channel Logout 1.0 (the logout token's claims, checked after its signature).

use crate::domain::SubjectKey;
use crate::store::{SessionsOf, Store, StoreError, audit_event};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::time::Duration;

/// The `events` member a logout token must carry.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// How old (by `iat`) a logout token may be. A `jti` is remembered for this long plus twice
/// the clock leeway, so a replay is refused either way.
pub const LOGOUT_TOKEN_MAX_AGE: Duration = Duration::from_secs(600);

/// What a valid logout token asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogoutRequest {
    /// The sessions to end: of the provider session `sid` when named, else of `sub`.
    pub which: SessionsOf,
    pub jti: String,
    pub sub: Option<String>,
}

/// Why a logout token's claims are refused (its signature, issuer and audience were checked
/// before).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogoutTokenError {
    #[error("the logout token has no iat")]
    NoIssuedAt,
    #[error("the logout token was issued too long ago or in the future")]
    Stale,
    #[error("the logout token has no jti")]
    NoJti,
    #[error("the logout token's events do not contain {BACKCHANNEL_LOGOUT_EVENT}")]
    NoLogoutEvent,
    #[error("the logout token names neither sub nor sid")]
    NoSubject,
    #[error("a logout token must not contain a nonce")]
    Nonce,
    #[error("the logout token was already used")]
    Replayed,
}

/// Checks the claims Back-Channel Logout 1.0 adds to a signed JWT: `iat` present and within
/// [`LOGOUT_TOKEN_MAX_AGE`] (give or take `leeway`), `jti`, the logout event, `sub` and/or `sid`,
/// and no `nonce`.
pub fn logout_request(
    claims: &Map<String, Value>,
    now: DateTime<Utc>,
    leeway: Duration,
) -> Result<LogoutRequest, LogoutTokenError> {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    if claims.contains_key("nonce") {
        return Err(LogoutTokenError::Nonce);
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(LogoutTokenError::NoIssuedAt)?;
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(0);
    let max_age = i64::try_from(LOGOUT_TOKEN_MAX_AGE.as_secs()).unwrap_or(600);
    let now = now.timestamp();
    if iat > now + leeway || iat < now - max_age - leeway {
        return Err(LogoutTokenError::Stale);
    }
    let jti = text("jti").ok_or(LogoutTokenError::NoJti)?;
    let has_event = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT))
        .is_some_and(Value::is_object);
    if !has_event {
        return Err(LogoutTokenError::NoLogoutEvent);
    }
    let sub = text("sub");
    let which = match (text("sid"), &sub) {
        (Some(sid), _) => SessionsOf::ProviderSession(sid),
        (None, Some(sub)) => SessionsOf::ProviderSubject(sub.clone()),
        (None, None) => return Err(LogoutTokenError::NoSubject),
    };
    Ok(LogoutRequest { which, jti, sub })
}

/// How long a logout token's `jti` is remembered.
pub fn jti_memory(leeway: Duration) -> Duration {
    LOGOUT_TOKEN_MAX_AGE + leeway * 2
}

/// How long the end of a person's bearer tokens is kept: longer than any access token lives
/// (an hour is usual; docs/SECURITY.md asks for less than this).
pub const TOKENS_ENDED_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Ends every session of the set on every instance, and every bearer token their owners were
/// issued until `now`, and audits it as `sessions.ended` (`how`: `sign_out_everywhere` or
/// `backchannel_logout`). Returns how many sessions were live.
pub async fn end_sessions(
    store: &dyn Store,
    which: &SessionsOf,
    actor: &str,
    how: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let ended = store.end_sessions(which).await?;
    for subject in &ended.subjects {
        store.end_tokens(subject, now, TOKENS_ENDED_KEPT).await?;
    }
    let ended = ended.live;
    let subject = match which {
        SessionsOf::Subject(s) => Some(s.as_str().to_owned()),
        SessionsOf::ProviderSubject(sub) => Some(sub.clone()),
        SessionsOf::ProviderSession(_) => None,
    };
    let event = audit_event::sessions_ended(now, actor, subject.as_deref(), how, ended);
    store.append_audit(&event).await?;
    Ok(ended)
}

/// [`end_sessions`] for every session of a person.
pub async fn sign_out_everywhere(
    store: &dyn Store,
    subject: &SubjectKey,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    end_sessions(
        store,
        &SessionsOf::Subject(subject.clone()),
        actor,
        "sign_out_everywhere",
        now,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::{FollowUpStore, SessionOwner, SessionStore};
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn claims(extra: Value) -> Map<String, Value> {
        let mut base = json!({
            "iss": "https://idp", "aud": "clearance", "iat": now().timestamp(),
            "jti": "j1", "sub": "u1", "sid": "s1",
            "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base.as_object().unwrap().clone()
    }

    fn check(extra: Value) -> Result<LogoutRequest, LogoutTokenError> {
        logout_request(&claims(extra), now(), Duration::from_secs(60))
    }

    #[test]
    fn a_valid_token_names_the_provider_session_first() {
        let r = check(json!({})).unwrap();
        assert_eq!(r.which, SessionsOf::ProviderSession("s1".into()));
        assert_eq!(r.jti, "j1");
        let r = check(json!({"sid": null})).unwrap();
        assert_eq!(r.which, SessionsOf::ProviderSubject("u1".into()));
        let r = check(json!({"sub": null})).unwrap();
        assert_eq!(r.which, SessionsOf::ProviderSession("s1".into()));
    }

    #[test]
    fn refusals() {
        use LogoutTokenError as E;
        assert_eq!(check(json!({"nonce": "n"})), Err(E::Nonce));
        assert_eq!(check(json!({"iat": null})), Err(E::NoIssuedAt));
        let old = now().timestamp() - 700 - 60;
        assert_eq!(check(json!({"iat": old})), Err(E::Stale));
        let future = now().timestamp() + 120;
        assert_eq!(check(json!({"iat": future})), Err(E::Stale));
        assert_eq!(check(json!({"jti": null})), Err(E::NoJti));
        assert_eq!(check(json!({"events": null})), Err(E::NoLogoutEvent));
        assert_eq!(
            check(json!({"events": {"http://example.com/other": {}}})),
            Err(E::NoLogoutEvent)
        );
        assert_eq!(
            check(json!({"events": {BACKCHANNEL_LOGOUT_EVENT: "yes"}})),
            Err(E::NoLogoutEvent)
        );
        assert_eq!(check(json!({"sub": null, "sid": null})), Err(E::NoSubject));
    }

    #[tokio::test]
    async fn sign_out_everywhere_ends_only_that_persons_sessions_and_audits_it() {
        let store = MemoryStore::default();
        let owner = |subject: &str, sid: &str| SessionOwner {
            subject: SubjectKey::parse(subject).unwrap(),
            provider_sub: subject.to_owned(),
            provider_sid: Some(sid.to_owned()),
        };
        let ttl = Duration::from_secs(60);
        store
            .put_session("a1", "{}", ttl, Some(&owner("ann@x", "p1")))
            .await
            .unwrap();
        store
            .put_session("a2", "{}", ttl, Some(&owner("ann@x", "p2")))
            .await
            .unwrap();
        store
            .put_session("b1", "{}", ttl, Some(&owner("bob@x", "p3")))
            .await
            .unwrap();
        let ann = SubjectKey::parse("ann@x").unwrap();
        let ended = sign_out_everywhere(&store, &ann, "admin-token:ops", now())
            .await
            .unwrap();
        assert_eq!(ended, 2);
        assert_eq!(store.get_session("a1").await.unwrap(), None);
        assert_eq!(store.get_session("a2").await.unwrap(), None);
        assert!(store.get_session("b1").await.unwrap().is_some());
        let chain = store
            .audit_chain(&crate::domain::audit::ChainId::Subject(ann.to_string()))
            .await
            .unwrap();
        let last = chain.lines.last().unwrap();
        assert!(last.contains("sessions.ended"), "{last}");
        assert!(last.contains("\"ended\":2"), "{last}");

        let which = SessionsOf::ProviderSession("p3".into());
        let ended = end_sessions(&store, &which, "oidc", "backchannel_logout", now())
            .await
            .unwrap();
        assert_eq!(ended, 1);
        assert_eq!(store.get_session("b1").await.unwrap(), None);

        // Their bearer tokens end with them: Ann's and Bob's, nobody else's.
        let bob = SubjectKey::parse("bob@x").unwrap();
        let carl = SubjectKey::parse("carl@x").unwrap();
        for (who, ended) in [(&ann, Some(now())), (&bob, Some(now())), (&carl, None)] {
            assert_eq!(
                store.standing(who).await.unwrap().tokens_ended,
                ended,
                "{who}"
            );
        }
    }
}
