//! Identity is proven, never assumed: an unverified, foreign-domain or foreign-tenant identity is
//! refused on the browser and the bearer path alike; a bearer token is the same person as their
//! browser session (type and manager from their last sign-in, every requirement when the type is
//! unknown); ID tokens and tokens from before "sign out everywhere" are refused; the callback
//! checks the nonce and RFC 9207's `iss`; a second sign-in ends the first session; bearer
//! requests fail closed while Redis is down.

use crate::gate::World;
use crate::support::{Account, Browser, ProviderConfig, login_at_provider};
use crate::{admin_post, complete_everything, record, redis, sign_in};
use chrono::Utc;
use redis::AsyncCommands as _;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const API: &str = ProviderConfig::API_AUDIENCE;

fn bearer_config() -> String {
    format!("[bearer]\naudiences = [\"{API}\"]\nleeway_secs = 5\n")
}

/// GET `path` on the gate with `Authorization: Bearer <token>`, as an API client.
async fn with_token(world: &World, path: &str, token: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", world.gate.url()))
        .bearer_auth(token)
        .header("accept", "application/json")
        .send()
        .await
        .expect("the gate answers");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

fn account(sub: &str, email: &str, kind: &str, extra: &[(&str, &str)]) -> Account {
    let mut account = Account::new(sub, email, sub, kind, &["staff"], None);
    for (k, v) in extra {
        account
            .extra_claims
            .insert((*k).to_owned(), (*v).to_owned());
    }
    account
}

#[tokio::test]
async fn unverified_foreign_and_other_tenant_identities_are_refused_on_both_paths() {
    let ours = [("tid", "our-tenant"), ("hd", "example.com")];
    let world = World::start_tuned(
        |p| {
            let mut mallory = account("sub-mallory", "mona@example.com", "employee", &ours);
            // She set the manager's address at a provider that does not verify addresses.
            mallory.email_verified = false;
            p.with_api()
                .with_account(
                    "alice@example.com",
                    account("sub-alice", "alice@example.com", "employee", &ours),
                )
                .with_account("mallory", mallory)
                .with_account(
                    "olga",
                    account("sub-olga", "olga@partner.example", "employee", &ours),
                )
                .with_account(
                    "tom",
                    account(
                        "sub-tom",
                        "tom@example.com",
                        "employee",
                        &[("tid", "their-tenant"), ("hd", "example.com")],
                    ),
                )
                .with_account(
                    "hank",
                    account(
                        "sub-hank",
                        "hank@example.com",
                        "employee",
                        &[("tid", "our-tenant"), ("hd", "gmail.com")],
                    ),
                )
        },
        &bearer_config(),
        |s| {
            s.oidc.identity.email_domains = vec!["example.com".into()];
            s.oidc.identity.tenants = vec!["our-tenant".into()];
            s.oidc.identity.hosted_domains = vec!["example.com".into()];
        },
    )
    .await;
    let refusals = [
        (
            "mallory",
            "has not verified the e-mail address mona@example.com",
        ),
        ("olga", "olga@partner.example is not in one of this company"),
        ("tom", "a tenant (their-tenant) that is not this company"),
        (
            "hank",
            "a hosted domain (gmail.com) that is not this company",
        ),
    ];
    for (login, why) in refusals {
        // The browser: a page saying why, no session, nothing upstream.
        let browser = Browser::new();
        let page = sign_in(&world, &browser, login, "/echo/open/x").await;
        assert_eq!(page.status, 401, "{login}: {}", page.body);
        assert!(
            page.body.contains("cannot be accepted"),
            "{login}: {}",
            page.body
        );
        assert!(page.body.contains(why), "{login}: {}", page.body);
        assert!(
            browser
                .cookie(&world.gate.host_port(), "_clearance")
                .is_none(),
            "{login}: no session"
        );
        // The bearer path: a 401 with the same reason.
        let token = world.provider.user_access_token(login).await;
        let (status, body) = with_token(&world, "/echo/open/x", &token).await;
        assert_eq!(status, 401, "{login}: {body}");
        assert!(body.contains(why), "{login}: {body}");
    }
    assert_eq!(
        world.upstream.request_count(),
        0,
        "nobody reached the upstream"
    );
    // The company's own, verified people are admitted.
    let browser = Browser::new();
    let page = sign_in(&world, &browser, "alice@example.com", "/echo/open/x").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = world.provider.user_access_token("alice@example.com").await;
    let (status, body) = with_token(&world, "/echo/open/x", &token).await;
    assert_eq!(status, 200, "{body}");
}

/// A requirement for contractors only, and a route that needs just it.
const CONTRACTORS: &str = r#"
[[requirements]]
id = "contractor-nda"
kind = "agreement"
title = "Contractor confidentiality agreement"
version = "1"
url = "https://sign.example.com/contractor-nda"
applies_to = { person_types = ["contractor"] }

[[routes]]
path_prefix = "/echo/contractors"
upstream = "@UPSTREAM@"
requirements = ["contractor-nda"]
"#;

fn missing(body: &str) -> Vec<String> {
    let body: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    body["missing"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|i| i["requirement"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_bearer_token_is_the_person_who_signed_in() {
    let world = World::start_with(
        |p| {
            let mut p = p.with_api().with_account(
                "una@example.com",
                account("sub-una", "una@example.com", "", &[]),
            );
            // Access tokens that carry the address only, as most providers issue them.
            p.api_token_scope = Some("email".into());
            p
        },
        "",
        &format!("{}{CONTRACTORS}", bearer_config()),
    )
    .await;
    let path = "/echo/contractors/x";
    let alice = world.provider.user_access_token("alice@example.com").await;
    let carl = world.provider.user_access_token("carl@example.com").await;
    let una = world.provider.user_access_token("una@example.com").await;

    // Nobody has signed in yet: nothing says what type they are, so each is held to every
    // requirement any type has, the contractors' included.
    for (who, token) in [("alice", &alice), ("carl", &carl), ("una", &una)] {
        let (status, body) = with_token(&world, path, token).await;
        assert_eq!(status, 403, "{who}: {body}");
        assert_eq!(missing(&body), ["contractor-nda"], "{who}: {body}");
    }

    // Once they have signed in, their token is the person their session is.
    for login in ["alice@example.com", "carl@example.com", "una@example.com"] {
        sign_in(&world, &Browser::new(), login, "/echo/open/x").await;
    }
    let (status, body) = with_token(&world, path, &alice).await;
    assert_eq!(status, 200, "alice is an employee: {body}");
    let echo: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        echo["headers"]["x-auth-request-user"][0],
        "alice@example.com"
    );
    let (status, body) = with_token(&world, path, &carl).await;
    assert_eq!(
        status, 403,
        "carl is a contractor, with or without his browser: {body}"
    );
    assert_eq!(missing(&body), ["contractor-nda"]);
    // The denial names his manager, from his last sign-in (his token does not say).
    let denials = crate::denials(&world).await;
    let his = denials
        .iter()
        .find(|d| d["event"]["subject"] == "carl@example.com")
        .expect("carl's denial");
    assert_eq!(his["event"]["manager"], "mona@example.com", "{his}");
    assert_eq!(his["event"]["person_type"], "contractor", "{his}");
    // Una's type is unknown from every source: held to everything, on both paths.
    let (status, body) = with_token(&world, path, &una).await;
    assert_eq!(status, 403, "{body}");
    let browser = Browser::new();
    sign_in(&world, &browser, "una@example.com", "/echo/open/x").await;
    let r = browser
        .get_with(
            format!("{}{path}", world.gate.url()),
            &[("accept", "application/json")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403, "her browser session too: {}", r.body);
    assert_eq!(missing(&r.body), ["contractor-nda"]);

    // Carl signs the agreement: admitted with his token.
    let r = record(
        &world,
        "carl@example.com",
        "contractor-nda",
        "1",
        Utc::now(),
    )
    .await;
    assert_eq!(r.status(), 201);
    let (status, body) = with_token(&world, path, &carl).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn id_tokens_and_tokens_from_before_sign_out_are_refused() {
    let world = World::start_with(ProviderConfig::with_api, "", &bearer_config()).await;
    complete_everything(&world, "alice@example.com").await;
    let tokens = world
        .provider
        .try_user_tokens(&Browser::new(), "alice@example.com", Some(API))
        .await
        .expect("tokens");
    let access = tokens["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let id_token = tokens["id_token"].as_str().expect("ID token").to_owned();
    let (status, body) = with_token(&world, "/echo/x", &access).await;
    assert_eq!(status, 200, "{body}");

    // An ID token is not an access token, for any route.
    for path in ["/echo/x", "/echo/open/x"] {
        let (status, body) = with_token(&world, path, &id_token).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("invalid_token"), "{body}");
    }

    // Sign out everywhere: every token issued until now is refused, on every route.
    let before = world.upstream.request_count();
    let r = admin_post(&world, "subjects/alice@example.com/sign-out", json!({})).await;
    assert_eq!(r.status(), 200);
    for path in ["/echo/x", "/echo/open/x"] {
        let (status, body) = with_token(&world, path, &access).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert!(body.contains("signed out"), "{path}: {body}");
    }
    assert_eq!(
        world.upstream.request_count(),
        before,
        "nothing reached the upstream"
    );
    // A token issued afterwards works (iat counts whole seconds).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = world.provider.user_access_token("alice@example.com").await;
    let (status, body) = with_token(&world, "/echo/x", &fresh).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn bearer_tokens_are_off_until_an_audience_of_their_own_is_configured() {
    // The default: no audience, no bearer tokens. A valid access token is no credential.
    let world = World::start_with(ProviderConfig::with_api, "", "").await;
    complete_everything(&world, "alice@example.com").await;
    let token = world.provider.user_access_token("alice@example.com").await;
    let (status, body) = with_token(&world, "/echo/open/x", &token).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("sign_in_required"), "{body}");
    assert_eq!(world.upstream.request_count(), 0);
    // The client id is refused as an audience: ID tokens are issued for it.
    let text = world.config_text("[bearer]\naudiences = [\"clearance\"]\n");
    let Err(e) = clearance::config::from_toml_str(&text) else {
        panic!("the client id was accepted as a bearer audience");
    };
    assert!(e.to_string().contains("bearer.audiences[0]"), "{e}");
    assert!(e.to_string().contains("client id"), "{e}");
}

/// Follows redirects from `url` in `browser` until the next hop is the gate's callback, and
/// returns that callback URL (not requested).
async fn callback_url(world: &World, browser: &Browser, url: String) -> url::Url {
    let mut next = url;
    for _ in 0..10 {
        let r = browser.get(&next).await.unwrap();
        let location = r
            .location()
            .unwrap_or_else(|| panic!("no redirect at {next}: {}", r.body));
        if location.path() == "/oauth2/callback"
            && crate::support::host_port(&location) == world.gate.host_port()
        {
            return location;
        }
        next = location.to_string();
    }
    panic!("never sent to the callback");
}

#[tokio::test]
async fn the_callback_checks_nonce_and_issuer_and_a_new_sign_in_ends_the_old_session() {
    let world = World::start().await;
    let gate = world.gate.url();

    // Signing in twice in one browser: the first session's cookie no longer works.
    let browser = Browser::new();
    sign_in(&world, &browser, "alice@example.com", "/echo/open/x").await;
    let first = browser
        .cookie(&world.gate.host_port(), "_clearance")
        .unwrap();
    let r = browser
        .get(format!("{gate}/oauth2/start?rd=/echo/open/y"))
        .await
        .unwrap();
    let (page, _) = browser.follow(r).await.unwrap();
    assert_eq!(page.status, 200, "signed in again: {}", page.body);
    let second = browser
        .cookie(&world.gate.host_port(), "_clearance")
        .unwrap();
    assert_ne!(first, second);
    let old = reqwest::Client::new()
        .get(format!("{gate}/echo/open/x"))
        .header("cookie", format!("_clearance={first}"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401, "the first session ended");

    // RFC 9207: the provider promises `iss`; a response naming another issuer, or none, is
    // refused (the provider session makes the provider answer at once).
    for (change, why) in [
        (Some("http://evil.example"), "another issuer"),
        (None, "lacks the iss"),
    ] {
        let mut callback = callback_url(
            &world,
            &browser,
            format!("{gate}/oauth2/start?rd=/echo/open/z"),
        )
        .await;
        assert_eq!(
            crate::support::query_param(&callback, "iss").as_deref(),
            Some(world.provider.issuer().as_str()),
            "the provider sends iss"
        );
        let pairs: Vec<(String, String)> = callback
            .query_pairs()
            .filter(|(k, _)| k != "iss")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .chain(change.map(|i| ("iss".to_owned(), i.to_owned())))
            .collect();
        callback.query_pairs_mut().clear().extend_pairs(pairs);
        let r = browser.get(callback.as_str()).await.unwrap();
        assert_eq!(r.status, 400, "{change:?}: {}", r.body);
        assert!(r.body.contains(why), "{change:?}: {}", r.body);
        assert_eq!(
            browser
                .cookie(&world.gate.host_port(), "_clearance")
                .as_deref(),
            Some(second.as_str()),
            "no new session"
        );
    }

    // An ID token whose nonce is not the one this sign-in sent is refused: the login state
    // kept in Redis is given another nonce before the provider answers.
    let browser = Browser::new();
    let r = browser
        .get(format!("{gate}/oauth2/start?rd=/echo/open/x"))
        .await
        .unwrap();
    let authorize = r.location().expect("to the provider");
    let state = crate::support::query_param(&authorize, "state").expect("state");
    let mut conn = redis(&world).await;
    let key = format!("clearance:login:{state}");
    let pending: String = conn.get(&key).await.expect("the login state");
    let mut pending: Value = serde_json::from_str(&pending).unwrap();
    pending["nonce"] = json!("a-nonce-the-provider-never-saw");
    let ttl: i64 = conn.pttl(&key).await.unwrap();
    let _: () = conn
        .pset_ex(&key, pending.to_string(), ttl.max(1000) as u64)
        .await
        .unwrap();
    let page = login_at_provider(&browser, authorize.as_str(), "alice@example.com")
        .await
        .expect("the provider signs her in");
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("nonce"), "{}", page.body);
    assert!(
        browser
            .cookie(&world.gate.host_port(), "_clearance")
            .is_none()
    );
}

#[tokio::test]
async fn bearer_requests_fail_closed_while_redis_is_down() {
    let mut world = World::start_with(ProviderConfig::with_api, "", &bearer_config()).await;
    complete_everything(&world, "alice@example.com").await;
    let token = world.provider.user_access_token("alice@example.com").await;
    for path in ["/echo/x", "/echo/open/x"] {
        let (status, body) = with_token(&world, path, &token).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    world.redis.stop().await;
    // The gate notices (its cache stops serving when its subscription sees Redis go).
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("{}/readyz", world.gate.url()))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the gate never noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = world.upstream.request_count();
    // Also where no requirement applies: a person who cannot be looked up is not admitted.
    for path in ["/echo/x", "/echo/open/x"] {
        let (status, body) = with_token(&world, path, &token).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert!(body.contains("state_unavailable"), "{path}: {body}");
    }
    assert_eq!(world.upstream.request_count(), before);
}
