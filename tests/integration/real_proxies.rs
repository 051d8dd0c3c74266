//! Forward-auth through the real proxies: nginx (`auth_request`) and Caddy (`forward_auth`) run
//! the files in `config/examples/` as shipped, with only their marked addresses replaced, in front
//! of the harness upstream; Clearance runs `config/examples/clearance-forward-auth.toml` the same
//! way, with its secrets and admin token from the environment. Everything goes through the
//! proxy's port with a real sign-in at the real provider: sent to sign in, blocked (block page),
//! admitted with identity headers from Clearance that the client cannot spoof; the induction
//! route while blocked and the public route without sign-in.
//!
//! Traefik and Envoy are not installable here: their example files are parsed, checked for the
//! endpoints and headers Clearance implements, and those endpoints are called on a running
//! Clearance the way the proxies would call them.

use std::collections::BTreeSet;

use crate::gate::{ADMIN_TOKEN, World};
use crate::support::{
    Browser, CLIENT_SECRET, Caddy, Nginx, free_port, host_port, query_param, repo_root,
};
use crate::{blocked_items, complete_everything, denials};
use serde_json::Value;
use sha2::{Digest, Sha256};
use yaml_rust2::{Yaml, YamlLoader};

/// The example files' marked defaults.
const CLEARANCE_ADDR: &str = "127.0.0.1:4180";
const APP_ADDR: &str = "127.0.0.1:8080";
const PROXY_ADDR: &str = "127.0.0.1:8000";

/// What Clearance answers an admitted request with, and what the proxies must copy.
const IDENTITY_HEADERS: [&str; 6] = [
    "x-auth-request-user",
    "x-auth-request-email",
    "x-auth-request-groups",
    "x-auth-request-preferred-username",
    "x-forwarded-user",
    "x-forwarded-email",
];

const COOKIE_SECRET: &str =
    "dGVzdC1jb29raWUtc2VjcmV0LXRoYXQtaXMtbG9uZy1lbm91Z2gtZm9yLWNsZWFyYW5jZQ==";

fn example(name: &str) -> String {
    let path = repo_root().join("config/examples").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Replaces each marked default with the test's value; each must be in the file, so that the
/// examples and these tests cannot drift apart unnoticed.
fn substitute(name: &str, pairs: &[(&str, String)]) -> String {
    let mut text = example(name);
    // Markers first become placeholders, so that a value put in (say a port starting with 4180)
    // is never taken for a later marker.
    for (i, (marker, _)) in pairs.iter().enumerate() {
        assert!(
            text.contains(marker),
            "config/examples/{name} no longer contains the marked default {marker:?}"
        );
        text = text.replace(marker, &format!("\u{0}{i}\u{0}"));
    }
    for (i, (_, value)) in pairs.iter().enumerate() {
        text = text.replace(&format!("\u{0}{i}\u{0}"), value);
    }
    text
}

/// The deployment's environment: secrets and the admin token, as docs/CONFIG.md describes.
fn environment() -> Vec<(String, String)> {
    let admin_sha = hex::encode(Sha256::digest(ADMIN_TOKEN.as_bytes()));
    vec![
        (
            "CLEARANCE_OIDC__CLIENT_SECRET".into(),
            CLIENT_SECRET.to_owned(),
        ),
        (
            "CLEARANCE_SESSION__COOKIE_SECRET".into(),
            COOKIE_SECRET.to_owned(),
        ),
        (
            "CLEARANCE_AUDIT__KEY".into(),
            "test-audit-key-0123456789abcdefghijklmnop".into(),
        ),
        (
            "CLEARANCE_ADMIN__TOKENS".into(),
            format!("[{{name=\"tests\", sha256=\"{admin_sha}\"}}]"),
        ),
    ]
}

/// Redis, the provider, the upstream and Clearance from `clearance-forward-auth.toml`, for a
/// proxy that will listen on `proxy_port`.
async fn clearance_behind(proxy_port: u16) -> World {
    let public_url = format!("http://127.0.0.1:{proxy_port}");
    World::start_behind_proxy(&public_url, |port, redis, provider, _upstream| {
        let name = "clearance-forward-auth.toml";
        let text = substitute(
            name,
            &[
                (CLEARANCE_ADDR, format!("127.0.0.1:{port}")),
                ("http://127.0.0.1:8000", public_url.clone()),
                ("https://login.example.com", provider.issuer()),
                ("redis://127.0.0.1:6379/", redis.url()),
            ],
        );
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), text).expect("write the configuration");
        clearance::config::load_with_env(file.path(), &environment())
            .unwrap_or_else(|e| panic!("config/examples/{name} is refused: {e}"))
    })
    .await
}

/// The proxy's configuration with the test's addresses.
fn proxy_config(name: &str, world: &World, proxy_port: u16) -> String {
    substitute(
        name,
        &[
            (PROXY_ADDR, format!("127.0.0.1:{proxy_port}")),
            (CLEARANCE_ADDR, world.gate.host_port()),
            (APP_ADDR, format!("127.0.0.1:{}", world.upstream.port())),
        ],
    )
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proxy {
    Nginx,
    Caddy,
}

impl Proxy {
    /// Its forward-auth mode's name, as in `/oauth2/auth/<mode>`.
    fn mode(self) -> &'static str {
        match self {
            Proxy::Nginx => "nginx",
            Proxy::Caddy => "caddy",
        }
    }
}

/// Values someone might send to pass as another person.
const SPOOFED: [(&str, &str); 8] = [
    ("x-auth-request-user", "mallory@example.com"),
    ("x-auth-request-email", "mallory@example.com"),
    ("x-auth-request-groups", "admins"),
    ("x-auth-request-preferred-username", "Mallory"),
    ("x-forwarded-user", "mallory@example.com"),
    ("x-forwarded-email", "mallory@example.com"),
    ("X_Auth_Request_User", "mallory@example.com"),
    ("X_Forwarded_User", "mallory@example.com"),
];

fn assert_no_spoofed_value(echo: &Value, proxy: Proxy) {
    let headers = echo["headers"].as_object().expect("echo headers");
    for (name, values) in headers {
        let text = values.to_string().to_ascii_lowercase();
        assert!(
            !text.contains("mallory") && !text.contains("admins"),
            "{proxy:?}: the client's spoofed value reached the app in {name}: {values}"
        );
    }
}

/// The whole journey through `proxy_url` (the proxy in front of `world`'s Clearance). Returns
/// the session of Alice, compliant at the end.
async fn journey(
    world: &World,
    proxy: Proxy,
    proxy_url: &str,
    proxy_logs: impl Fn() -> String,
) -> String {
    let proxy_hp = host_port(&url::Url::parse(proxy_url).unwrap());
    let browser = Browser::new();

    // The public route: no sign-in, straight to the app.
    let r = browser
        .get_with(format!("{proxy_url}/status/200"), &SPOOFED)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{proxy:?} public route: {}", r.body);
    assert_eq!(r.body, "status 200", "{proxy:?}: the app answered");

    // The forward-auth endpoint is not reachable through the proxy.
    let r = browser
        .get(format!("{proxy_url}/oauth2/auth/{}", proxy.mode()))
        .await
        .unwrap();
    assert_eq!(
        r.status, 404,
        "{proxy:?}: /oauth2/auth/* is for the proxy only"
    );

    // (a) Not signed in: sent to /oauth2/start on the proxy's host, then to the provider.
    let first = browser
        .get(format!("{proxy_url}/echo/private?x=1"))
        .await
        .unwrap();
    assert_eq!(
        first.status,
        302,
        "{proxy:?}: not signed in: {}\n{}",
        first.body,
        proxy_logs()
    );
    let start = first.location().expect("Location");
    assert_eq!(host_port(&start), proxy_hp, "{proxy:?}: {start}");
    assert_eq!(start.path(), "/oauth2/start", "{proxy:?}: {start}");
    let rd = query_param(&start, "rd").expect("rd");
    let expected_rd = match proxy {
        // nginx cannot encode: the path (and query up to its first '&') on the same host.
        Proxy::Nginx => "/echo/private?x=1".to_owned(),
        Proxy::Caddy => format!("{proxy_url}/echo/private?x=1"),
    };
    assert_eq!(rd, expected_rd, "{proxy:?}");
    assert!(
        !world
            .upstream
            .requests()
            .iter()
            .any(|r| r.contains("/echo/private")),
        "{proxy:?}: nothing reached the app before sign-in"
    );
    if proxy == Proxy::Nginx {
        // The documented limit of `rd=$request_uri`: nginx cannot encode it, so the original
        // query survives only up to its first '&'.
        let r = browser
            .get(format!("{proxy_url}/echo/report?a=1&b=2"))
            .await
            .unwrap();
        let start = r.location().expect("Location");
        assert_eq!(
            query_param(&start, "rd").as_deref(),
            Some("/echo/report?a=1")
        );
    }
    let to_provider = browser.get(start.as_str()).await.unwrap();
    assert_eq!(to_provider.status, 302, "{proxy:?}: {}", to_provider.body);
    let authorize = to_provider.location().expect("Location");
    assert_eq!(host_port(&authorize), world.provider.host_port());
    assert_eq!(
        query_param(&authorize, "redirect_uri").as_deref(),
        Some(format!("{proxy_url}/oauth2/callback").as_str()),
        "{proxy:?}: the callback goes through the proxy"
    );
    if proxy == Proxy::Caddy {
        // API clients get 401 JSON instead of a redirect (nginx cannot tell them apart).
        let r = browser
            .get_with(
                format!("{proxy_url}/echo/private"),
                &[("accept", "application/json")],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(
            r.json::<Value>().unwrap()["error"],
            "sign_in_required",
            "{}",
            r.body
        );
    }

    // (b) Signed in at the provider, back through the proxy's callback to the page: blocked.
    let page = crate::support::login_at_provider(&browser, to_provider, "alice@example.com")
        .await
        .expect("signed in at the provider");
    assert_eq!(
        page.status,
        403,
        "{proxy:?}: blocked at {}: {}\n{}",
        page.url,
        page.body,
        proxy_logs()
    );
    assert_eq!(page.host_port(), proxy_hp, "{proxy:?}: {}", page.url);
    let expected_path = match proxy {
        Proxy::Nginx => "/.clearance/blocked",
        Proxy::Caddy => "/echo/private",
    };
    assert_eq!(page.url.path(), expected_path, "{proxy:?}: {}", page.url);
    let mut missing: Vec<String> = blocked_items(&page).into_iter().map(|(id, _)| id).collect();
    missing.sort();
    assert_eq!(
        missing,
        ["acceptable-use-policy", "security-awareness"],
        "{proxy:?}: the block page lists what Alice (an employee) lacks"
    );
    assert!(
        browser.cookie(&proxy_hp, "_clearance").is_some(),
        "{proxy:?}: the session cookie belongs to the proxy's host"
    );
    let log: Vec<Value> = denials(world)
        .await
        .into_iter()
        .filter(|d| d["event"]["path"] == "/echo/private")
        .collect();
    assert_eq!(
        log.len(),
        1,
        "{proxy:?}: one denial for one refusal: {log:?}"
    );
    assert_eq!(log[0]["event"]["subject"], "alice@example.com");
    assert_eq!(log[0]["event"]["client_addr"], "127.0.0.1");

    // The induction route is open while blocked.
    let r = browser
        .get(format!("{proxy_url}/lms/course/7"))
        .await
        .unwrap();
    assert_eq!(
        r.status, 404,
        "{proxy:?}: the induction route reaches the app (which has no such page): {}",
        r.body
    );
    assert!(
        world
            .upstream
            .requests()
            .contains(&"GET /lms/course/7".to_owned()),
        "{proxy:?}: {:?}",
        world.upstream.requests()
    );
    // ... and the app is still not.
    let r = browser
        .get(format!("{proxy_url}/echo/private"))
        .await
        .unwrap();
    assert!(
        r.status == 403 || r.status == 302,
        "{proxy:?}: still blocked: {}",
        r.status
    );

    // (c) Completions recorded through the admin API: admitted, as Alice and nobody else.
    complete_everything(world, "alice@example.com").await;
    let r = browser
        .get_with(format!("{proxy_url}/echo/private?x=1"), &SPOOFED)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{proxy:?}: admitted: {}", r.body);
    let echo: Value = r.json().unwrap();
    assert_eq!(echo["path"], "/echo/private", "{proxy:?}");
    assert_eq!(echo["query"], "x=1", "{proxy:?}");
    let expected = [
        ("x-auth-request-user", "alice@example.com"),
        ("x-auth-request-email", "alice@example.com"),
        ("x-auth-request-groups", "staff,engineering"),
        ("x-auth-request-preferred-username", "Alice Admitted"),
        ("x-forwarded-user", "alice@example.com"),
        ("x-forwarded-email", "alice@example.com"),
    ];
    for (name, value) in expected {
        assert_eq!(
            echo["headers"][name],
            serde_json::json!([value]),
            "{proxy:?}: {name} comes from Clearance, once: {echo}"
        );
    }
    assert_no_spoofed_value(&echo, proxy);
    assert!(
        echo["headers"].get("cookie").is_some(),
        "{proxy:?}: the app sees the browser's cookies as usual"
    );

    if proxy == Proxy::Nginx {
        // The block page's "try again" now sends Alice back where she was going.
        let r = browser
            .get(format!("{proxy_url}/.clearance/blocked?rd=/echo/private"))
            .await
            .unwrap();
        assert_eq!(r.status, 302, "{}", r.body);
        assert_eq!(r.header("location"), Some("/echo/private"));
    }
    browser
        .cookie(&proxy_hp, "_clearance")
        .expect("alice's session")
}

/// Request targets that are not in canonical form, sent through the proxy exactly as written
/// (raw HTTP: an HTTP client library would resolve the dot segments itself), anonymously, as a
/// compliant person and as a blocked one: each refused, and the app never reached. nginx
/// refuses them itself with 400 (the example's `if ($request_uri ...)`), except non-UTF-8,
/// which it passes on: Clearance refuses that, and nginx answers a refusal of `auth_request`
/// other than 401/403 with 500. Caddy answers 400 itself or passes Clearance's 400 on.
async fn non_canonical_targets_are_refused(
    world: &World,
    proxy: Proxy,
    proxy_url: &str,
    compliant: &str,
    proxy_logs: impl Fn() -> String,
) {
    let proxy_hp = host_port(&url::Url::parse(proxy_url).unwrap());
    let port: u16 = proxy_hp.rsplit(':').next().unwrap().parse().unwrap();
    // Carl, signed in through the proxy and blocked (he has nothing on file).
    let carl = Browser::new();
    let first = carl.get(format!("{proxy_url}/echo/private")).await.unwrap();
    let page = crate::support::login_at_provider(&carl, first, "carl@example.com")
        .await
        .expect("carl signs in");
    assert_eq!(
        page.status, 403,
        "{proxy:?}: carl is blocked: {}",
        page.body
    );
    let blocked = carl
        .cookie(&proxy_hp, "_clearance")
        .expect("carl's session");
    let people = [
        ("anonymous", String::new()),
        ("compliant", format!("Cookie: _clearance={compliant}\r\n")),
        ("blocked", format!("Cookie: _clearance={blocked}\r\n")),
    ];
    let targets = crate::forward_auth::NON_CANONICAL;
    assert!(targets.len() >= 15);
    for (who, cookie) in &people {
        for target in targets {
            let before = world.upstream.request_count();
            let request = format!(
                "GET {target} HTTP/1.1\r\nHost: {proxy_hp}\r\nAccept: text/html\r\n{cookie}Connection: close\r\n\r\n"
            );
            let r = crate::support::raw::send(port, request.as_bytes()).await;
            let allowed: &[u16] = match (proxy, target.contains("%c0")) {
                (Proxy::Nginx, true) => &[500],
                _ => &[400],
            };
            assert!(
                allowed.contains(&r.status),
                "{proxy:?} {who} {target}: {} (expected {allowed:?})\n{}\n{}",
                r.status,
                r.text.chars().take(400).collect::<String>(),
                proxy_logs()
            );
            assert_eq!(
                world.upstream.request_count(),
                before,
                "{proxy:?} {who} {target}: the app was reached"
            );
            // Refused by the proxy itself (defence in depth), not only by Clearance, whose
            // answers carry X-Request-Id; non-UTF-8 is the one class left to Clearance.
            if !target.contains("%c0") {
                assert!(
                    r.header("x-request-id").is_none(),
                    "{proxy:?} {who} {target}: the proxy passed it on: {}",
                    r.text.chars().take(300).collect::<String>()
                );
            }
        }
        // The same request in canonical form is served as usual (the public route).
        let request = format!(
            "GET /status/200 HTTP/1.1\r\nHost: {proxy_hp}\r\n{cookie}Connection: close\r\n\r\n"
        );
        let r = crate::support::raw::send(port, request.as_bytes()).await;
        assert_eq!(r.status, 200, "{proxy:?} {who}: {}", r.text);
    }
}

#[tokio::test]
async fn nginx_auth_request_signs_in_blocks_and_admits() {
    let proxy_port = free_port();
    let world = clearance_behind(proxy_port).await;
    let nginx = Nginx::start(proxy_port, &proxy_config("nginx.conf", &world, proxy_port)).await;
    let compliant = journey(&world, Proxy::Nginx, &nginx.url(), || nginx.logs()).await;
    non_canonical_targets_are_refused(&world, Proxy::Nginx, &nginx.url(), &compliant, || {
        nginx.logs()
    })
    .await;
}

#[tokio::test]
async fn caddy_forward_auth_signs_in_blocks_and_admits() {
    let proxy_port = free_port();
    let world = clearance_behind(proxy_port).await;
    let caddy = Caddy::start(proxy_port, &proxy_config("Caddyfile", &world, proxy_port)).await;
    let compliant = journey(&world, Proxy::Caddy, &caddy.url(), || caddy.logs()).await;
    non_canonical_targets_are_refused(&world, Proxy::Caddy, &caddy.url(), &compliant, || {
        caddy.logs()
    })
    .await;
}

// ------------------------------------------------------------------------------------------
// Traefik and Envoy: the example files, checked against what Clearance implements.
// ------------------------------------------------------------------------------------------

fn yaml(name: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&example(name))
        .unwrap_or_else(|e| panic!("config/examples/{name} is not YAML: {e}"));
    assert_eq!(docs.len(), 1, "{name}: one document");
    docs.remove(0)
}

fn text<'a>(y: &'a Yaml, what: &str) -> &'a str {
    y.as_str()
        .unwrap_or_else(|| panic!("{what} should be a string, is {y:?}"))
}

fn list<'a>(y: &'a Yaml, what: &str) -> &'a [Yaml] {
    y.as_vec()
        .unwrap_or_else(|| panic!("{what} should be a list, is {y:?}"))
}

fn lowercase_set<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    names.into_iter().map(str::to_ascii_lowercase).collect()
}

fn identity_set() -> BTreeSet<String> {
    lowercase_set(IDENTITY_HEADERS)
}

/// The identity-like headers of one of Clearance's answers.
fn identity_like(headers: &reqwest::header::HeaderMap) -> BTreeSet<String> {
    headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("x-auth-request-") || k.starts_with("x-forwarded-"))
        .collect()
}

/// The Traefik middleware, checked on its own.
fn traefik_forward_auth(doc: &Yaml) -> &Yaml {
    let http = &doc["http"];
    let app = &http["routers"]["app"];
    assert_eq!(text(&app["service"], "routers.app.service"), "app");
    let middleware = text(
        &list(&app["middlewares"], "routers.app.middlewares")[0],
        "middleware",
    );
    let forward_auth = &http["middlewares"][middleware]["forwardAuth"];
    assert!(
        !forward_auth.is_badvalue(),
        "the app router's middleware {middleware:?} is a forwardAuth"
    );
    forward_auth
}

#[test]
fn traefik_example_is_wired_to_clearance() {
    let doc = yaml("traefik-dynamic.yml");
    let http = &doc["http"];
    let forward_auth = traefik_forward_auth(&doc);
    assert_eq!(
        text(&forward_auth["address"], "forwardAuth.address"),
        format!("http://{CLEARANCE_ADDR}/oauth2/auth/traefik"),
        "Traefik asks Clearance in Traefik mode"
    );
    assert_eq!(
        forward_auth["trustForwardHeader"].as_bool(),
        Some(false),
        "Traefik must set X-Forwarded-* itself, not pass on a client's"
    );
    let copied = lowercase_set(
        list(&forward_auth["authResponseHeaders"], "authResponseHeaders")
            .iter()
            .map(|h| text(h, "header")),
    );
    assert_eq!(copied, identity_set(), "every identity header is copied");

    // The app goes to the app; Clearance's own pages to Clearance, without the middleware.
    let url_of = |service: &str| {
        text(
            &list(
                &http["services"][service]["loadBalancer"]["servers"],
                "servers",
            )[0]["url"],
            "server url",
        )
        .to_owned()
    };
    assert_eq!(url_of("app"), format!("http://{APP_ADDR}"));
    let own = &http["routers"]["clearance"];
    let service = text(&own["service"], "routers.clearance.service");
    assert_eq!(url_of(service), format!("http://{CLEARANCE_ADDR}"));
    assert!(
        own["middlewares"].is_badvalue(),
        "no forward-auth on sign-in"
    );
    let rule = text(&own["rule"], "routers.clearance.rule");
    for needed in [
        "PathPrefix(`/oauth2/`)",
        "PathPrefix(`/.clearance/`)",
        "!PathPrefix(`/oauth2/auth`)",
    ] {
        assert!(rule.contains(needed), "{rule} lacks {needed}");
    }
    assert!(
        own["priority"].as_i64() > http["routers"]["app"]["priority"].as_i64(),
        "Clearance's pages win over the app's catch-all"
    );
}

/// The Envoy ext_authz filter's `http_service`.
fn envoy_http_service(doc: &Yaml) -> (&Yaml, &Yaml) {
    let listener = &list(&doc["static_resources"]["listeners"], "listeners")[0];
    let hcm = &list(
        &list(&listener["filter_chains"], "filter_chains")[0]["filters"],
        "filters",
    )[0]["typed_config"];
    let filters = list(&hcm["http_filters"], "http_filters");
    let ext_authz = filters
        .iter()
        .find(|f| f["name"].as_str() == Some("envoy.filters.http.ext_authz"))
        .expect("an ext_authz filter");
    assert_eq!(
        filters.last().unwrap()["name"].as_str(),
        Some("envoy.filters.http.router"),
        "the router comes last"
    );
    (hcm, &ext_authz["typed_config"])
}

fn envoy_cluster_addr(doc: &Yaml, name: &str) -> String {
    let cluster = list(&doc["static_resources"]["clusters"], "clusters")
        .iter()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("a cluster {name:?}"));
    let socket = &list(
        &list(&cluster["load_assignment"]["endpoints"], "endpoints")[0]["lb_endpoints"],
        "lb_endpoints",
    )[0]["endpoint"]["address"]["socket_address"];
    format!(
        "{}:{}",
        text(&socket["address"], "address"),
        socket["port_value"].as_i64().expect("port_value")
    )
}

/// The `exact` header names of a pattern list (regular expressions left out).
fn patterns(y: &Yaml, what: &str) -> BTreeSet<String> {
    lowercase_set(
        list(&y["patterns"], what)
            .iter()
            .filter(|p| p["safe_regex"].is_badvalue())
            .map(|p| text(&p["exact"], "exact")),
    )
}

#[test]
fn envoy_example_is_wired_to_clearance() {
    let doc = yaml("envoy.yaml");
    assert_eq!(envoy_cluster_addr(&doc, "clearance"), CLEARANCE_ADDR);
    assert_eq!(envoy_cluster_addr(&doc, "app"), APP_ADDR);
    let (hcm, ext_authz) = envoy_http_service(&doc);
    assert_eq!(
        ext_authz["failure_mode_allow"].as_bool(),
        Some(false),
        "fail closed"
    );
    let service = &ext_authz["http_service"];
    assert_eq!(
        text(&service["server_uri"]["cluster"], "cluster"),
        "clearance"
    );
    assert_eq!(
        text(&service["server_uri"]["uri"], "uri"),
        format!("http://{CLEARANCE_ADDR}")
    );
    assert_eq!(
        text(&service["path_prefix"], "path_prefix"),
        clearance::http::forward_auth::ENVOY_PREFIX
    );
    let request = patterns(
        &service["authorization_request"]["allowed_headers"],
        "allowed_headers",
    );
    for needed in ["cookie", "accept", "authorization"] {
        assert!(request.contains(needed), "{needed} reaches Clearance");
    }
    // ... and every other header, so that Clearance sees (and refuses) an identity header the
    // client sent, which Envoy would otherwise pass on to the app.
    let every = list(
        &service["authorization_request"]["allowed_headers"]["patterns"],
        "allowed_headers",
    )
    .iter()
    .any(|p| p["safe_regex"]["regex"].as_str() == Some(".*"));
    assert!(every, "every client header reaches Clearance");
    let response = &service["authorization_response"];
    assert_eq!(
        patterns(&response["allowed_upstream_headers"], "upstream"),
        identity_set(),
        "every identity header goes to the app"
    );
    let client = patterns(&response["allowed_client_headers"], "client");
    for needed in ["location", "set-cookie", "content-type"] {
        assert!(client.contains(needed), "{needed} reaches the person");
    }

    // Routes: the auth endpoint is not exposed, Clearance's pages skip ext_authz, the rest is
    // the app's, asked about first. Envoy takes the first match, so the order matters.
    let vhost = &list(&hcm["route_config"]["virtual_hosts"], "virtual_hosts")[0];
    let routes: Vec<(String, &Yaml)> = list(&vhost["routes"], "routes")
        .iter()
        .map(|r| (text(&r["match"]["prefix"], "prefix").to_owned(), r))
        .collect();
    let prefixes: Vec<&str> = routes.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        prefixes,
        ["/oauth2/auth", "/oauth2/", "/.clearance/", "/"],
        "route order"
    );
    let disabled = |r: &Yaml| {
        r["typed_per_filter_config"]["envoy.filters.http.ext_authz"]["disabled"].as_bool()
            == Some(true)
    };
    assert_eq!(routes[0].1["direct_response"]["status"].as_i64(), Some(404));
    for (prefix, route) in &routes[1..3] {
        assert_eq!(
            route["route"]["cluster"].as_str(),
            Some("clearance"),
            "{prefix}"
        );
        assert!(disabled(route), "{prefix}: no ext_authz on sign-in");
    }
    assert_eq!(routes[3].1["route"]["cluster"].as_str(), Some("app"));
    assert!(!disabled(routes[3].1), "the app is protected");
}

#[tokio::test]
async fn traefik_and_envoy_examples_match_clearances_answers() {
    let proxy_port = free_port();
    let public_url = format!("http://127.0.0.1:{proxy_port}");
    let world = clearance_behind(proxy_port).await;
    let proxy = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let proxy_host = format!("127.0.0.1:{proxy_port}");

    // Traefik: the middleware's address, on this Clearance.
    let traefik = yaml("traefik-dynamic.yml");
    let forward_auth = traefik_forward_auth(&traefik);
    let address =
        text(&forward_auth["address"], "address").replace(CLEARANCE_ADDR, &world.gate.host_port());
    let copied = lowercase_set(
        list(&forward_auth["authResponseHeaders"], "authResponseHeaders")
            .iter()
            .map(|h| text(h, "header")),
    );
    let ask_traefik = |uri: &str, accept: &str| {
        proxy
            .get(&address)
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", "http")
            .header("x-forwarded-host", &proxy_host)
            .header("x-forwarded-uri", uri)
            .header("x-forwarded-for", "198.51.100.7")
            .header("accept", accept)
            .header("x-auth-request-user", "mallory@example.com")
            .send()
    };
    let r = ask_traefik("/status", "text/html").await.unwrap();
    assert_eq!(r.status(), 200, "public route");
    assert_eq!(
        identity_like(r.headers()),
        copied,
        "authResponseHeaders copies exactly what Clearance sends"
    );
    for name in &copied {
        assert_eq!(
            r.headers()[name.as_str()],
            "",
            "{name} is empty when nobody is known"
        );
    }
    let r = ask_traefik("/docs?x=1", "text/html").await.unwrap();
    assert_eq!(r.status(), 302);
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        format!(
            "{}{}",
            &location[..url::Position::BeforePath],
            location.path()
        ),
        format!("{public_url}/oauth2/start")
    );
    assert_eq!(
        query_param(&location, "rd").as_deref(),
        Some(format!("{public_url}/docs?x=1").as_str())
    );
    let r = ask_traefik("/docs", "application/json").await.unwrap();
    assert_eq!(r.status(), 401);

    // Envoy: the ext_authz http_service, on this Clearance.
    let envoy = yaml("envoy.yaml");
    let (_, ext_authz) = envoy_http_service(&envoy);
    let service = &ext_authz["http_service"];
    let prefix = text(&service["path_prefix"], "path_prefix");
    let response = &service["authorization_response"];
    let upstream = patterns(&response["allowed_upstream_headers"], "upstream");
    let client = patterns(&response["allowed_client_headers"], "client");
    let base =
        text(&service["server_uri"]["uri"], "uri").replace(CLEARANCE_ADDR, &world.gate.host_port());
    let ask_envoy = |path: &str, accept: &str| {
        proxy
            .get(format!("{base}{prefix}{path}"))
            .header("host", &proxy_host)
            .header("x-forwarded-proto", "http")
            .header("accept", accept)
            .send()
    };
    let r = ask_envoy("/status", "text/html").await.unwrap();
    assert_eq!(r.status(), 200, "public route");
    assert_eq!(
        identity_like(r.headers()),
        upstream,
        "allowed_upstream_headers passes exactly what Clearance sends"
    );
    let r = ask_envoy("/docs?x=1", "text/html").await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(client.contains("location"), "the sign-in redirect works");
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        query_param(&location, "rd").as_deref(),
        Some(format!("{public_url}/docs?x=1").as_str())
    );
    let r = ask_envoy("/docs", "application/json").await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(client.contains("content-type"), "the 401 stays JSON");
}
