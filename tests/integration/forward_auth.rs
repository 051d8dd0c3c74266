//! Forward-auth contracts, sent exactly as the proxies send them: Traefik `ForwardAuth`, Caddy
//! `forward_auth` (X-Forwarded-Method/Proto/Host/Uri/For, original headers copied) and Envoy
//! `ext_authz` HTTP service (original method, path appended to the path prefix, Host kept).
//! The "proxy" connects from 127.0.0.2, the only trusted peer; people connect from 127.0.0.1.
//! Also: per-route access (induction, public), spoofing, and path tricks.

use crate::gate::World;
use crate::support::Browser;
use crate::{denials, record, sign_in};
use chrono::Utc;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const APP: &str = "app.example.test";

const SERVER: &str = r#"trusted_proxies = ["127.0.0.2"]
allowed_redirect_hosts = ["app.example.test"]"#;

const ROUTES: &str = r#"
[[routes]]
host = "app.example.test"
path_prefix = "/"
requirements = ["security-awareness"]

[[routes]]
host = "app.example.test"
path_prefix = "/lms"
access = "induction"

[[routes]]
host = "app.example.test"
path_prefix = "/status"
access = "public"
"#;

pub async fn world() -> World {
    World::start_with(|p| p, SERVER, ROUTES).await
}

/// An HTTP client that connects from `ip` and never follows redirects.
pub fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What Traefik / Caddy send: the original headers plus X-Forwarded-*.
pub async fn traefik(
    world: &World,
    mode: &str,
    from: [u8; 4],
    uri: &str,
    cookie: Option<&str>,
    extra: &[(&str, &str)],
) -> Answer {
    let mut req = client_from(from)
        .get(format!("{}/oauth2/auth/{mode}", world.gate.url()))
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", APP)
        .header("x-forwarded-uri", uri)
        .header("x-forwarded-for", "198.51.100.7");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let has_accept = extra.iter().any(|(k, _)| k.eq_ignore_ascii_case("accept"));
    if !has_accept {
        req = req.header("accept", "text/html");
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    answer(req).await
}

async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let r = req.send().await.expect("forward-auth answers");
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap_or_default(),
    }
}

/// Signs Alice in through the gate and returns her cookie header.
pub async fn alice_cookie(world: &World) -> String {
    let browser = Browser::new();
    sign_in(world, &browser, "alice@example.com", "/echo/open/x").await;
    format!(
        "_clearance={}",
        browser
            .cookie(&world.gate.host_port(), "_clearance")
            .unwrap()
    )
}

fn blocked_ids(body: &str) -> Vec<String> {
    let html = scraper::Html::parse_document(body);
    let sel = scraper::Selector::parse("section[data-requirement]").unwrap();
    html.select(&sel)
        .map(|e| {
            e.value()
                .attr("data-requirement")
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn traefik_and_caddy_contract() {
    let world = world().await;
    const PROXY: [u8; 4] = [127, 0, 0, 2];
    for mode in ["traefik", "caddy"] {
        // Not signed in: browsers are redirected to sign in and back to the original URL.
        let r = traefik(&world, mode, PROXY, "/docs?page=2", None, &[]).await;
        assert_eq!(r.status, 302, "{mode}: {}", r.body);
        let location = url::Url::parse(r.header("location").unwrap()).unwrap();
        assert_eq!(location.path(), "/oauth2/start");
        let rd = location
            .query_pairs()
            .find(|(k, _)| k == "rd")
            .unwrap()
            .1
            .into_owned();
        assert_eq!(rd, format!("https://{APP}/docs?page=2"));
        // API clients get a 401.
        let r = traefik(
            &world,
            mode,
            PROXY,
            "/docs",
            None,
            &[("accept", "application/json")],
        )
        .await;
        assert_eq!(r.status, 401, "{mode}");
        let body: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["error"], "sign_in_required");
    }
    // Following the redirect works: the rd to the protected host is allowed.
    let browser = Browser::new();
    let start = browser
        .get(format!(
            "{}/oauth2/start?rd={}",
            world.gate.url(),
            percent_encoding::utf8_percent_encode(
                &format!("https://{APP}/docs"),
                percent_encoding::NON_ALPHANUMERIC
            )
        ))
        .await
        .unwrap();
    assert_eq!(start.status, 302, "{}", start.body);

    let cookie = alice_cookie(&world).await;
    for mode in ["traefik", "caddy"] {
        // Blocked: 403 with the block page, listing only what this route needs.
        let r = traefik(&world, mode, PROXY, "/docs", Some(&cookie), &[]).await;
        assert_eq!(r.status, 403, "{mode}: {}", r.body);
        assert_eq!(blocked_ids(&r.body), vec!["security-awareness"]);
        // Induction route: reachable while blocked, with identity.
        let r = traefik(&world, mode, PROXY, "/lms/course/7", Some(&cookie), &[]).await;
        assert_eq!(r.status, 200, "{mode}");
        assert_eq!(r.header("x-auth-request-user"), Some("alice@example.com"));
        // Public route: no sign-in needed; identity headers present but empty.
        let r = traefik(
            &world,
            mode,
            PROXY,
            "/status",
            None,
            &[("x-auth-request-user", "mallory")],
        )
        .await;
        assert_eq!(r.status, 200, "{mode}");
        assert_eq!(r.header("x-auth-request-user"), Some(""));
    }
    let log = denials(&world).await;
    assert_eq!(log.len(), 2, "one denial per blocked call");
    assert_eq!(log[0]["event"]["host"], APP);
    assert_eq!(log[0]["event"]["path"], "/docs");
    assert_eq!(
        log[0]["event"]["client_addr"], "198.51.100.7",
        "client from the trusted proxy's X-Forwarded-For"
    );

    // Compliant: 200 with identity headers for authResponseHeaders / copy_headers.
    let r = record(
        &world,
        "alice@example.com",
        "security-awareness",
        "2026.1",
        Utc::now(),
    )
    .await;
    assert_eq!(r.status(), 201);
    for mode in ["traefik", "caddy"] {
        let r = traefik(
            &world,
            mode,
            PROXY,
            "/docs",
            Some(&cookie),
            &[("x-auth-request-user", "mallory")],
        )
        .await;
        assert_eq!(r.status, 200, "{mode}: {}", r.body);
        assert_eq!(r.header("x-auth-request-user"), Some("alice@example.com"));
        assert_eq!(r.header("x-auth-request-email"), Some("alice@example.com"));
        assert_eq!(r.header("x-auth-request-groups"), Some("staff,engineering"));
        assert_eq!(r.header("x-forwarded-user"), Some("alice@example.com"));
    }
}

#[tokio::test]
async fn envoy_ext_authz_contract() {
    let world = world().await;
    let envoy = client_from([127, 0, 0, 2]);
    let call = |method: reqwest::Method, path: &str, cookie: Option<String>, accept: &str| {
        let mut req = envoy
            .request(
                method,
                format!("{}/oauth2/auth/envoy{path}", world.gate.url()),
            )
            .header("host", APP)
            .header("x-forwarded-proto", "https")
            .header("accept", accept.to_owned());
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        answer(req)
    };
    let r = call(reqwest::Method::GET, "/docs?x=1", None, "text/html").await;
    assert_eq!(r.status, 302, "{}", r.body);
    let location = url::Url::parse(r.header("location").unwrap()).unwrap();
    let rd = location
        .query_pairs()
        .find(|(k, _)| k == "rd")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(rd, format!("https://{APP}/docs?x=1"));
    let r = call(reqwest::Method::POST, "/status/ping", None, "*/*").await;
    assert_eq!(r.status, 200, "public route, any method: {}", r.body);

    let cookie = alice_cookie(&world).await;
    let r = call(
        reqwest::Method::GET,
        "/docs",
        Some(cookie.clone()),
        "application/json",
    )
    .await;
    assert_eq!(r.status, 403);
    let body: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["missing"][0]["requirement"], "security-awareness");
    record(
        &world,
        "alice@example.com",
        "security-awareness",
        "2026.1",
        Utc::now(),
    )
    .await;
    let r = call(reqwest::Method::PUT, "/docs/7", Some(cookie), "text/html").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-auth-request-user"), Some("alice@example.com"));
}

#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    let world = world().await;
    let cookie = alice_cookie(&world).await;
    // From an untrusted peer: refused, nothing evaluated, nothing recorded.
    for (mode, status) in [("traefik", 403), ("caddy", 403), ("nginx", 500)] {
        let r = traefik(
            &world,
            mode,
            [127, 0, 0, 1],
            "/status",
            Some(&cookie),
            &[("x-original-url", "https://app.example.test/status")],
        )
        .await;
        // nginx would turn a 403 into its block-page redirect; a 500 shows the misconfiguration.
        assert_eq!(r.status, status, "{mode}: {}", r.body);
        assert!(r.body.contains("untrusted_proxy"), "{}", r.body);
        assert!(r.header("x-auth-request-user").is_none());
    }
    let r = client_from([127, 0, 0, 1])
        .get(format!("{}/oauth2/auth/envoy/status", world.gate.url()))
        .header("host", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(denials(&world).await.is_empty(), "nothing was evaluated");

    // The reverse proxy ignores forwarded headers from untrusted peers too: the upstream sees
    // the real peer, not the claimed client.
    let r = client_from([127, 0, 0, 1])
        .get(format!("{}/echo/open/x", world.gate.url()))
        .header("cookie", cookie.clone())
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let echo: Value = r.json().await.unwrap();
    assert_eq!(echo["headers"]["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "http");
}

#[tokio::test]
async fn spoofed_spellings_and_stripped_headers_never_change_a_decision() {
    let world = world().await;
    let cookie = alice_cookie(&world).await;
    const PROXY: [u8; 4] = [127, 0, 0, 2];
    // Alice is blocked on /docs; every trick below must still give 403, never 200.
    let tricks: Vec<Vec<(&str, &str)>> = vec![
        vec![("x_forwarded_uri", "/status")],
        vec![("X.Forwarded.Uri", "/status")],
        vec![("X_Forwarded_Host", "public.example")],
        vec![("x-original-url", "https://app.example.test/status")],
        // Clearance's own names, spelled exactly: the proxy replaces them with the answer's.
        vec![("x-auth-request-user", "bob@example.com")],
        vec![("forwarded", "host=public.example;proto=https")],
    ];
    for extra in &tricks {
        let r = traefik(&world, "traefik", PROXY, "/docs", Some(&cookie), extra).await;
        assert_eq!(r.status, 403, "{extra:?}: {}", r.body);
    }
    // Identity headers the proxy would pass on to the app unchanged (other spellings of
    // Clearance's own, other gatekeepers'): the request is refused, whoever sends it.
    for (name, value) in [
        ("X_Auth_Request_User", "bob@example.com"),
        ("x.forwarded.email", "bob@example.com"),
        (
            "X-Goog-Authenticated-User-Email",
            "accounts.google.com:bob@example.com",
        ),
        ("Cf-Access-Authenticated-User-Email", "bob@example.com"),
        ("OIDC-Claim-email", "bob@example.com"),
        ("X-MS-CLIENT-PRINCIPAL-NAME", "bob@example.com"),
        ("Remote-User", "bob"),
    ] {
        for who in [None, Some(cookie.as_str())] {
            let r = traefik(&world, "traefik", PROXY, "/status", who, &[(name, value)]).await;
            assert_eq!(r.status, 400, "{name} ({who:?}): {}", r.body);
            assert!(r.body.contains("identity_header_from_client"), "{}", r.body);
            assert!(r.header("x-auth-request-user").is_none(), "{name}");
        }
    }
    // A Connection header that names X-Forwarded-Uri makes a hop drop it: the request is then
    // incomplete and refused, never evaluated against some default.
    let r = answer(
        client_from(PROXY)
            .get(format!("{}/oauth2/auth/traefik", world.gate.url()))
            .header("connection", "close, X-Forwarded-Uri")
            .header("x-forwarded-host", APP)
            .header("cookie", cookie.clone()),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("forward_auth_request_incomplete"));
}

/// Request targets that are not in canonical form, each a way some proxy and app would read
/// differently from a normaliser: refused, never judged (the upstream receives the raw target).
pub const NON_CANONICAL: &[&str] = &[
    "/status/../docs",
    "/status/./docs",
    "/status/%2e%2e/docs",
    "/status/%2E%2e/docs",
    "/status/.%2e/docs",
    "/status/%2e/docs",
    "/lms/..;/docs",
    "/lms/..;x=y/docs",
    "/status;x/../docs",
    "/docs;jsessionid=1",
    "//docs",
    "/status//docs",
    "/docs#/status",
    "/docs?x=1#/status",
    "/docs%23/status",
    "/docs%3F/status",
    "/status%2f..%2fdocs",
    "/status/%252e%252e/docs",
    "/../docs",
    "/status\\..\\docs",
    "/status/%5c../docs",
    "/docs%00",
    "/status/%c0%ae%c0%ae/docs",
    "/lms/.",
    "/lms/..",
];

#[tokio::test]
async fn path_tricks_are_refused_for_everyone() {
    let world = world().await;
    let blocked = alice_cookie(&world).await;
    // Carl, compliant on this host (the routes need only the training).
    let browser = Browser::new();
    sign_in(&world, &browser, "carl@example.com", "/echo/open/x").await;
    let compliant = format!(
        "_clearance={}",
        browser
            .cookie(&world.gate.host_port(), "_clearance")
            .unwrap()
    );
    let r = record(
        &world,
        "carl@example.com",
        "security-awareness",
        "2026.1",
        Utc::now(),
    )
    .await;
    assert_eq!(r.status(), 201);
    const PROXY: [u8; 4] = [127, 0, 0, 2];
    let people = [
        ("anonymous", None),
        ("blocked", Some(blocked.as_str())),
        ("compliant", Some(compliant.as_str())),
    ];
    for (who, cookie) in people {
        for uri in NON_CANONICAL {
            for mode in ["traefik", "caddy"] {
                let r = traefik(&world, mode, PROXY, uri, cookie, &[]).await;
                assert_eq!(r.status, 400, "{who} {mode} {uri}: {}", r.body);
                assert!(r.body.contains("invalid_path"), "{who} {uri}: {}", r.body);
                assert!(r.header("x-auth-request-user").is_none(), "{who} {uri}");
            }
            // nginx's X-Original-URL carries the same raw target.
            let r = answer(
                client_from(PROXY)
                    .get(format!("{}/oauth2/auth/nginx", world.gate.url()))
                    .header("x-original-url", format!("https://{APP}{uri}"))
                    .header("cookie", cookie.unwrap_or("")),
            )
            .await;
            assert_eq!(r.status, 400, "{who} nginx {uri}: {}", r.body);
            assert!(r.header("x-auth-request-user").is_none(), "{who} {uri}");
        }
        // Canonical targets are judged as they are: /STATUS is not /status, and a query is
        // never part of the path.
        for uri in ["/STATUS", "/docs?x=/status", "/docs?/../status", "/docs/"] {
            let r = traefik(&world, "traefik", PROXY, uri, cookie, &[]).await;
            let (status, user) = match who {
                "anonymous" => (302, None),
                "blocked" => (403, None),
                _ => (200, Some("carl@example.com")),
            };
            assert_eq!(r.status, status, "{who} {uri}: {}", r.body);
            assert_eq!(r.header("x-auth-request-user"), user, "{who} {uri}");
        }
        // The original host must be host[:port] too, whichever header carries it.
        for host in [
            "app.example.test@evil.example",
            "app.example.test:",
            "app.example.test:80x",
            "app.example.test:1:2",
            "app.example.test%2F",
            "app.example.test,evil.example",
        ] {
            let r = answer(
                client_from(PROXY)
                    .get(format!("{}/oauth2/auth/traefik", world.gate.url()))
                    .header("x-forwarded-proto", "https")
                    .header("x-forwarded-host", host)
                    .header("x-forwarded-uri", "/status/x")
                    .header("cookie", cookie.unwrap_or("")),
            )
            .await;
            assert_eq!(r.status, 400, "{who} X-Forwarded-Host {host}: {}", r.body);
            assert!(r.body.contains("invalid_host"), "{who} {host}: {}", r.body);
            let r = answer(
                client_from(PROXY)
                    .get(format!("{}/oauth2/auth/nginx", world.gate.url()))
                    .header("x-original-url", format!("https://{host}/status/x"))
                    .header("cookie", cookie.unwrap_or("")),
            )
            .await;
            assert_eq!(r.status, 400, "{who} X-Original-URL {host}: {}", r.body);
            assert!(r.header("x-auth-request-user").is_none());
        }
        let r = traefik(&world, "traefik", PROXY, "/status/x", cookie, &[]).await;
        assert_eq!(r.status, 200, "{who}: the public route");
        assert_eq!(
            r.header("x-auth-request-user"),
            Some(""),
            "{who}: nobody, on a public route"
        );
        let r = traefik(&world, "traefik", PROXY, "/lms/a", cookie, &[]).await;
        let expected = if cookie.is_some() { 200 } else { 302 };
        assert_eq!(r.status, expected, "{who}: the induction route");
    }
}
