//! The OpenAPI document: it describes every API route that `http::configure` registers (read
//! from the source, so a new route without a description fails here), it is valid OpenAPI 3.1,
//! the committed docs/openapi.json is the generated one, and the gate serves it without auth.

use crate::gate::World;
use serde_json::Value;
use std::collections::BTreeSet;

/// The prefixes the document must cover.
const DESCRIBED: &[&str] = &[
    "/.clearance/api/v1/",
    "/.clearance/scim/v2/",
    "/.clearance/xapi/",
    "/.clearance/webhooks/",
    "/oauth2/backchannel_logout",
    "/oauth2/auth",
    "/healthz",
    "/readyz",
];

/// Routes under those prefixes that OpenAPI cannot express: Envoy's ext_authz path carries the
/// original path after it (a regex segment). Documented in docs/OPERATIONS.md instead.
const NOT_DESCRIBABLE: &[&str] = &["/oauth2/auth/envoy{tail:(/.*)?}"];

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).expect(path)
}

/// (method, path) of every `.route(...)` in `configure`, scopes applied. `route` (any method)
/// is reported as `get`.
fn registered_routes() -> BTreeSet<(String, String)> {
    let src = repo_file("src/http/mod.rs");
    let start = src
        .find("pub fn configure(")
        .expect("configure in src/http/mod.rs");
    let body = &src[start..];
    let body = &body[..body.find("\n}\n").expect("end of configure")];
    let bytes = body.as_bytes();
    let string_at = |i: usize| -> (String, usize) {
        let rest = &body[i + 1..];
        let end = rest.find('"').expect("closing quote");
        (rest[..end].to_owned(), i + 1 + end + 1)
    };
    let mut depth = 0i32;
    let mut scopes: Vec<(String, i32)> = Vec::new();
    let mut routes = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &body[i..];
        if rest.starts_with("web::scope(\"") {
            let (prefix, _) = string_at(i + "web::scope(".len());
            scopes.push((prefix, depth));
        } else if rest.starts_with(".route(") {
            let mut j = i + ".route(".len();
            while bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            assert_eq!(
                bytes[j], b'"',
                "a route path that is not a literal: {rest:.60}"
            );
            let (path, after) = string_at(j);
            let method_at = after + body[after..].find("web::").expect("web::METHOD") + 5;
            let method: String = body[method_at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            let method = if method == "route" {
                "get".to_owned()
            } else {
                method
            };
            // Scopes nest: every enclosing prefix applies.
            let prefix: String = scopes.iter().map(|(p, _)| p.as_str()).collect();
            routes.insert((method, format!("{prefix}{path}")));
            // Continue after the path literal (its parentheses are not code).
            depth += 1;
            i = after;
            continue;
        }
        match bytes[i] {
            b'"' => {
                i = string_at(i).1;
                continue;
            }
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                while scopes.last().is_some_and(|(_, d)| depth < *d) {
                    scopes.pop();
                }
            }
            _ => {}
        }
        i += 1;
    }
    routes
}

fn described(path: &str) -> bool {
    DESCRIBED
        .iter()
        .any(|p| path.starts_with(p) || path == p.trim_end_matches('/'))
        && !NOT_DESCRIBABLE.contains(&path)
}

fn document() -> Value {
    serde_json::to_value(clearance::http::openapi::document().expect("document builds"))
        .expect("serializes")
}

#[test]
fn every_registered_api_route_is_in_the_document_with_its_method() {
    let routes = registered_routes();
    // The reader of the source works: it finds scoped and unscoped, one-line and wrapped routes.
    for known in [
        ("post", "/.clearance/api/v1/records"),
        ("get", "/.clearance/scim/v2/Users/{id}"),
        ("patch", "/.clearance/scim/v2/Users/{id}"),
        ("post", "/oauth2/backchannel_logout"),
        ("get", "/oauth2/auth"),
        ("get", "/healthz"),
        ("get", "/.clearance/manage"),
    ] {
        assert!(
            routes.contains(&(known.0.to_owned(), known.1.to_owned())),
            "{known:?} not read from configure: {routes:?}"
        );
    }
    let doc = document();
    let mut missing = Vec::new();
    let mut count = 0;
    for (method, path) in routes.iter().filter(|(_, p)| described(p)) {
        count += 1;
        if doc["paths"][path][method.as_str()].is_null() {
            missing.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert!(count >= 28, "only {count} API routes found");
    assert!(
        missing.is_empty(),
        "routes registered in src/http/mod.rs but not described in src/http/openapi.rs: {missing:?}"
    );
    // And nothing is described that is not served.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            assert!(
                routes.contains(&(method.clone(), path.clone())),
                "{method} {path} is described but not registered"
            );
        }
    }
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/components/").skip(1) {
        let target = part.split('"').next().expect("ref");
        let (kind, name) = target.split_once('/').expect("kind/name");
        assert!(
            !doc["components"][kind][name].is_null(),
            "unresolved $ref {target}"
        );
    }
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("schemes");
    for name in ["adminToken", "scimToken", "xapiBasic", "docusignHmac"] {
        assert!(schemes.contains_key(name), "security scheme {name}");
    }
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            for requirement in op["security"].as_array().into_iter().flatten() {
                for scheme in requirement.as_object().expect("requirement").keys() {
                    assert!(schemes.contains_key(scheme), "{method} {path}: {scheme}");
                }
            }
            // Every path template variable is a declared path parameter.
            for var in path
                .split('{')
                .skip(1)
                .map(|s| s.split('}').next().expect("}"))
            {
                let declared = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["name"] == var && p["in"] == "path" && p["required"] == true);
                assert!(declared, "{method} {path}: path parameter {var}");
            }
        }
    }
    // Admin API errors are the JSON error body of src/http/error.rs.
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error", "message"]));
    let post_record = &doc["paths"]["/.clearance/api/v1/records"]["post"];
    for status in ["400", "401", "409", "503"] {
        assert_eq!(
            post_record["responses"][status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error"
        );
    }
    assert_eq!(
        post_record["security"],
        serde_json::json!([{ "adminToken": [] }])
    );
}

#[test]
fn the_committed_copy_is_the_generated_document() {
    let generated = clearance::http::openapi::to_pretty_json().expect("document");
    assert!(
        repo_file("docs/openapi.json") == generated,
        "docs/openapi.json is out of date: run `cargo run -- openapi > docs/openapi.json`"
    );
}

#[tokio::test]
async fn the_gate_serves_the_document_without_credentials() {
    let world = World::start().await;
    let res = reqwest::get(format!(
        "{}/.clearance/api/v1/openapi.json",
        world.gate.url()
    ))
    .await
    .expect("request");
    assert_eq!(res.status(), 200);
    let served: Value = res.json().await.expect("json");
    assert_eq!(served, document());
    // The error body the document promises is the one an API error carries.
    let res = reqwest::Client::new()
        .get(format!("{}/.clearance/api/v1/denials", world.gate.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.expect("json");
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
}

/// Found by the API fuzzing (scripts/api-fuzz.sh): an export bound before 1970 was sent to Redis
/// as a negative stream id and came back as a 503; it is a 400 now.
#[tokio::test]
async fn an_evidence_export_bound_before_1970_is_a_bad_request() {
    let world = World::start().await;
    let res = reqwest::Client::new()
        .get(format!(
            "{}/.clearance/api/v1/evidence/export?to=0472-05-07T18%3A49%3A29%2B19%3A32",
            world.gate.url()
        ))
        .bearer_auth(crate::gate::ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"], "invalid_query", "{body}");
}
