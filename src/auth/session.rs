//! Server-side sessions in the store behind an opaque, encrypted and authenticated cookie, plus the
//! short-lived login-state cookie that binds a sign-in to the browser that started it.

use crate::config::SessionSettings;
use crate::domain::SubjectKey;
use crate::store::{SessionOwner, SharedStore, Standing, StoreError, parse_session};
use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, CookieJar, SameSite, time};
use actix_web::http::header::{self, HeaderMap};
use base64::Engine as _;
use chrono::Utc;
use percent_encoding::percent_decode_str;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// How long a started sign-in may take.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);

pub use crate::domain::Session;

impl Session {
    /// Whose the session is, for ending all of a person's sessions at once.
    pub fn owner(&self) -> SessionOwner {
        SessionOwner {
            subject: self.principal.subject.clone(),
            provider_sub: self.principal.provider_sub.clone(),
            provider_sid: self.provider_sid.clone(),
        }
    }
}

/// The result of looking for a session on a request.
pub enum Lookup {
    /// No session cookie at all.
    Missing,
    /// A cookie that fails decryption: tampered or forged.
    Invalid,
    /// A genuine cookie whose session has ended (expired, signed out, or lost with the store).
    Ended,
    Found {
        id: String,
        /// Without its tokens when the decision cache served it: see [`Sessions::with_tokens`].
        session: Arc<Session>,
        /// The person's standing, when the cookie named them and it was read in the same round
        /// trip as the session (see [`Sessions::lookup`]).
        standing: Option<Arc<Standing>>,
    },
}

/// A cookie value that may be present, absent, or not ours.
pub enum CookieValue {
    Missing,
    Invalid,
    Value(String),
}

/// Creates, finds and ends sessions.
#[derive(Clone)]
pub struct Sessions {
    store: SharedStore,
    settings: SessionSettings,
    /// Session cookies opened lately: see [`Opened`].
    opened: Arc<quick_cache::sync::Cache<String, Arc<Opened>>>,
}

/// A session cookie's sealed value, opened: its id, the subject it names and the id's storage
/// key. Kept for the most recently seen cookies ([`OPENED_COOKIES`]), keyed by the whole sealed
/// value as the browser sent it, so that a person's next request skips the decryption and the
/// hash (a fifth of a forward-auth decision). Opening is a pure function of the value and the
/// cookie key, which is never reloaded, and the sealed value is as much a credential as the id
/// it carries; forged or tampered values are never kept.
struct Opened {
    id: String,
    subject: Option<SubjectKey>,
    key: String,
}

/// How many opened session cookies are kept (about half a KiB each).
const OPENED_COOKIES: usize = 1024;

/// 256 random bits, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Opens a sealed cookie value (as the browser sends it) named `name`: the plaintext when it was
/// sealed with `key` under that name, `None` when it is forged, tampered with or not base64.
pub fn open_sealed(key: &actix_web::cookie::Key, name: &str, value: &str) -> Option<String> {
    let jar = CookieJar::new();
    jar.private(key)
        .decrypt(Cookie::new(name.to_owned(), value.to_owned()))
        .map(|c| c.value().to_owned())
}

/// The value of the first cookie called exactly `name` in the `Cookie` headers, read as
/// actix-web's `HttpRequest::cookie` reads the value (trimmed, one pair of surrounding quotes
/// removed, percent-decoded; pairs whose value does not decode are skipped), without parsing
/// and copying every other cookie of the request. The NAME is compared as sent, never
/// percent-decoded: `%5Fclearance` is not `_clearance` (a cookie another site or script set
/// under an encoded spelling must not be taken for the session).
pub fn request_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    for header in headers.get_all(header::COOKIE) {
        let Ok(text) = std::str::from_utf8(header.as_bytes()) else {
            continue;
        };
        for pair in text.split(';') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            if key.trim() != name {
                continue;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
                .trim();
            if let Ok(value) = percent_decode_str(value).decode_utf8() {
                return Some(value);
            }
        }
    }
    None
}

/// A session cookie's sealed value: the session id, then `.` and the subject (ids are
/// base64url, without dots). A value without a readable subject is an id alone.
fn cookie_parts(value: &str) -> (&str, Option<SubjectKey>) {
    match value.split_once('.') {
        Some((id, subject)) => (id, SubjectKey::parse(subject).ok()),
        None => (value, None),
    }
}

/// Store key material for a session id, so that a store dump does not hold usable ids.
fn storage_id(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

impl Sessions {
    pub fn new(store: SharedStore, settings: SessionSettings) -> Self {
        Self {
            store,
            settings,
            opened: Arc::new(quick_cache::sync::Cache::new(OPENED_COOKIES)),
        }
    }

    /// The request's session cookie, opened (see [`Opened`]): `None` when there is none,
    /// `Some(None)` when it is not ours.
    fn opened(&self, req: &HttpRequest) -> Option<Option<Arc<Opened>>> {
        let name = &self.settings.cookie_name;
        let sealed = request_cookie(req.headers(), name)?;
        if let Some(opened) = self.opened.get(sealed.as_ref()) {
            return Some(Some(opened));
        }
        let Some(value) = open_sealed(&self.settings.key, name, &sealed) else {
            return Some(None);
        };
        let (id, subject) = cookie_parts(&value);
        let opened = Arc::new(Opened {
            id: id.to_owned(),
            subject,
            key: storage_id(id),
        });
        self.opened.insert(sealed.into_owned(), opened.clone());
        Some(Some(opened))
    }

    pub fn cookie_name(&self) -> &str {
        &self.settings.cookie_name
    }

    pub fn login_cookie_name(&self) -> String {
        format!("{}_login", self.settings.cookie_name)
    }

    pub fn lifetime(&self) -> Duration {
        self.settings.lifetime
    }

    /// A short, non-reversible handle for logs.
    pub fn log_id(id: &str) -> String {
        storage_id(id)[..12].to_owned()
    }

    fn seal(&self, name: String, value: String, max_age: Option<Duration>) -> Cookie<'static> {
        let mut cookie = Cookie::new(name.clone(), value);
        cookie.set_http_only(true);
        cookie.set_secure(self.settings.secure);
        cookie.set_same_site(SameSite::Lax);
        cookie.set_path("/");
        if let Some(d) = &self.settings.domain {
            cookie.set_domain(d.clone());
        }
        if let Some(age) = max_age {
            cookie.set_max_age(time::Duration::seconds(
                i64::try_from(age.as_secs()).unwrap_or(i64::MAX),
            ));
        }
        let mut jar = CookieJar::new();
        jar.private_mut(&self.settings.key).add(cookie.clone());
        jar.get(&name).cloned().unwrap_or(cookie)
    }

    fn open(&self, req: &HttpRequest, name: &str) -> CookieValue {
        let Some(value) = request_cookie(req.headers(), name) else {
            return CookieValue::Missing;
        };
        match open_sealed(&self.settings.key, name, &value) {
            Some(value) => CookieValue::Value(value),
            None => CookieValue::Invalid,
        }
    }

    /// A cookie that removes `name` from the browser.
    pub fn removal(&self, name: String) -> Cookie<'static> {
        let mut cookie = Cookie::new(name, "");
        cookie.set_path("/");
        cookie.set_http_only(true);
        cookie.set_secure(self.settings.secure);
        cookie.set_same_site(SameSite::Lax);
        if let Some(d) = &self.settings.domain {
            cookie.set_domain(d.clone());
        }
        cookie.make_removal();
        cookie
    }

    /// Finds the request's session. Store failures are errors (the caller fails closed).
    ///
    /// The cookie names the session's subject beside its id (cookies sealed before it did name
    /// only the id), so that the subject's standing is read in the same round trip as the
    /// session; it is returned only when the session turns out to be that subject's.
    pub async fn lookup(&self, req: &HttpRequest) -> Result<Lookup, StoreError> {
        let opened = match self.opened(req) {
            None => return Ok(Lookup::Missing),
            Some(None) => return Ok(Lookup::Invalid),
            Some(Some(opened)) => opened,
        };
        let (session, standing) = match &opened.subject {
            Some(subject) => {
                let (session, standing) = self
                    .store
                    .session_and_standing(&opened.key, subject)
                    .await?;
                (session, Some(standing))
            }
            None => (self.stored(&opened.key).await?, None),
        };
        let Some(session) = session else {
            return Ok(Lookup::Ended);
        };
        if session.expires_at <= Utc::now() {
            return Ok(Lookup::Ended);
        }
        let standing =
            standing.filter(|_| opened.subject.as_ref() == Some(&session.principal.subject));
        Ok(Lookup::Found {
            id: opened.id.clone(),
            session,
            standing,
        })
    }

    /// The session as stored, tokens included (never from the decision cache).
    async fn stored(&self, key: &str) -> Result<Option<Arc<Session>>, StoreError> {
        let json = self.store.get_session(key).await?;
        json.as_deref().map(parse_session).transpose()
    }

    /// `session` (found under the cookie id `id`) with its provider tokens: itself when it has
    /// them, else read again from the store. `None` when it ended meanwhile or is no longer the
    /// same person's.
    pub async fn with_tokens(
        &self,
        id: &str,
        session: Arc<Session>,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        if !session.tokens_elided {
            return Ok(Some(session));
        }
        Ok(self
            .stored(&storage_id(id))
            .await?
            .filter(|stored| stored.principal.subject == session.principal.subject))
    }

    /// Stores a new session under a fresh id and returns the cookie that carries it (the id
    /// and the session's subject, sealed).
    pub async fn create(&self, session: &Session) -> Result<(String, Cookie<'static>), StoreError> {
        let id = random_token();
        self.save(&id, session).await?;
        let cookie = self.seal(
            self.settings.cookie_name.clone(),
            format!("{id}.{}", session.principal.subject),
            Some(self.settings.lifetime),
        );
        Ok((id, cookie))
    }

    /// Writes a session back, keeping its absolute expiry.
    pub async fn save(&self, id: &str, session: &Session) -> Result<(), StoreError> {
        if session.tokens_elided {
            // Writing the cache's copy back would lose the tokens: a bug, refused.
            return Err(StoreError::Corrupt(
                "a session without its tokens cannot be written back".into(),
            ));
        }
        let ttl = (session.expires_at - Utc::now())
            .to_std()
            .unwrap_or(Duration::from_secs(1));
        let json =
            serde_json::to_string(session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store
            .put_session(&storage_id(id), &json, ttl, Some(&session.owner()))
            .await
    }

    pub async fn destroy(&self, id: &str) -> Result<(), StoreError> {
        self.store.delete_session(&storage_id(id)).await
    }

    /// The cookie that binds a login in progress to this browser.
    pub fn login_cookie(&self, state: &str) -> Cookie<'static> {
        self.seal(self.login_cookie_name(), state.to_owned(), Some(LOGIN_TTL))
    }

    /// The login state this browser started, if any.
    pub fn login_state(&self, req: &HttpRequest) -> CookieValue {
        self.open(req, &self.login_cookie_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Principal;
    use crate::domain::SubjectKey;
    use actix_web::cookie::Key;

    /// `request_cookie` finds what actix-web's own cookie parsing finds, for every shape of
    /// `Cookie` header a client may send.
    #[test]
    fn request_cookie_reads_like_actix() {
        let cases: &[&[&str]] = &[
            &["_clearance=abc; theme=dark"],
            &["theme=dark;_clearance=abc"],
            &["  _clearance = abc  ; x=1"],
            &["_clearance=\"abc\""],
            &["_clearance=\""],
            &["_clearance=a%2Bb%3D"],
            &["_clearance=%FF; _clearance=second"],
            &["_clearance_login=other"],
            &["_clearance"],
            &["=nameless; _clearance=x=y"],
            &["a=1", "_clearance=in-second-header"],
            &["_clearance=first", "_clearance=second"],
            &[""],
            &[],
        ];
        for headers in cases {
            let mut req = actix_web::test::TestRequest::default();
            for h in *headers {
                req = req.append_header((header::COOKIE, *h));
            }
            let req = req.to_http_request();
            let ours = request_cookie(req.headers(), "_clearance").map(Cow::into_owned);
            let actix = req.cookie("_clearance").map(|c| c.value().to_owned());
            assert_eq!(ours, actix, "Cookie headers {headers:?}");
        }
    }

    #[test]
    fn an_encoded_spelling_of_the_name_is_not_the_session_cookie() {
        for header in [
            "%5Fclearance=encoded-name",
            "%5fclearance=encoded-name",
            "_clearanc%65=encoded-name",
            "%5F%63learance=x",
        ] {
            let req = actix_web::test::TestRequest::default()
                .insert_header((header::COOKIE, header))
                .to_http_request();
            assert_eq!(
                request_cookie(req.headers(), "_clearance"),
                None,
                "{header}"
            );
        }
    }

    fn sealed(key: &Key, name: &str, value: &str) -> String {
        let mut jar = CookieJar::new();
        jar.private_mut(key)
            .add(Cookie::new(name.to_owned(), value.to_owned()));
        jar.get(name).unwrap().value().to_owned()
    }

    #[test]
    fn cookie_values_carry_the_id_and_maybe_the_subject() {
        let (id, subject) = cookie_parts("abc-_123.alice@example.com");
        assert_eq!(id, "abc-_123");
        assert_eq!(
            subject.map(String::from).as_deref(),
            Some("alice@example.com")
        );
        // Sealed before the subject was added: the id alone.
        assert!(matches!(cookie_parts("abc-_123"), ("abc-_123", None)));
        // A subject that is not one (never sealed by us): the id, read without a standing.
        assert!(matches!(cookie_parts("abc.{x}"), ("abc", None)));
        assert!(matches!(cookie_parts("abc."), ("abc", None)));
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_name() {
        let key = Key::generate();
        let value = sealed(&key, "clearance", "session-id");
        assert_ne!(value, "session-id");
        assert_eq!(
            open_sealed(&key, "clearance", &value).as_deref(),
            Some("session-id")
        );
        assert_eq!(open_sealed(&Key::generate(), "clearance", &value), None);
        assert_eq!(open_sealed(&key, "clearance_login", &value), None);
        assert_eq!(open_sealed(&key, "clearance", "session-id"), None);
        assert_eq!(open_sealed(&key, "clearance", ""), None);
        let mut tampered = value.into_bytes();
        tampered[5] ^= 1;
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        assert_eq!(open_sealed(&key, "clearance", &tampered), None);
    }

    #[test]
    fn sessions_read_back_from_json() {
        let now = Utc::now();
        let session = Session {
            principal: Principal::bare(SubjectKey::parse("p@example.com").unwrap()),
            id_token: None,
            access_token: "at".into(),
            refresh_token: None,
            access_expires_at: None,
            created_at: now,
            expires_at: now,
            csrf: "c".into(),
            provider_sid: Some("sid".into()),
            tokens_elided: false,
        };
        let json = serde_json::to_string(&session).unwrap();
        let back = Session::from_json(&json).unwrap();
        assert_eq!(back.principal.subject, session.principal.subject);
        assert_eq!(back.provider_sid.as_deref(), Some("sid"));
        assert!(Session::from_json("{}").is_err());
        assert!(Session::from_json("not json").is_err());
    }

    fn sessions() -> Sessions {
        Sessions::new(
            std::sync::Arc::new(crate::store::memory::MemoryStore::new(10)),
            SessionSettings {
                cookie_name: "clearance".into(),
                key: Key::generate(),
                secure: true,
                domain: None,
                lifetime: Duration::from_secs(3600),
            },
        )
    }

    fn full_session(subject: &str) -> Session {
        let now = Utc::now();
        Session {
            principal: Principal::bare(SubjectKey::parse(subject).unwrap()),
            id_token: Some("id-token".into()),
            access_token: "at".into(),
            refresh_token: Some("rt".into()),
            access_expires_at: None,
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
            csrf: "c".into(),
            provider_sid: None,
            tokens_elided: false,
        }
    }

    #[tokio::test]
    async fn the_cache_copy_is_never_written_back_and_tokens_are_read_again() {
        let sessions = sessions();
        let full = full_session("p@example.com");
        sessions.save("id1", &full).await.unwrap();
        let mut kept = full.clone();
        kept.tokens_elided = true;
        let kept = Arc::new(kept);
        assert!(
            sessions.save("id1", &kept).await.is_err(),
            "would lose the tokens"
        );
        let again = sessions
            .with_tokens("id1", kept.clone())
            .await
            .unwrap()
            .unwrap();
        assert!(!again.tokens_elided);
        assert_eq!(again.id_token.as_deref(), Some("id-token"));
        assert_eq!(again.refresh_token.as_deref(), Some("rt"));
        // A full session is returned as it is, without reading the store.
        let same = Arc::new(full_session("p@example.com"));
        let back = sessions
            .with_tokens("gone", same.clone())
            .await
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(&same, &back));
        // Ended meanwhile, or someone else's under that id: nothing.
        assert!(
            sessions
                .with_tokens("gone", kept.clone())
                .await
                .unwrap()
                .is_none()
        );
        let mut other = full_session("q@example.com");
        other.tokens_elided = true;
        let other = Arc::new(other);
        assert!(sessions.with_tokens("id1", other).await.unwrap().is_none());
    }

    fn with_cookie(value: &str) -> HttpRequest {
        actix_web::test::TestRequest::default()
            .insert_header((header::COOKIE, format!("other=1; clearance={value}")))
            .to_http_request()
    }

    #[tokio::test]
    async fn opened_cookies_are_kept_and_forged_ones_never() {
        let other = sessions();
        let sessions = sessions();
        let (id, cookie) = sessions
            .create(&full_session("p@example.com"))
            .await
            .unwrap();
        for _ in 0..2 {
            let opened = sessions
                .opened(&with_cookie(cookie.value()))
                .unwrap()
                .unwrap();
            assert_eq!(opened.id, id);
            assert_eq!(
                opened.subject.as_ref().map(SubjectKey::as_str),
                Some("p@example.com")
            );
            assert_eq!(opened.key, storage_id(&id));
            match sessions.lookup(&with_cookie(cookie.value())).await.unwrap() {
                Lookup::Found {
                    id: found, session, ..
                } => {
                    assert_eq!(found, id);
                    assert_eq!(session.principal.subject.as_str(), "p@example.com");
                }
                _ => panic!("the session is found"),
            }
        }
        assert_eq!(sessions.opened.len(), 1, "kept once");
        // One character changed: refused, every time, and never kept.
        let mut forged = cookie.value().to_owned();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        for _ in 0..2 {
            assert!(sessions.opened(&with_cookie(&forged)).unwrap().is_none());
            assert!(matches!(
                sessions.lookup(&with_cookie(&forged)).await.unwrap(),
                Lookup::Invalid
            ));
        }
        assert_eq!(sessions.opened.len(), 1);
        // Sealed under another key: refused although the same id and subject are inside.
        let elsewhere = other.seal("clearance".into(), format!("{id}.p@example.com"), None);
        assert!(
            sessions
                .opened(&with_cookie(elsewhere.value()))
                .unwrap()
                .is_none()
        );
        assert!(
            sessions
                .opened(&actix_web::test::TestRequest::default().to_http_request())
                .is_none()
        );
    }
}
