//! `Session`: what the store keeps for a signed-in person (who they are, their provider tokens,
//! when the session and its access token end), and the token-free copy the decision cache holds.

use super::Principal;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the store keeps for a signed-in person.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    pub principal: Principal,
    pub id_token: Option<String>,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Token for the forms Clearance serves to this session.
    pub csrf: String,
    /// The provider's session id (the ID token's `sid`), which back-channel logout names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_sid: Option<String>,
    /// True on the copy the decision cache keeps ([`Session::without_tokens`]): its provider
    /// tokens were left out to save memory. Such a copy is never written back; whoever needs the
    /// tokens (refresh, sign-out) reads the session from the store again.
    #[serde(skip)]
    pub tokens_elided: bool,
}

impl Session {
    /// Reads a session as the store keeps it.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The copy the decision cache keeps: everything a decision reads, without the provider's
    /// tokens (about 2 KB a session with typical JWTs).
    pub fn without_tokens(&self) -> Self {
        Self {
            principal: self.principal.clone(),
            id_token: None,
            access_token: String::new(),
            refresh_token: None,
            access_expires_at: self.access_expires_at,
            created_at: self.created_at,
            expires_at: self.expires_at,
            csrf: self.csrf.clone(),
            provider_sid: self.provider_sid.clone(),
            tokens_elided: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SubjectKey;

    fn session() -> Session {
        Session {
            principal: Principal::bare(SubjectKey::parse("a@example.com").unwrap()),
            id_token: Some("id".into()),
            access_token: "at".into(),
            refresh_token: Some("rt".into()),
            access_expires_at: None,
            created_at: Utc::now(),
            expires_at: Utc::now(),
            csrf: "c".into(),
            provider_sid: Some("sid".into()),
            tokens_elided: false,
        }
    }

    #[test]
    fn the_cached_copy_has_no_tokens_and_says_so() {
        let full = session();
        let kept = full.without_tokens();
        assert!(kept.tokens_elided);
        assert_eq!(
            (
                kept.id_token,
                kept.access_token.as_str(),
                kept.refresh_token
            ),
            (None, "", None)
        );
        assert_eq!(kept.principal, full.principal);
        assert_eq!(kept.csrf, full.csrf);
        assert_eq!(kept.provider_sid, full.provider_sid);
        assert!(!full.tokens_elided);
    }

    #[test]
    fn a_stored_session_is_never_read_as_elided() {
        let json = serde_json::to_string(&session().without_tokens()).unwrap();
        assert!(!json.contains("tokens_elided"), "{json}");
        assert!(!Session::from_json(&json).unwrap().tokens_elided);
    }
}
