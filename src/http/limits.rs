//! Limits on hostile volume: per-client sign-in rates, per-credential machine-API rates (both
//! keyed `governor` limiters whose memory is trimmed as they go), and the size of a request head.

use super::error::AppError;
use crate::config::Settings;
use crate::config::limits::{LimitSettings, Rate};
use actix_web::HttpRequest;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Checks between two trims of the keyed limiters' memory.
const TRIM_EVERY: u64 = 4096;

/// Which limit a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// `/oauth2/start`, `/oauth2/callback`, `/oauth2/sign_out`: per client address.
    SignIn,
    /// `/.clearance/api/v1`, `/scim`, `/xapi`, `/webhooks`: per credential or client address.
    Api,
}

impl Class {
    /// The class of a path, if it is limited at all.
    pub fn of(path: &str) -> Option<Self> {
        const SIGN_IN: [&str; 3] = ["/oauth2/start", "/oauth2/callback", "/oauth2/sign_out"];
        const API: [&str; 4] = [
            "/.clearance/api/",
            "/.clearance/scim/",
            "/.clearance/xapi/",
            "/.clearance/webhooks/",
        ];
        if SIGN_IN.contains(&path) {
            Some(Self::SignIn)
        } else if API.iter().any(|p| path.starts_with(p)) {
            Some(Self::Api)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::SignIn => "sign_in",
            Self::Api => "api",
        }
    }
}

struct Limiter {
    limiter: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
    refused: AtomicU64,
}

impl Limiter {
    fn new(rate: Rate) -> Option<Self> {
        let burst = NonZeroU32::new(rate.burst)?;
        // One token back every 60 s / per_minute; at least 1 ms so that huge rates stay valid.
        let period = Duration::from_micros(60_000_000 / u64::from(rate.per_minute.max(1)))
            .max(Duration::from_millis(1));
        let quota = Quota::with_period(period)?.allow_burst(burst);
        Some(Self {
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// `Err(seconds to wait)` when `key` is over its rate.
    fn check(&self, key: &String) -> Result<(), (u64, u64)> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % TRIM_EVERY == TRIM_EVERY - 1 {
            // Forget keys that are back to a full bucket, so that a flood of addresses cannot
            // grow the map without bound.
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            (wait.as_secs() + 1, refused)
        })
    }
}

/// The rate limiters of one server, shared by its workers. Built at start; a reload of
/// `[limits]` takes effect at the next restart.
pub struct RateLimits {
    sign_in: Option<Limiter>,
    api: Option<Limiter>,
}

impl RateLimits {
    pub fn new(settings: &LimitSettings) -> Self {
        Self {
            sign_in: settings.sign_in.and_then(Limiter::new),
            api: settings.api.and_then(Limiter::new),
        }
    }

    /// Counts `req` against its class's limit; `Err` (429) when it is over.
    pub fn check(&self, req: &HttpRequest, settings: &Settings) -> Result<(), AppError> {
        let Some(class) = Class::of(req.path()) else {
            return Ok(());
        };
        let limiter = match class {
            Class::SignIn => &self.sign_in,
            Class::Api => &self.api,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        let address = super::forwarded::client_addr(req, &settings.trusted_proxies);
        let key = match class {
            Class::SignIn => format!("addr:{address}"),
            Class::Api => credential(req, settings).unwrap_or_else(|| format!("addr:{address}")),
        };
        limiter.check(&key).map_err(|(retry_after_secs, refused)| {
            // Log the first refusals and then ever more rarely, so that a flood does not
            // become a flood of log lines.
            if refused.is_power_of_two() {
                tracing::warn!(
                    limit.class = class.name(),
                    limit.key = %key,
                    client.address = %address,
                    http.path = %req.path(),
                    limit.refused_total = refused,
                    "rate limit reached; answering 429"
                );
            }
            AppError::TooManyRequests { retry_after_secs }
        })
    }
}

/// The name of the known credential a machine request carries, so that each credential has a
/// rate of its own; `None` for unknown or missing credentials, which count against the address.
fn credential(req: &HttpRequest, settings: &Settings) -> Option<String> {
    let path = req.path();
    if path.starts_with("/.clearance/xapi/") {
        return super::xapi::authenticate(req, settings)
            .ok()
            .map(|n| format!("xapi:{n}"));
    }
    let (tokens, what) = if path.starts_with("/.clearance/scim/") {
        (&settings.followup.scim_tokens, "scim")
    } else if path.starts_with("/.clearance/api/") {
        (&settings.admin_tokens, "admin")
    } else {
        return None;
    };
    super::api::token_name(req, tokens, what)
        .ok()
        .map(|n| format!("{what}:{n}"))
}

/// Why `req` is refused before it reaches a handler (head too large, over a rate), if it is.
pub fn refusal(req: &actix_web::dev::ServiceRequest) -> Option<AppError> {
    let state = req.app_data::<actix_web::web::Data<super::AppState>>()?;
    let settings = state.settings();
    let refused = check_head(req.request(), &settings)
        .and_then(|()| state.limits.check(req.request(), &settings))
        .err()?;
    crate::metrics::limited(match refused {
        AppError::HeadersTooLarge(_) => "headers_too_large",
        _ => "rate_limited",
    });
    Some(refused)
}

/// Refuses a request head larger than `[limits] max_header_bytes` (431).
pub fn check_head(req: &HttpRequest, settings: &Settings) -> Result<(), AppError> {
    let Some(max) = settings.limits.max_header_bytes else {
        return Ok(());
    };
    // Request line plus "name: value\r\n" per header, as it was on the wire.
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    let size = req
        .headers()
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4);
    if size as u64 > max {
        tracing::warn!(
            http.path = %req.path(),
            http.head_bytes = size,
            limit.max_header_bytes = max,
            "request head too large; answering 431"
        );
        return Err(AppError::HeadersTooLarge(max));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_path() {
        assert_eq!(Class::of("/oauth2/start"), Some(Class::SignIn));
        assert_eq!(Class::of("/oauth2/callback"), Some(Class::SignIn));
        assert_eq!(Class::of("/.clearance/api/v1/records"), Some(Class::Api));
        assert_eq!(Class::of("/.clearance/scim/v2/Users"), Some(Class::Api));
        assert_eq!(Class::of("/oauth2/auth"), None);
        assert_eq!(Class::of("/healthz"), None);
        assert_eq!(Class::of("/app/oauth2/start"), None);
    }

    #[test]
    fn a_key_over_its_burst_waits_and_others_do_not() {
        let limiter = Limiter::new(Rate {
            per_minute: 1,
            burst: 2,
        })
        .unwrap();
        let a = "addr:10.0.0.1".to_owned();
        assert!(limiter.check(&a).is_ok());
        assert!(limiter.check(&a).is_ok());
        let (wait, refused) = limiter.check(&a).unwrap_err();
        assert!((1..=61).contains(&wait), "{wait}");
        assert_eq!(refused, 1);
        assert!(limiter.check(&"addr:10.0.0.2".to_owned()).is_ok());
    }

    #[test]
    fn memory_is_trimmed_as_keys_go_quiet() {
        let limiter = Limiter::new(Rate {
            per_minute: 6_000_000,
            burst: 1,
        })
        .unwrap();
        for i in 0..(TRIM_EVERY * 2) {
            let _ = limiter.check(&format!("addr:{i}"));
        }
        std::thread::sleep(Duration::from_millis(5));
        for _ in 0..TRIM_EVERY {
            let _ = limiter.check(&"addr:x".to_owned());
        }
        assert!(
            limiter.limiter.len() < (TRIM_EVERY * 2) as usize,
            "{}",
            limiter.limiter.len()
        );
    }
}
