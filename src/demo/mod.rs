//! `clearance demo`: the gate on an in-memory store, a development OpenID provider, a sample
//! intranet app and a pretend induction portal, all on loopback, with three demo people.

pub mod provider;

use crate::domain::{Record, RequirementId, Source, SubjectKey};
use crate::store::memory::MemoryStore;
use crate::store::{FollowUpStore, RecordStore, SharedStore};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use chrono::{Duration, Utc};
use provider::{DevAccount, DevClient, DevProviderConfig};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;

const DEMO_TOML: &str = include_str!("demo.toml");
const DEMO_POLICY: &str = include_str!("acceptable-use-policy.md");

/// A demo person and what they have done so far.
struct Person {
    email: &'static str,
    name: &'static str,
    kind: &'static str,
    groups: &'static [&'static str],
    story: &'static str,
}

/// Everyone in the demo reports to her; she sees them at `/.clearance/manage`.
const MANAGER: &str = "mona@example.com";

const PEOPLE: [Person; 5] = [
    Person {
        email: "alice@example.com",
        name: "Alice Admitted",
        kind: "employee",
        groups: &["staff", "engineering"],
        story: "employee, induction complete: admitted",
    },
    Person {
        email: "carl@example.com",
        name: "Carl Contractor",
        kind: "contractor",
        groups: &["contractors"],
        story: "contractor who has not signed the confidentiality agreement: blocked",
    },
    Person {
        email: "erin@example.com",
        name: "Erin Expired",
        kind: "employee",
        groups: &["staff"],
        story: "employee whose awareness training expired: blocked",
    },
    Person {
        email: "tom@example.com",
        name: "Tom Temp",
        kind: "temp",
        groups: &["temps"],
        story: "temp who accepted an old policy version: accepts the new one on Clearance's page",
    },
    Person {
        email: MANAGER,
        name: "Mona Manager",
        kind: "employee",
        groups: &["staff", "managers"],
        story: "manager of the four above: open /.clearance/manage to follow up their denials",
    },
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn record(
    subject: &str,
    requirement: &str,
    version: &str,
    days_ago: i64,
) -> anyhow::Result<Record> {
    let now = Utc::now();
    Ok(Record {
        subject: SubjectKey::parse(subject)?,
        requirement: RequirementId(requirement.into()),
        version: version.parse()?,
        completed_at: now - Duration::days(days_ago),
        expires_at: None,
        source: Source::Csv,
        evidence: Default::default(),
        recorded_by: "demo-seed".into(),
        recorded_at: now,
        revoked_at: None,
    })
}

async fn seed(store: &MemoryStore) -> anyhow::Result<()> {
    let seeds = [
        ("alice@example.com", "security-awareness", "2026.1", 30),
        ("alice@example.com", "acceptable-use-policy", "2.0", 30),
        ("carl@example.com", "security-awareness", "2026.1", 10),
        ("carl@example.com", "acceptable-use-policy", "2.0", 10),
        ("erin@example.com", "security-awareness", "2026.1", 400),
        ("erin@example.com", "acceptable-use-policy", "2.0", 100),
        ("tom@example.com", "security-awareness", "2026.1", 5),
        ("tom@example.com", "confidentiality-agreement", "1", 5),
        ("tom@example.com", "acceptable-use-policy", "1.0", 200),
        (MANAGER, "security-awareness", "2026.1", 60),
        (MANAGER, "acceptable-use-policy", "2.0", 60),
    ];
    for (subject, requirement, version, days) in seeds {
        store
            .put_record(&record(subject, requirement, version, days)?)
            .await?;
    }
    // The directory, as SCIM would feed it: everyone reports to Mona.
    let now = Utc::now();
    for p in &PEOPLE {
        let mut entry = crate::domain::Person::new(
            SubjectKey::parse(p.email)?,
            crate::domain::DirectorySource::Csv,
            now,
        );
        entry.display_name = Some(p.name.to_owned());
        entry.email = Some(p.email.to_owned());
        entry.user_type = Some(p.kind.to_owned());
        entry.manager = (p.email != MANAGER).then(|| MANAGER.to_owned());
        entry.start_date = Some((now - Duration::days(30)).date_naive());
        store.put_person(&entry, "demo-seed").await?;
    }
    Ok(())
}

fn bind_loopback(port: u16) -> anyhow::Result<TcpListener> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))
}

/// The sample intranet app behind the gate: shows who Clearance says you are.
async fn intranet(req: HttpRequest) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_owned()
    };
    let rows: String = [
        "x-auth-request-user",
        "x-auth-request-email",
        "x-auth-request-groups",
        "x-forwarded-user",
        "x-forwarded-email",
    ]
    .iter()
    .map(|h| {
        format!(
            "<tr><td><code>{h}</code></td><td>{}</td></tr>",
            escape(&header(h))
        )
    })
    .collect();
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><title>Demo intranet</title>\
         <body style=\"font-family:system-ui;max-width:40rem;margin:3rem auto\">\
         <h1>Welcome to the demo intranet, {}</h1>\
         <p>Clearance admitted you: your induction is current. These identity headers reached the app:</p>\
         <table>{rows}</table><p>Path: <code>{}</code></p>\
         <p><a href=\"/oauth2/sign_out\">Sign out or switch user</a></p></body>",
        escape(&header("x-auth-request-preferred-username")),
        escape(req.path())
    ))
}

/// The pretend induction portal (LMS / e-signature) the blocked page links to.
struct Portal {
    gate: String,
    admin_token: String,
    http: reqwest::Client,
}

async fn portal_form(path: web::Path<String>) -> HttpResponse {
    let id = escape(&path);
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><title>Demo induction portal</title>\
         <body style=\"font-family:system-ui;max-width:40rem;margin:3rem auto\">\
         <h1>Demo induction portal</h1><p>This stands in for your LMS or e-signature service.\
         Completing <strong>{id}</strong> here sends the completion to Clearance's records API.</p>\
         <form method=\"post\"><label>Your email <input name=\"email\" type=\"email\" required></label> \
         <button>Mark {id} as completed</button></form></body>"
    ))
}

#[derive(serde::Deserialize)]
struct PortalForm {
    email: String,
}

async fn portal_complete(
    path: web::Path<String>,
    form: web::Form<PortalForm>,
    portal: web::Data<Portal>,
) -> HttpResponse {
    let version = match path.as_str() {
        "security-awareness" => "2026.1",
        "confidentiality-agreement" => "1",
        _ => "2.0",
    };
    let result = portal
        .http
        .post(format!("{}/.clearance/api/v1/records", portal.gate))
        .bearer_auth(&portal.admin_token)
        .json(&json!({
            "subject": form.email,
            "requirement": path.as_str(),
            "version": version,
            "completed_at": Utc::now(),
            "source": "xapi",
            "evidence": { "portal": "clearance demo" },
        }))
        .send()
        .await;
    match result {
        Ok(r) if r.status().is_success() => HttpResponse::SeeOther()
            .insert_header(("location", format!("{}/", portal.gate)))
            .finish(),
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            HttpResponse::BadRequest().body(format!(
                "Clearance refused the completion ({status}): {text}"
            ))
        }
        Err(e) => HttpResponse::BadGateway().body(format!("Clearance could not be reached: {e}")),
    }
}

/// A fresh cookie secret for this run: 48 random bytes, base64.
fn cookie_secret() -> String {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Runs the demo until Ctrl-C.
pub async fn run(port: u16) -> anyhow::Result<()> {
    let gate_listener = bind_loopback(port)?;
    let port = gate_listener.local_addr()?.port();
    let gate_url = format!("http://127.0.0.1:{port}");

    let client_secret = crate::auth::session::random_token();
    let accounts = PEOPLE
        .iter()
        .map(|p| {
            let claims = json!({
                "sub": format!("demo-{}", p.email.split('@').next().unwrap_or("user")),
                "email": p.email,
                "email_verified": true,
                "name": p.name,
                "groups": p.groups,
                "employee_type": p.kind,
                "manager": (p.email != MANAGER).then_some(MANAGER),
            });
            DevAccount {
                login: p.email.to_owned(),
                description: p.story.to_owned(),
                claims: claims.as_object().cloned().unwrap_or_default(),
            }
        })
        .collect();
    let idp = provider::start(DevProviderConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        accounts,
        clients: vec![DevClient {
            client_id: "clearance-demo".into(),
            client_secret: client_secret.clone(),
            redirect_uris: vec![format!("{gate_url}/oauth2/callback")],
            post_logout_redirect_uris: vec![format!("{gate_url}/oauth2/signed_out")],
        }],
        access_token_ttl: std::time::Duration::from_secs(600),
        id_token_ttl: std::time::Duration::from_secs(600),
    })
    .await?;

    let upstream_listener = bind_loopback(0)?;
    let upstream_url = format!(
        "http://127.0.0.1:{}",
        upstream_listener.local_addr()?.port()
    );
    let intranet_server = HttpServer::new(|| App::new().default_service(web::to(intranet)))
        .workers(1)
        .listen(upstream_listener)?
        .run();

    let admin_token = crate::auth::session::random_token();
    let portal_listener = bind_loopback(0)?;
    let portal_url = format!("http://127.0.0.1:{}", portal_listener.local_addr()?.port());
    let portal = web::Data::new(Portal {
        gate: gate_url.clone(),
        admin_token: admin_token.clone(),
        http: reqwest::Client::new(),
    });
    let portal_server = HttpServer::new(move || {
        App::new()
            .app_data(portal.clone())
            .route("/complete/{id}", web::get().to(portal_form))
            .route("/complete/{id}", web::post().to(portal_complete))
    })
    .workers(1)
    .listen(portal_listener)?
    .run();

    // The demo's policy document, written where the configuration can read it.
    let policy_path = std::env::temp_dir().join(format!("clearance-demo-aup-{port}.md"));
    std::fs::write(&policy_path, DEMO_POLICY)
        .with_context(|| format!("cannot write {}", policy_path.display()))?;
    let toml = DEMO_TOML
        .replace("@AUP_PATH@", &policy_path.display().to_string())
        .replace("@PORT@", &port.to_string())
        .replace("@ISSUER@", idp.issuer())
        .replace("@CLIENT_SECRET@", &client_secret)
        .replace("@COOKIE_SECRET@", &cookie_secret())
        .replace("@AUDIT_KEY@", &cookie_secret())
        .replace(
            "@ADMIN_TOKEN_SHA256@",
            &hex::encode(Sha256::digest(admin_token.as_bytes())),
        )
        .replace("@PORTAL@", &portal_url)
        .replace("@UPSTREAM@", &upstream_url);
    let settings =
        crate::config::from_toml_str(&toml).context("the demo configuration is invalid")?;
    let memory =
        Arc::new(MemoryStore::default().with_audit_key(settings.followup.audit_key.clone()));
    seed(&memory).await?;
    let store: SharedStore = memory;
    let state = crate::build_state(settings, store)?;
    // The admin listener (metrics, health) on a loopback port of its own.
    let admin_listener = bind_loopback(0)?;
    let admin_url = format!("http://127.0.0.1:{}", admin_listener.local_addr()?.port());
    let gate = crate::server_with_admin(state, gate_listener, Some(admin_listener))?;
    crate::stop_on_signals(gate.handle());

    println!("\nClearance demo is running. Open {gate_url}/ in a browser and sign in as:");
    for p in &PEOPLE {
        println!("  {:<20} {}", p.email, p.story);
    }
    println!(
        "The sign-in provider ({}) lets you pick a person; no password is needed.",
        idp.issuer()
    );
    println!(
        "Blocked people can fix things at the demo induction portal the blocked page links to."
    );
    println!(
        "Managers follow up at {gate_url}/.clearance/manage (sign in as {MANAGER} after someone was blocked)."
    );
    println!("Admin API token for this run: {admin_token}");
    println!("Prometheus metrics: {admin_url}/metrics");
    println!("Press Ctrl-C to stop.\nready {gate_url}");

    let outcome = tokio::select! {
        r = gate => r.map_err(anyhow::Error::from),
        r = intranet_server => r.map_err(anyhow::Error::from),
        r = portal_server => r.map_err(anyhow::Error::from),
    };
    idp.stop().await;
    outcome
}
