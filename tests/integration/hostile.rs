//! The hostile-input table: every kind of forged, malformed or oversized request, each sent
//! three times, as an attacker would (anonymous, signed in and compliant, signed in and
//! blocked), each with the status it must get; none may reach the upstream unless the person
//! may, none may carry a forged identity or Clearance's own cookies there, none may crash the
//! gate, and floods get 429.

use crate::gate::{ADMIN_TOKEN, World};
use crate::support::raw::{self, RawResponse};
use crate::support::{Browser, ProviderConfig};
use crate::{complete_everything, sign_in};
use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

const XAPI_TOKEN: &str = "hostile-xapi-token-0123456789";
const SCIM_TOKEN: &str = "hostile-scim-token-0123456789";

/// Where the person's session cookie goes in a request (or nothing, anonymously).
const CRED: &str = "@CRED@";
/// Replaced by the compliant person's sealed session value (for cookie-name tricks).
const COMPLIANT_VALUE: &str = "@COMPLIANT@";

/// What a vector must get, for each of the three people who send it.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// The same refusal for everyone (malformed, oversized, forged credentials, bad input);
    /// nothing reaches the upstream.
    Same(u16),
    /// A gated route: anonymous 401, blocked 403, compliant 200 as themselves at the upstream,
    /// which receives `path` (the judged, canonical path) when one is given.
    Gated(Option<&'static str>),
    /// Gated, but the upstream answers the compliant person with this status (no such page).
    GatedUpstream(u16),
    /// A public route: everyone reaches the upstream, as nobody.
    Public,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    Compliant,
    Blocked,
}

impl Expect {
    /// The status `who` must get, and whether the upstream may see the request.
    fn for_person(self, who: Who) -> (u16, bool) {
        match (self, who) {
            (Self::Same(status), _) => (status, false),
            (Self::Public, _) => (200, true),
            (Self::Gated(_) | Self::GatedUpstream(_), Who::Anonymous) => (401, false),
            (Self::Gated(_) | Self::GatedUpstream(_), Who::Blocked) => (403, false),
            (Self::Gated(_), Who::Compliant) => (200, true),
            (Self::GatedUpstream(status), Who::Compliant) => (status, true),
        }
    }
}

/// One hostile request and what it must get.
struct Vector {
    name: &'static str,
    request: Vec<u8>,
    expect: Expect,
}

fn get(path: &str, headers: &str) -> Vec<u8> {
    get_host(path, "Host: gate.test\r\n", headers)
}

/// A GET with its own `Host` line(s) (or none).
fn get_host(path: &str, host: &str, headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\n{host}{headers}{CRED}Connection: close\r\n\r\n").into_bytes()
}

fn post(path: &str, headers: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: gate.test\r\n{headers}{CRED}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn v(name: &'static str, request: Vec<u8>, expect: Expect) -> Vector {
    Vector {
        name,
        request,
        expect,
    }
}

fn same(name: &'static str, request: Vec<u8>, status: u16) -> Vector {
    v(name, request, Expect::Same(status))
}

fn gated(name: &'static str, request: Vec<u8>) -> Vector {
    v(name, request, Expect::Gated(None))
}

fn gated_at(name: &'static str, request: Vec<u8>, upstream_path: &'static str) -> Vector {
    v(name, request, Expect::Gated(Some(upstream_path)))
}

fn public(name: &'static str, request: Vec<u8>) -> Vector {
    v(name, request, Expect::Public)
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn jwt(header: &str, payload: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(payload.as_bytes()),
        b64(signature)
    )
}

fn vectors() -> Vec<Vector> {
    let admin = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    let xapi = format!("Authorization: Bearer {XAPI_TOKEN}\r\nX-Experience-API-Version: 1.0.3\r\n");
    let claims =
        r#"{"sub":"mallory","iss":"http://127.0.0.1/","aud":"clearance","exp":4102444800}"#;
    let scim = format!("Authorization: Bearer {SCIM_TOKEN}\r\n");
    let patch = |path: &str, headers: &str, body: &[u8]| {
        let mut r = post(path, headers, "application/scim+json", body);
        r.splice(0..4, b"PATCH".iter().copied());
        r
    };
    let bearer = |token: String| format!("Authorization: Bearer {token}\r\n");
    let record = |body: &str| {
        post(
            "/.clearance/api/v1/records",
            &admin,
            "application/json",
            body.as_bytes(),
        )
    };
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let huge_cookie = format!("Cookie: _clearance={}\r\n", "A".repeat(40_000));
    let big_cookie = format!("Cookie: _clearance={}\r\n", "A".repeat(8_000));
    let many_cookies = format!(
        "Cookie: {}\r\n",
        (0..500)
            .map(|i| format!("c{i}=v"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let many_headers: String = (0..120).map(|i| format!("X-Pad-{i}: x\r\n")).collect();
    let huge_head = format!("X-Pad: {}\r\n", "p".repeat(140_000));
    let raw = |text: &str| text.replace("\n", "\r\n").into_bytes();
    // Other gatekeepers' identity headers, which apps that sat behind them trust.
    let foreign: &[(&'static str, &'static str)] = &[
        (
            "google iap email",
            "X-Goog-Authenticated-User-Email: accounts.google.com:mallory@example.com",
        ),
        ("google iap jwt", "X-Goog-IAP-JWT-Assertion: mallory"),
        (
            "cloudflare access email",
            "Cf-Access-Authenticated-User-Email: mallory@example.com",
        ),
        (
            "mod_auth_openidc claim",
            "OIDC-Claim-email: mallory@example.com",
        ),
        (
            "mod_auth_openidc claim underscores",
            "OIDC_CLAIM_sub: mallory",
        ),
        (
            "azure app service principal",
            "X-MS-CLIENT-PRINCIPAL-NAME: mallory@example.com",
        ),
        ("aws alb identity", "X-Amzn-Oidc-Identity: mallory"),
        (
            "pomerium claim",
            "X-Pomerium-Claim-Email: mallory@example.com",
        ),
        ("authelia remote-user", "Remote-User: mallory"),
        (
            "authelia remote-email dots",
            "Remote.Email: mallory@example.com",
        ),
        ("oauth2-proxy gap-auth", "GAP-Auth: mallory@example.com"),
        ("vouch user", "X-Vouch-User: mallory@example.com"),
        (
            "tailscale login",
            "Tailscale-User-Login: mallory@example.com",
        ),
        ("kong consumer", "X-Consumer-Username: mallory"),
        ("grafana webauth", "X-WEBAUTH-USER: mallory"),
    ];
    let mut table = vec![
        // Identity headers from the client, in every spelling, on a protected route.
        gated("x-auth-request-user", get("/echo/x", "X-Auth-Request-User: mallory\r\n")),
        gated("x-auth-request-email", get("/echo/x", "X-Auth-Request-Email: mallory@example.com\r\n")),
        gated("x-auth-request-groups", get("/echo/x", "X-Auth-Request-Groups: admins-mallory\r\n")),
        gated("x_auth_request_user underscores", get("/echo/x", "X_Auth_Request_User: mallory\r\n")),
        gated("x-forwarded-user mixed case", get("/echo/x", "x-fOrWaRdEd-uSeR: mallory\r\n")),
        gated("x-forwarded-email duplicated", get("/echo/x", "X-Forwarded-Email: a@example.com\r\nX-Forwarded-Email: mallory@example.com\r\n")),
        same("whitespace before the colon", get("/echo/x", "X-Forwarded-User : mallory\r\n"), 400),
        gated("x-forwarded-for from an untrusted peer", get("/echo/x", "X-Forwarded-For: 10.0.0.1\r\n")),
        gated("forwarded from an untrusted peer", get("/echo/x", "Forwarded: for=10.0.0.1;host=evil.example;proto=https\r\n")),
        gated("x-forwarded-host from an untrusted peer", get("/echo/x", "X-Forwarded-Host: evil.example\r\n")),
        gated("x-original-url from a client", get("/echo/x", "X-Original-URL: /echo/public/mallory\r\n")),
        // nginx mode (the default) answers 500 on purpose: a 403 would loop through the block page.
        same("forward-auth nginx x-original-url untrusted", get("/oauth2/auth", "X-Original-URL: http://app.example/echo/public\r\n"), 500),
        same("forward-auth x-forwarded-uri untrusted", get("/oauth2/auth/traefik", "X-Forwarded-Uri: /echo/public\r\nX-Forwarded-Host: app.example\r\n"), 403),
        // The same headers on a public route reach the upstream, stripped.
        public("public x-auth-request-user", get("/echo/public/x", "X-Auth-Request-User: mallory\r\n")),
        public("public x_forwarded_user underscores", get("/echo/public/x", "X_Forwarded_User: mallory\r\n")),
        public("public x.auth.request.email dots", get("/echo/public/x", "X.Auth.Request.Email: mallory@example.com\r\n")),
        public("public X-AUTH-REQUEST-GROUPS upper case", get("/echo/public/x", "X-AUTH-REQUEST-GROUPS: mallory-admins\r\n")),
        // Path tricks that try to reach a protected path through the public prefix: judged
        // (and forwarded) as the path they resolve to.
        gated_at("dot segments", get("/echo/public/../secret", ""), "/echo/secret"),
        gated_at("encoded dot segments", get("/echo/public/%2e%2e/secret", ""), "/echo/secret"),
        gated_at("mixed dot segment", get("/echo/public/.%2e/secret", ""), "/echo/secret"),
        same("encoded slash", get("/echo/public/..%2fsecret", ""), 400),
        same("encoded backslash", get("/echo/public/..%5csecret", ""), 400),
        same("double encoding", get("/echo/public/%252e%252e/secret", ""), 400),
        same("overlong utf-8 dot", get("/echo/public/%c0%ae%c0%ae/secret", ""), 400),
        same("nul byte", get("/echo/public/%00/../secret", ""), 400),
        gated_at(";params", get("/echo/public;x=1/../secret", ""), "/echo/secret"),
        gated_at("..; parameter segment", get("/echo/public/..;/secret", ""), "/echo/secret"),
        v("double slash", get("//echo/public/../../secret", ""), Expect::GatedUpstream(404)),
        v("case trick on the public prefix", get("/ECHO/PUBLIC/x", ""), Expect::GatedUpstream(404)),
        gated("unicode look-alike prefix", get("/echo/publ%C4%B1c/x", "")),
        same("encoded slashes all the way", get("/echo/public%2f..%2f..%2fsecret", ""), 400),
        // A fragment never reaches a server: the parser drops it, and the path judged is the
        // path forwarded.
        gated_at("raw # in the target", get("/echo/x#/echo/public", ""), "/echo/x"),
        // Open redirects after sign-in: refused, or sent home, never to evil.example.
        same("rd //evil", get("/oauth2/start?rd=//evil.example/", ""), 400),
        same("rd /\\evil", get("/oauth2/start?rd=/%5Cevil.example/", ""), 400),
        same("rd https:evil", get("/oauth2/start?rd=https:evil.example", ""), 400),
        same("rd javascript:", get("/oauth2/start?rd=javascript:alert(1)", ""), 400),
        same("rd encoded //evil", get("/oauth2/start?rd=%2F%2Fevil.example%2F", ""), 400),
        same("rd userinfo@host", get("/oauth2/start?rd=https://gate.test@evil.example/", ""), 400),
        same("rd absolute evil", get("/oauth2/start?rd=https://evil.example/", ""), 400),
        same("rd idn look-alike", get("/oauth2/start?rd=https://xn--80ak6aa92e.com/", ""), 400),
        same("rd crlf", get("/oauth2/start?rd=/%0d%0aLocation:%20https://evil.example", ""), 400),
        same("rd tab", get("/oauth2/start?rd=/%09/evil.example", ""), 400),
        // Host headers that could be read two ways: refused before anything routes on them.
        same("host with userinfo", get_host("/echo/x", "Host: gate.test@evil.example\r\n", ""), 400),
        same("host with an empty port", get_host("/echo/x", "Host: gate.test:\r\n", ""), 400),
        same("host with a non-numeric port", get_host("/echo/x", "Host: gate.test:80x\r\n", ""), 400),
        same("host with two ports", get_host("/echo/x", "Host: gate.test:80:81\r\n", ""), 400),
        same("host with a port too large", get_host("/echo/x", "Host: gate.test:65536\r\n", ""), 400),
        same("host percent-encoded", get_host("/echo/x", "Host: gate.test%2fevil\r\n", ""), 400),
        same("host with a comma", get_host("/echo/x", "Host: gate.test,evil.example\r\n", ""), 400),
        same("host with a space", get_host("/echo/x", "Host: gate .test\r\n", ""), 400),
        same("host with a path", get_host("/echo/x", "Host: gate.test/echo/public\r\n", ""), 400),
        same("two host headers", get_host("/echo/x", "Host: gate.test\r\nHost: evil.example\r\n", ""), 400),
        same("no host at all", get_host("/echo/x", "", ""), 400),
        same("absolute-form target naming another host", get_host("http://evil.example/echo/x", "Host: gate.test\r\n", ""), 400),
        // Cookie tampering (the tampered cookie comes first, so it is the one read: refused).
        same("garbage session cookie", get("/echo/x", "Cookie: _clearance=%%%not-base64%%%\r\n"), 401),
        same("truncated session cookie", get("/echo/x", "Cookie: _clearance=AAAA\r\n"), 401),
        same("cookie sealed with another key", get("/echo/x", &format!("Cookie: _clearance={}\r\n", b64(&[7u8; 96]))), 401),
        same("forged plain-text session", get("/echo/x", "Cookie: _clearance=mallory@example.com\r\n"), 401),
        same("big session cookie", get("/echo/x", &big_cookie), 401),
        same("huge session cookie", get("/echo/x", &huge_cookie), 431),
        gated("many cookies", get("/echo/x", &many_cookies)),
        same("forged login-state cookie on callback", get("/oauth2/callback?code=x&state=y", "Cookie: _clearance_login=AAAA\r\n"), 400),
        // A cookie whose NAME decodes to Clearance's is not the session, and never forwarded.
        gated("encoded cookie name %5Fclearance", get("/echo/x", &format!("Cookie: %5Fclearance={COMPLIANT_VALUE}\r\n"))),
        gated("encoded cookie name _clearanc%65", get("/echo/x", &format!("Cookie: _clearanc%65={COMPLIANT_VALUE}\r\n"))),
        public("encoded cookie name on a public route", get("/echo/public/x", &format!("Cookie: %5F%63learance={COMPLIANT_VALUE}\r\n"))),
        // Forged bearer tokens: judged as bearer tokens, strictly, whatever cookie comes with them.
        same("jwt alg none", get("/echo/x", &bearer(jwt(r#"{"alg":"none","typ":"JWT"}"#, claims, b""))), 401),
        same("jwt hs256 with a public key", get("/echo/x", &bearer(jwt(r#"{"alg":"HS256","typ":"JWT"}"#, claims, &Sha256::digest(b"public key")))), 401),
        same("jwt unknown kid", get("/echo/x", &bearer(jwt(r#"{"alg":"RS256","kid":"nope"}"#, claims, &[1u8; 256]))), 401),
        same("jwt kid path traversal", get("/echo/x", &bearer(jwt(r#"{"alg":"RS256","kid":"../../../../etc/passwd"}"#, claims, &[1u8; 256]))), 401),
        same("jwt expired and wrong audience", get("/echo/x", &bearer(jwt(r#"{"alg":"RS256","kid":"x"}"#, r#"{"sub":"mallory","aud":"other","exp":1}"#, &[1u8; 256]))), 401),
        same("jwt huge", get("/echo/x", &bearer(jwt(r#"{"alg":"RS256"}"#, &"x".repeat(20_000), &[1u8; 256]))), 401),
        same("jwt bad base64", get("/echo/x", "Authorization: Bearer !!!.@@@.###\r\n"), 401),
        // Broken heads.
        gated("bare LF header injection", get("/echo/x", "X-Test: a\nX-Auth-Request-User: mallory\r\n")),
        same("obs-fold continuation", get("/echo/x", "X-Test: a\r\n X-Auth-Request-User: mallory\r\n"), 400),
        same("nul in a header value", get("/echo/x", "X-Test: a\0b\r\n"), 400),
        same("control byte in the request line", get("/echo/\x01x", ""), 400),
        same("space in the path", get("/echo/a b", ""), 400),
        same("too many headers", get("/echo/x", &many_headers), 431),
        same("head over 128 KiB", get("/echo/x", &huge_head), 431),
        // Bad Content-Length.
        same("content-length not a number", raw("POST /echo/x HTTP/1.1\nHost: gate.test\nContent-Length: abc\nConnection: close\n\n"), 400),
        same("content-length negative", raw("POST /echo/x HTTP/1.1\nHost: gate.test\nContent-Length: -1\nConnection: close\n\n"), 400),
        same("two different content-lengths", raw("POST /echo/x HTTP/1.1\nHost: gate.test\nContent-Length: 1\nContent-Length: 2\nConnection: close\n\nab"), 400),
        same("content-length with chunked", raw("POST /echo/x HTTP/1.1\nHost: gate.test\nContent-Length: 4\nTransfer-Encoding: chunked\nConnection: close\n\n0\n\n"), 400),
        // The records API.
        same("records without a token", post("/.clearance/api/v1/records", "", "application/json", b"{}"), 401),
        same("records with a wrong token", post("/.clearance/api/v1/records", "Authorization: Bearer wrong\r\n", "application/json", b"{}"), 401),
        same("records wrong types", record(r#"{"subject":1,"requirement":[],"version":{},"completed_at":true}"#), 400),
        same("records huge number", record(r#"{"subject":"a@example.com","requirement":"security-awareness","version":1e999,"completed_at":"2026-01-01T00:00:00Z"}"#), 400),
        same("records deep nesting", record(&deep), 400),
        same("records duplicate keys", record(r#"{"subject":"a@example.com","subject":"b@example.com","requirement":"security-awareness","version":"2026.1","completed_at":"2026-01-01T00:00:00Z"}"#), 400),
        same("records trailing garbage", record(r#"{"subject":"a@example.com","requirement":"security-awareness","version":"2026.1","completed_at":"2026-01-01T00:00:00Z"} garbage"#), 400),
        same("records wrong content type", post("/.clearance/api/v1/records", &admin, "text/plain", b"{}"), 400),
        same("records over 64 KiB", record(&format!("{{\"subject\":\"{}\"}}", "a".repeat(70_000))), 413),
        // xAPI statements.
        same("xapi without credentials", post("/.clearance/xapi/statements", "X-Experience-API-Version: 1.0.3\r\n", "application/json", b"{}"), 401),
        same("xapi not json", post("/.clearance/xapi/statements", &xapi, "application/json", b"{not json"), 400),
        same("xapi statement without actor", post("/.clearance/xapi/statements", &xapi, "application/json", br#"{"verb":{"id":"http://adlnet.gov/expapi/verbs/completed"},"object":{"id":"x"}}"#), 400),
        same("xapi over 1 MiB", post("/.clearance/xapi/statements", &xapi, "application/json", &vec![b' '; 1_100_000]), 413),
        // SCIM provisioning.
        same("scim without a token", get("/.clearance/scim/v2/Users", ""), 401),
        same("scim bad filter", get("/.clearance/scim/v2/Users?filter=userName%20eq", &scim), 400),
        same("scim wrong schemas", post("/.clearance/scim/v2/Users", &scim, "application/scim+json", br#"{"schemas":["urn:evil"],"userName":"a@example.com"}"#), 400),
        same("scim not json", post("/.clearance/scim/v2/Users", &scim, "application/scim+json", b"{not json"), 400),
        same("scim huge patch", patch("/.clearance/scim/v2/Users/x", &scim, &vec![b' '; 300_000]), 413),
        // E-signature webhooks.
        same("docusign unsigned", post("/.clearance/webhooks/docusign", "", "application/json", b"{}"), 401),
        same("docusign bad signature", post("/.clearance/webhooks/docusign", "X-DocuSign-Signature-1: AAAA\r\n", "application/json", b"{}"), 401),
        same("docusign over 2 MiB", post("/.clearance/webhooks/docusign", "", "application/json", &vec![b' '; 2_200_000]), 413),
    ];
    for (name, header) in foreign {
        table.push(gated(name, get("/echo/x", &format!("{header}\r\n"))));
        table.push(public(
            name,
            get("/echo/public/x", &format!("{header}\r\n")),
        ));
    }
    table
}

async fn world() -> World {
    let sha = hex::encode(Sha256::digest(XAPI_TOKEN.as_bytes()));
    let scim_sha = hex::encode(Sha256::digest(SCIM_TOKEN.as_bytes()));
    let extra = format!(
        r#"
[bearer]
audiences = ["{}"]

[limits]
sign_in_per_minute = 600
sign_in_burst = 600

[xapi]
account_home_page = "https://lms.example.com"
credentials = [ {{ name = "lms-token", sha256 = "{sha}" }} ]

[[scim.tokens]]
name = "idp"
sha256 = "{scim_sha}"

[webhooks.docusign]
hmac_keys = ["aG9zdGlsZS1kb2N1c2lnbi1rZXktMDEyMzQ1Njc4OQ=="]

[[webhooks.docusign.templates]]
template_id = "hostile-template"
requirement = "confidentiality-agreement"
version = "1"
"#,
        ProviderConfig::API_AUDIENCE
    );
    World::start_with(|p| p, "", &extra).await
}

/// Sends `request` as it is, anonymously (no session in the credential slot).
async fn send(port: u16, request: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(request).replace(CRED, "");
    raw::send(port, text.as_bytes()).await
}

async fn healthy(world: &World) -> bool {
    send(world.gate.port, &get("/healthz", "")).await.status == 200
}

/// The JSON the echo upstream answered with, out of a raw response (chunked or not).
fn echo(r: &RawResponse) -> Option<Value> {
    let body = r.text.split_once("\r\n\r\n")?.1;
    let (start, end) = (body.find('{')?, body.rfind('}')?);
    serde_json::from_str(&body[start..=end]).ok()
}

/// A signed-in person's sealed session value.
async fn session_of(world: &World, login: &str) -> String {
    let browser = Browser::new();
    sign_in(world, &browser, login, "/echo/open/x").await;
    browser
        .cookie(&world.gate.host_port(), "_clearance")
        .expect("a session cookie")
}

#[tokio::test]
async fn the_hostile_table_admits_nobody_and_crashes_nothing() {
    let world = world().await;
    let compliant = session_of(&world, "alice@example.com").await;
    complete_everything(&world, "alice@example.com").await;
    let blocked = session_of(&world, "carl@example.com").await;
    let table = vectors();
    assert!(table.len() >= 100, "{} vectors", table.len());
    let mut failures = Vec::new();
    for who in [Who::Anonymous, Who::Compliant, Who::Blocked] {
        let credential = match who {
            Who::Anonymous => String::new(),
            Who::Compliant => format!("Cookie: _clearance={compliant}\r\n"),
            Who::Blocked => format!("Cookie: _clearance={blocked}\r\n"),
        };
        for vector in &table {
            let (status, may_reach) = vector.expect.for_person(who);
            let request = String::from_utf8_lossy(&vector.request)
                .replace(CRED, &credential)
                .replace(COMPLIANT_VALUE, &compliant);
            // Binary vectors (a NUL, bare LF) survive the round trip through text unchanged.
            let before = world.upstream.request_count();
            let r: RawResponse = send(world.gate.port, request.as_bytes()).await;
            let mut wrong = Vec::new();
            if r.status != status {
                wrong.push(format!("status {} (expected {status})", r.status));
            }
            let reached = world.upstream.request_count() > before;
            if reached && !may_reach {
                wrong.push("reached the upstream".to_owned());
            }
            if reached && let Some(echo) = echo(&r) {
                let headers = echo["headers"].to_string().to_ascii_lowercase();
                if headers.contains("mallory") {
                    wrong.push("a forged identity reached the upstream".to_owned());
                }
                if headers.contains(&compliant.to_ascii_lowercase())
                    || headers.contains(&blocked.to_ascii_lowercase())
                {
                    wrong.push("a session cookie reached the upstream".to_owned());
                }
                let user = &echo["headers"]["x-auth-request-user"];
                let expected_user = match (vector.expect, who) {
                    (Expect::Public, _) => Value::Null,
                    (_, Who::Compliant) => serde_json::json!(["alice@example.com"]),
                    _ => Value::Null,
                };
                if *user != expected_user {
                    wrong.push(format!("the upstream was told the person is {user}"));
                }
                if let Expect::Gated(Some(path)) = vector.expect
                    && echo["path"] != path
                {
                    wrong.push(format!(
                        "the upstream received {} (judged {path})",
                        echo["path"]
                    ));
                }
            }
            if r.header("location").is_some_and(|l| l.contains("evil")) {
                wrong.push("redirected to evil".to_owned());
            }
            if r.text.contains("panicked") {
                wrong.push("panicked".to_owned());
            }
            if !healthy(&world).await {
                wrong.push("/healthz no longer answers".to_owned());
            }
            if !wrong.is_empty() {
                let head: String = r.text.chars().take(300).collect();
                failures.push(format!(
                    "{who:?} {}: {} — {head:?}",
                    vector.name,
                    wrong.join(", ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests failed:\n{}",
        failures.len(),
        table.len() * 3,
        failures.join("\n")
    );
    continue_is_sent_only_to_whom_the_gate_admits(&world, &compliant, &blocked).await;
}

/// `Expect: 100-continue` is answered `100 Continue` only once the gate would admit the
/// request: anonymous and blocked people get their refusal instead (recorded once), the
/// connection is closed after it, and nothing reaches the upstream; a compliant person's body
/// arrives upstream as sent, without the expectation. Clearance's own endpoints invite the
/// body and judge the request with it.
async fn continue_is_sent_only_to_whom_the_gate_admits(
    world: &World,
    compliant: &str,
    blocked: &str,
) {
    let body = b"the body of the upload";
    let head = |path: &str, host: &str, credential: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\n{credential}Accept: application/json\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
    };
    let carl_denials = |log: &[Value]| {
        log.iter()
            .filter(|d| {
                d["event"]["path"] == "/echo/expect" && d["event"]["subject"] == "carl@example.com"
            })
            .count()
    };
    let denied_before = carl_denials(&crate::denials(world).await);
    let people = [
        ("anonymous", String::new(), 401),
        ("blocked", format!("Cookie: _clearance={blocked}\r\n"), 403),
    ];
    for (who, credential, status) in &people {
        let before = world.upstream.request_count();
        let answer = raw::converse(
            world.gate.port,
            &head("/echo/expect", "gate.test", credential),
            body,
        )
        .await;
        assert_eq!(answer.first.status, *status, "{who}: {}", answer.first.text);
        assert!(answer.last.is_none(), "{who} was invited to send the body");
        assert!(
            answer
                .first
                .text
                .to_ascii_lowercase()
                .contains("connection: close"),
            "{who}: {}",
            answer.first.text
        );
        assert_eq!(
            world.upstream.request_count(),
            before,
            "{who} reached the upstream"
        );
    }
    assert_eq!(
        carl_denials(&crate::denials(world).await),
        denied_before + 1,
        "the blocked person's refusal is recorded exactly once"
    );
    // Refused before the gate: a Host that could be read two ways, a path that is not one.
    for (what, path, host, status) in [
        (
            "two hosts in one",
            "/echo/expect",
            "gate.test@evil.test",
            400,
        ),
        ("an encoded NUL", "/echo/%00", "gate.test", 400),
    ] {
        let credential = format!("Cookie: _clearance={compliant}\r\n");
        let answer = raw::converse(world.gate.port, &head(path, host, &credential), body).await;
        assert_eq!(answer.first.status, status, "{what}: {}", answer.first.text);
    }

    // Admitted: invited, then forwarded with the body and the person's identity.
    let credential = format!("Cookie: _clearance={compliant}\r\nConnection: close\r\n");
    let before = world.upstream.request_count();
    let answer = raw::converse(
        world.gate.port,
        &head("/echo/expect", "gate.test", &credential),
        body,
    )
    .await;
    assert_eq!(answer.first.status, 100, "{}", answer.first.text);
    let last = answer.last.expect("the final answer");
    assert_eq!(last.status, 200, "{}", last.text);
    assert_eq!(world.upstream.request_count(), before + 1);
    let upstream = echo(&last).expect("the upstream's echo");
    assert_eq!(upstream["method"], "POST");
    assert_eq!(upstream["body"], "the body of the upload");
    assert_eq!(
        upstream["headers"]["x-auth-request-user"],
        serde_json::json!(["alice@example.com"])
    );
    assert!(
        upstream["headers"].get("expect").is_none(),
        "the expectation was met by Clearance: {}",
        upstream["headers"]
    );
    // A public route admits everyone.
    let answer = raw::converse(
        world.gate.port,
        &head("/echo/public/expect", "gate.test", "Connection: close\r\n"),
        body,
    )
    .await;
    assert_eq!(answer.first.status, 100, "{}", answer.first.text);
    let last = answer.last.expect("the final answer");
    assert_eq!(echo(&last).expect("echo")["body"], "the body of the upload");
    // Clearance's own endpoints read the body and judge the request with it.
    let answer = raw::converse(
        world.gate.port,
        &head(
            "/.clearance/api/v1/records",
            "gate.test",
            "Authorization: Bearer wrong\r\nConnection: close\r\n",
        ),
        body,
    )
    .await;
    assert_eq!(answer.first.status, 100, "{}", answer.first.text);
    assert_eq!(answer.last.expect("the final answer").status, 401);
}

#[tokio::test]
async fn floods_of_sign_ins_and_api_calls_get_429_with_retry_after() {
    let world = World::start_with(
        |p| p,
        "",
        "[limits]\nsign_in_per_minute = 6\nsign_in_burst = 3\napi_per_minute = 6\napi_burst = 5\n",
    )
    .await;
    let mut sign_in = Vec::new();
    for _ in 0..6 {
        sign_in.push(
            send(
                world.gate.port,
                &get("/oauth2/start?rd=/", "Accept: application/json\r\n"),
            )
            .await,
        );
    }
    let limited = sign_in.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        limited,
        3,
        "{:?}",
        sign_in.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let last = sign_in.last().unwrap();
    let wait: u64 = last
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=61).contains(&wait), "{last:?}");
    assert!(last.text.contains("rate_limited"), "{}", last.text);

    // Wrong API credentials count against the address; the admin token has its own budget.
    let wrong = "Authorization: Bearer wrong\r\n";
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            send(world.gate.port, &get("/.clearance/api/v1/denials", wrong))
                .await
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    let admin = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    let ok = send(world.gate.port, &get("/.clearance/api/v1/denials", &admin)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    // A request with `Expect: 100-continue` is charged once, when its head is judged: four
    // more fill the admin token's burst of five, and the next is refused before its body.
    let expecting = format!(
        "GET /.clearance/api/v1/denials HTTP/1.1\r\nHost: gate.test\r\n{admin}\
         Content-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    );
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let answer = raw::converse(world.gate.port, &expecting, b"{}").await;
        statuses.push((answer.first.status, answer.last.map(|r| r.status)));
    }
    assert_eq!(
        statuses,
        [
            (100, Some(200)),
            (100, Some(200)),
            (100, Some(200)),
            (100, Some(200)),
            (429, None)
        ]
    );
    // Forward-auth and health are never limited.
    assert!(healthy(&world).await);
    // Operators see the floods (the gate runs in this process, so its metrics are here).
    assert!(
        limited_count("rate_limited") >= 2.0,
        "{}",
        clearance::metrics::render()
    );
}

#[tokio::test]
async fn heads_over_max_header_bytes_get_431() {
    let world = World::start_with(|p| p, "", "[limits]\nmax_header_bytes = 2048\n").await;
    let r = send(
        world.gate.port,
        &get(
            "/echo/x",
            &format!(
                "Cookie: a={}\r\nAccept: application/json\r\n",
                "b".repeat(3000)
            ),
        ),
    )
    .await;
    assert_eq!(r.status, 431, "{}", r.text);
    assert!(r.text.contains("headers_too_large"), "{}", r.text);
    let fine = send(
        world.gate.port,
        &get("/echo/x", "Accept: application/json\r\n"),
    )
    .await;
    assert_eq!(fine.status, 401);
    assert!(limited_count("headers_too_large") >= 1.0);
}

/// `clearance_requests_limited_total` for one kind, from this process's metrics.
fn limited_count(kind: &str) -> f64 {
    let prefix = format!("clearance_requests_limited_total{{kind=\"{kind}\"}} ");
    clearance::metrics::render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or(0.0)
}
