//! The hostile-input table: every kind of forged, malformed or oversized request, each with the
//! status it must get, run against one World; none may reach the upstream with a forged
//! identity, none may crash the gate, and floods get 429.

use crate::gate::{ADMIN_TOKEN, World};
use crate::support::raw::{self, RawResponse};
use base64::Engine as _;
use sha2::{Digest, Sha256};

const XAPI_TOKEN: &str = "hostile-xapi-token-0123456789";
const SCIM_TOKEN: &str = "hostile-scim-token-0123456789";

/// One hostile request and the status it must get.
struct Vector {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    /// Routes that are public may reach the upstream, but never with a forged identity.
    may_reach_upstream: bool,
}

fn get(path: &str, headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: gate.test\r\n{headers}Connection: close\r\n\r\n")
        .into_bytes()
}

fn post(path: &str, headers: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: gate.test\r\n{headers}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn v(name: &'static str, request: Vec<u8>, status: u16) -> Vector {
    Vector {
        name,
        request,
        status,
        may_reach_upstream: false,
    }
}

fn public(name: &'static str, request: Vec<u8>, status: u16) -> Vector {
    Vector {
        may_reach_upstream: true,
        ..v(name, request, status)
    }
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
    vec![
        // Identity headers from the client, in every spelling, on a protected route.
        v("x-auth-request-user", get("/echo/x", "X-Auth-Request-User: mallory\r\n"), 401),
        v("x-auth-request-email", get("/echo/x", "X-Auth-Request-Email: mallory@example.com\r\n"), 401),
        v("x-auth-request-groups", get("/echo/x", "X-Auth-Request-Groups: admins\r\n"), 401),
        v("x_auth_request_user underscores", get("/echo/x", "X_Auth_Request_User: mallory\r\n"), 401),
        v("x-forwarded-user mixed case", get("/echo/x", "x-fOrWaRdEd-uSeR: mallory\r\n"), 401),
        v("x-forwarded-email duplicated", get("/echo/x", "X-Forwarded-Email: a@example.com\r\nX-Forwarded-Email: mallory@example.com\r\n"), 401),
        v("whitespace before the colon", get("/echo/x", "X-Forwarded-User : mallory\r\n"), 400),
        v("x-forwarded-for from an untrusted peer", get("/echo/x", "X-Forwarded-For: 10.0.0.1\r\n"), 401),
        v("forwarded from an untrusted peer", get("/echo/x", "Forwarded: for=10.0.0.1;host=evil.example;proto=https\r\n"), 401),
        v("x-forwarded-host from an untrusted peer", get("/echo/x", "X-Forwarded-Host: evil.example\r\n"), 401),
        // nginx mode (the default) answers 500 on purpose: a 403 would loop through the block page.
        v("forward-auth nginx x-original-url untrusted", get("/oauth2/auth", "X-Original-URL: http://app.example/echo/public\r\n"), 500),
        v("forward-auth x-forwarded-uri untrusted", get("/oauth2/auth/traefik", "X-Forwarded-Uri: /echo/public\r\nX-Forwarded-Host: app.example\r\n"), 403),
        // The same headers on a public route reach the upstream, stripped.
        public("public x-auth-request-user", get("/echo/public/x", "X-Auth-Request-User: mallory\r\n"), 200),
        public("public x_forwarded_user underscores", get("/echo/public/x", "X_Forwarded_User: mallory\r\n"), 200),
        public("public x.auth.request.email dots", get("/echo/public/x", "X.Auth.Request.Email: mallory@example.com\r\n"), 200),
        public("public X-AUTH-REQUEST-GROUPS upper case", get("/echo/public/x", "X-AUTH-REQUEST-GROUPS: mallory-admins\r\n"), 200),
        // Path tricks that try to reach a protected path through the public prefix.
        v("dot segments", get("/echo/public/../secret", ""), 401),
        v("encoded dot segments", get("/echo/public/%2e%2e/secret", ""), 401),
        v("mixed dot segment", get("/echo/public/.%2e/secret", ""), 401),
        v("encoded slash", get("/echo/public/..%2fsecret", ""), 400),
        v("encoded backslash", get("/echo/public/..%5csecret", ""), 400),
        v("double encoding", get("/echo/public/%252e%252e/secret", ""), 400),
        v("overlong utf-8 dot", get("/echo/public/%c0%ae%c0%ae/secret", ""), 400),
        v("nul byte", get("/echo/public/%00/../secret", ""), 400),
        v(";params", get("/echo/public;x=1/../secret", ""), 401),
        v("double slash", get("//echo/public/../../secret", ""), 401),
        v("case trick on the public prefix", get("/ECHO/PUBLIC/x", ""), 401),
        v("unicode look-alike prefix", get("/echo/publ%C4%B1c/x", ""), 401),
        v("encoded slashes all the way", get("/echo/public%2f..%2f..%2fsecret", ""), 400),
        // Open redirects after sign-in: refused, or sent home, never to evil.example.
        v("rd //evil", get("/oauth2/start?rd=//evil.example/", ""), 400),
        v("rd /\\evil", get("/oauth2/start?rd=/%5Cevil.example/", ""), 400),
        v("rd https:evil", get("/oauth2/start?rd=https:evil.example", ""), 400),
        v("rd javascript:", get("/oauth2/start?rd=javascript:alert(1)", ""), 400),
        v("rd encoded //evil", get("/oauth2/start?rd=%2F%2Fevil.example%2F", ""), 400),
        v("rd userinfo@host", get("/oauth2/start?rd=https://gate.test@evil.example/", ""), 400),
        v("rd absolute evil", get("/oauth2/start?rd=https://evil.example/", ""), 400),
        v("rd idn look-alike", get("/oauth2/start?rd=https://xn--80ak6aa92e.com/", ""), 400),
        v("rd crlf", get("/oauth2/start?rd=/%0d%0aLocation:%20https://evil.example", ""), 400),
        v("rd tab", get("/oauth2/start?rd=/%09/evil.example", ""), 400),
        // Cookie tampering.
        v("garbage session cookie", get("/echo/x", "Cookie: _clearance=%%%not-base64%%%\r\n"), 401),
        v("truncated session cookie", get("/echo/x", "Cookie: _clearance=AAAA\r\n"), 401),
        v("cookie sealed with another key", get("/echo/x", &format!("Cookie: _clearance={}\r\n", b64(&[7u8; 96]))), 401),
        v("forged plain-text session", get("/echo/x", "Cookie: _clearance=mallory@example.com\r\n"), 401),
        v("big session cookie", get("/echo/x", &big_cookie), 401),
        v("huge session cookie", get("/echo/x", &huge_cookie), 431),
        v("many cookies", get("/echo/x", &many_cookies), 401),
        v("forged login-state cookie on callback", get("/oauth2/callback?code=x&state=y", "Cookie: _clearance_login=AAAA\r\n"), 400),
        // Forged bearer tokens.
        v("jwt alg none", get("/echo/x", &bearer(jwt(r#"{"alg":"none","typ":"JWT"}"#, claims, b""))), 401),
        v("jwt hs256 with a public key", get("/echo/x", &bearer(jwt(r#"{"alg":"HS256","typ":"JWT"}"#, claims, &Sha256::digest(b"public key")))), 401),
        v("jwt unknown kid", get("/echo/x", &bearer(jwt(r#"{"alg":"RS256","kid":"nope"}"#, claims, &[1u8; 256]))), 401),
        v("jwt kid path traversal", get("/echo/x", &bearer(jwt(r#"{"alg":"RS256","kid":"../../../../etc/passwd"}"#, claims, &[1u8; 256]))), 401),
        v("jwt expired and wrong audience", get("/echo/x", &bearer(jwt(r#"{"alg":"RS256","kid":"x"}"#, r#"{"sub":"mallory","aud":"other","exp":1}"#, &[1u8; 256]))), 401),
        v("jwt huge", get("/echo/x", &bearer(jwt(r#"{"alg":"RS256"}"#, &"x".repeat(20_000), &[1u8; 256]))), 401),
        v("jwt bad base64", get("/echo/x", "Authorization: Bearer !!!.@@@.###\r\n"), 401),
        // Broken heads.
        v("bare LF header injection", get("/echo/x", "X-Test: a\nX-Auth-Request-User: mallory\r\n"), 401),
        v("obs-fold continuation", get("/echo/x", "X-Test: a\r\n X-Auth-Request-User: mallory\r\n"), 400),
        v("nul in a header value", get("/echo/x", "X-Test: a\0b\r\n"), 400),
        v("control byte in the request line", get("/echo/\x01x", ""), 400),
        v("space in the path", get("/echo/a b", ""), 400),
        v("too many headers", get("/echo/x", &many_headers), 431),
        v("head over 128 KiB", get("/echo/x", &huge_head), 431),
        // Bad Content-Length.
        v("content-length not a number", b"POST /echo/x HTTP/1.1\r\nHost: gate.test\r\nContent-Length: abc\r\nConnection: close\r\n\r\n".to_vec(), 400),
        v("content-length negative", b"POST /echo/x HTTP/1.1\r\nHost: gate.test\r\nContent-Length: -1\r\nConnection: close\r\n\r\n".to_vec(), 400),
        v("two different content-lengths", b"POST /echo/x HTTP/1.1\r\nHost: gate.test\r\nContent-Length: 1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nab".to_vec(), 400),
        v("content-length with chunked", b"POST /echo/x HTTP/1.1\r\nHost: gate.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".to_vec(), 400),
        // The records API.
        v("records without a token", post("/.clearance/api/v1/records", "", "application/json", b"{}"), 401),
        v("records with a wrong token", post("/.clearance/api/v1/records", "Authorization: Bearer wrong\r\n", "application/json", b"{}"), 401),
        v("records wrong types", record(r#"{"subject":1,"requirement":[],"version":{},"completed_at":true}"#), 400),
        v("records huge number", record(r#"{"subject":"a@example.com","requirement":"security-awareness","version":1e999,"completed_at":"2026-01-01T00:00:00Z"}"#), 400),
        v("records deep nesting", record(&deep), 400),
        v("records duplicate keys", record(r#"{"subject":"a@example.com","subject":"b@example.com","requirement":"security-awareness","version":"2026.1","completed_at":"2026-01-01T00:00:00Z"}"#), 400),
        v("records trailing garbage", record(r#"{"subject":"a@example.com","requirement":"security-awareness","version":"2026.1","completed_at":"2026-01-01T00:00:00Z"} garbage"#), 400),
        v("records wrong content type", post("/.clearance/api/v1/records", &admin, "text/plain", b"{}"), 400),
        v("records over 64 KiB", record(&format!("{{\"subject\":\"{}\"}}", "a".repeat(70_000))), 413),
        // xAPI statements.
        v("xapi without credentials", post("/.clearance/xapi/statements", "X-Experience-API-Version: 1.0.3\r\n", "application/json", b"{}"), 401),
        v("xapi not json", post("/.clearance/xapi/statements", &xapi, "application/json", b"{not json"), 400),
        v("xapi statement without actor", post("/.clearance/xapi/statements", &xapi, "application/json", br#"{"verb":{"id":"http://adlnet.gov/expapi/verbs/completed"},"object":{"id":"x"}}"#), 400),
        v("xapi over 1 MiB", post("/.clearance/xapi/statements", &xapi, "application/json", &vec![b' '; 1_100_000]), 413),
        // SCIM provisioning.
        v("scim without a token", get("/.clearance/scim/v2/Users", ""), 401),
        v("scim bad filter", get("/.clearance/scim/v2/Users?filter=userName%20eq", &scim), 400),
        v("scim wrong schemas", post("/.clearance/scim/v2/Users", &scim, "application/scim+json", br#"{"schemas":["urn:evil"],"userName":"a@example.com"}"#), 400),
        v("scim not json", post("/.clearance/scim/v2/Users", &scim, "application/scim+json", b"{not json"), 400),
        v("scim huge patch", patch("/.clearance/scim/v2/Users/x", &scim, &vec![b' '; 300_000]), 413),
        // E-signature webhooks.
        v("docusign unsigned", post("/.clearance/webhooks/docusign", "", "application/json", b"{}"), 401),
        v("docusign bad signature", post("/.clearance/webhooks/docusign", "X-DocuSign-Signature-1: AAAA\r\n", "application/json", b"{}"), 401),
        v("docusign over 2 MiB", post("/.clearance/webhooks/docusign", "", "application/json", &vec![b' '; 2_200_000]), 413),
    ]
}

async fn world() -> World {
    let sha = hex::encode(Sha256::digest(XAPI_TOKEN.as_bytes()));
    let scim_sha = hex::encode(Sha256::digest(SCIM_TOKEN.as_bytes()));
    let extra = format!(
        r#"
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
"#
    );
    World::start_with(|p| p, "", &extra).await
}

async fn healthy(world: &World) -> bool {
    raw::send(world.gate.port, &get("/healthz", ""))
        .await
        .status
        == 200
}

#[tokio::test]
async fn the_hostile_table_admits_nobody_and_crashes_nothing() {
    let world = world().await;
    let table = vectors();
    assert!(table.len() >= 60, "{} vectors", table.len());
    let mut failures = Vec::new();
    for vector in &table {
        let before = world.upstream.request_count();
        let r: RawResponse = raw::send(world.gate.port, &vector.request).await;
        let mut wrong = Vec::new();
        if r.status != vector.status {
            wrong.push(format!("status {} (expected {})", r.status, vector.status));
        }
        let reached = world.upstream.request_count() > before;
        if reached && !vector.may_reach_upstream {
            wrong.push("reached the upstream".to_owned());
        }
        if reached && r.text.to_ascii_lowercase().contains("mallory") {
            wrong.push("a forged identity reached the upstream".to_owned());
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
            failures.push(format!("{}: {} — {head:?}", vector.name, wrong.join(", ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
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
            raw::send(
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
            raw::send(world.gate.port, &get("/.clearance/api/v1/denials", wrong))
                .await
                .status,
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    let admin = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    let ok = raw::send(world.gate.port, &get("/.clearance/api/v1/denials", &admin)).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
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
    let r = raw::send(
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
    let fine = raw::send(
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
