//! `[limits]`: request rates per client or credential, and the largest request head accepted.

use serde::{Deserialize, Serialize};

/// The largest request head actix-http reads at all (its `MAX_BUFFER_SIZE`); a larger head is
/// answered 431 before Clearance sees it, so `max_header_bytes` above it could never apply.
pub const ACTIX_MAX_HEAD_BYTES: u64 = 131_072;

fn default_sign_in_per_minute() -> u32 {
    60
}
fn default_sign_in_burst() -> u32 {
    30
}
fn default_api_per_minute() -> u32 {
    1200
}
fn default_api_burst() -> u32 {
    200
}
fn default_max_header_bytes() -> u64 {
    32 * 1024
}

/// `[limits]` as written in the file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Sign-in requests (`/oauth2/start`, `/oauth2/callback`, `/oauth2/sign_out`) per minute and
    /// client address; 0 turns the limit off.
    #[serde(default = "default_sign_in_per_minute")]
    pub sign_in_per_minute: u32,
    /// How many sign-in requests a client may send at once before the rate applies.
    #[serde(default = "default_sign_in_burst")]
    pub sign_in_burst: u32,
    /// Machine requests (`/.clearance/api/v1`, `/scim`, `/xapi`, `/webhooks`) per minute and
    /// credential (or client address when the credential is not a known one); 0 turns it off.
    #[serde(default = "default_api_per_minute")]
    pub api_per_minute: u32,
    /// How many machine requests a credential may send at once before the rate applies.
    #[serde(default = "default_api_burst")]
    pub api_burst: u32,
    /// Largest request head (request line and headers), bytes; larger ones get 431. 0 leaves only
    /// actix-http's own limit (128 KiB, and at most 96 headers).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: u64,
}

impl Default for LimitsFile {
    fn default() -> Self {
        Self {
            sign_in_per_minute: default_sign_in_per_minute(),
            sign_in_burst: default_sign_in_burst(),
            api_per_minute: default_api_per_minute(),
            api_burst: default_api_burst(),
            max_header_bytes: default_max_header_bytes(),
        }
    }
}

/// One rate: `per_minute` requests a minute after a burst of `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

/// `[limits]`, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitSettings {
    /// `None`: sign-in is not rate limited.
    pub sign_in: Option<Rate>,
    /// `None`: the machine endpoints are not rate limited.
    pub api: Option<Rate>,
    /// `None`: only actix-http's own limit on the request head.
    pub max_header_bytes: Option<u64>,
}

fn rate(
    problems: &mut Vec<(String, String)>,
    class: &str,
    per_minute: u32,
    burst: u32,
) -> Option<Rate> {
    if per_minute == 0 {
        return None;
    }
    if burst == 0 {
        problems.push((
            format!("limits.{class}_burst"),
            format!(
                "must be at least 1 while limits.{class}_per_minute is set (0 turns the limit off)"
            ),
        ));
        return None;
    }
    Some(Rate { per_minute, burst })
}

/// Checks `[limits]`; errors name the key.
pub fn validate(f: &LimitsFile) -> Result<LimitSettings, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let sign_in = rate(
        &mut problems,
        "sign_in",
        f.sign_in_per_minute,
        f.sign_in_burst,
    );
    let api = rate(&mut problems, "api", f.api_per_minute, f.api_burst);
    let max_header_bytes = match f.max_header_bytes {
        0 => None,
        n if !(1024..=ACTIX_MAX_HEAD_BYTES).contains(&n) => {
            problems.push((
                "limits.max_header_bytes".into(),
                format!(
                    "must be between 1024 and {ACTIX_MAX_HEAD_BYTES} (actix-http refuses larger heads itself), or 0; got {n}"
                ),
            ));
            None
        }
        n => Some(n),
    };
    if problems.is_empty() {
        Ok(LimitSettings {
            sign_in,
            api,
            max_header_bytes,
        })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_limit_sign_in_api_and_heads() {
        let s = validate(&LimitsFile::default()).unwrap();
        assert_eq!(
            s.sign_in,
            Some(Rate {
                per_minute: 60,
                burst: 30
            })
        );
        assert!(s.api.is_some());
        assert_eq!(s.max_header_bytes, Some(32 * 1024));
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let s = validate(&LimitsFile {
            sign_in_per_minute: 0,
            api_per_minute: 0,
            max_header_bytes: 0,
            ..LimitsFile::default()
        })
        .unwrap();
        assert_eq!(s, LimitSettings::default());
    }

    #[test]
    fn errors_name_the_key() {
        let problems = validate(&LimitsFile {
            api_burst: 0,
            max_header_bytes: 500_000,
            ..LimitsFile::default()
        })
        .unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["limits.api_burst", "limits.max_header_bytes"]);
    }
}
