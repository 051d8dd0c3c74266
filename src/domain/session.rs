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
    /// True on the copy the decision cache keeps (`store::packed`): its provider tokens,
    /// provider session id and the principal's `provider_sub` (empty) were left out to save
    /// memory. Such a copy is never written back; whoever needs them (refresh, sign-out) reads
    /// the session from the store again.
    #[serde(skip)]
    pub tokens_elided: bool,
}

impl Session {
    /// Reads a session as the store keeps it.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
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
    fn a_stored_session_is_never_read_as_elided() {
        let mut elided = session();
        elided.tokens_elided = true;
        let json = serde_json::to_string(&elided).unwrap();
        assert!(!json.contains("tokens_elided"), "{json}");
        assert!(!Session::from_json(&json).unwrap().tokens_elided);
    }
}
