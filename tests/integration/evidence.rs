//! Evidence for auditors against the real services: `clearance evidence export` (contents,
//! manifest hashes, the access-before-agreement report), `clearance evidence at` before and
//! after a completion, the evidence API, bad flags, and `clearance directory import`.

use crate::gate::{ADMIN_TOKEN, World};
use crate::support::{Browser, RedisServer, free_port};
use crate::{complete_everything, record, redis, sign_in};
use chrono::Utc;
use redis::AsyncCommands;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A configuration file for the command line, pointing at `redis_url`.
fn config_file(dir: &Path, redis_url: &str) -> PathBuf {
    let toml = crate::gate::config(
        free_port(),
        redis_url,
        "http://127.0.0.1:9/issuer",
        "http://127.0.0.1:9",
        "",
        "",
    );
    let path = dir.join("clearance.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}

/// Runs the real binary; returns exit code, stdout, stderr.
async fn cli(args: &[&str]) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_clearance"));
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("CLEARANCE_") {
            command.env_remove(name);
        }
    }
    let out = command.output().await.expect("run clearance");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn read_json(dir: &Path, name: &str) -> Value {
    let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn rows<'a>(table: &'a Value, subject: &str) -> Vec<&'a Value> {
    table
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["subject"] == subject)
        .collect()
}

#[tokio::test]
async fn export_at_and_access_before_agreement() {
    let world = World::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(dir.path(), &world.redis.url());
    let config_arg = config.to_str().expect("utf-8 path");

    // Alice is admitted on a route that needs nothing, then signs the agreement: an exception.
    let alice = Browser::new();
    let page = sign_in(&world, &alice, "alice@example.com", "/echo/open").await;
    assert_eq!(page.status, 200, "{}", page.body);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = record(
        &world,
        "alice@example.com",
        "confidentiality-agreement",
        "1",
        Utc::now(),
    )
    .await;
    assert_eq!(r.status(), 201);

    // Erin completes everything first, then is admitted: no exception.
    let before = Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    complete_everything(&world, "erin@example.com").await;
    let after = Utc::now();
    let erin = Browser::new();
    let page = sign_in(&world, &erin, "erin@example.com", "/echo/ok").await;
    assert_eq!(page.status, 200, "{}", page.body);

    // Carl is refused: a denial and a case.
    let carl = Browser::new();
    let page = sign_in(&world, &carl, "carl@example.com", "/echo/app").await;
    assert_eq!(page.status, 403);

    // The first access is kept under the subject's keys, once.
    let mut conn = redis(&world).await;
    let first: Option<String> = conn
        .get("clearance:{alice@example.com}:first_access")
        .await
        .expect("GET");
    let first = first.expect("alice's first access is on file");
    let again = alice
        .get(format!("{}/echo/open/again", world.gate.url()))
        .await
        .expect("gate");
    assert_eq!(again.status, 200);
    let still: Option<String> = conn
        .get("clearance:{alice@example.com}:first_access")
        .await
        .expect("GET");
    assert_eq!(still.as_deref(), Some(first.as_str()), "set once");
    let carl_first: Option<String> = conn
        .get("clearance:{carl@example.com}:first_access")
        .await
        .expect("GET");
    assert_eq!(carl_first, None, "refused people were never admitted");

    // evidence at: before and after erin's completions.
    let (code, out, err) = cli(&[
        "evidence",
        "at",
        "--config",
        config_arg,
        "--subject",
        "erin@example.com",
        "--time",
        &before.to_rfc3339(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("erin@example.com at ") && out.contains("NOT COMPLIANT"),
        "{out}"
    );
    assert!(out.contains("NOT MET (never_completed)"), "{out}");
    let (code, out, err) = cli(&[
        "evidence",
        "at",
        "--config",
        config_arg,
        "--subject",
        "erin@example.com",
        "--time",
        &after.to_rfc3339(),
        "--format",
        "json",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let answer: Value = serde_json::from_str(&out).expect("JSON answer");
    assert_eq!(answer["compliant"], true, "{answer}");
    let met: Vec<&str> = answer["met_on"]
        .as_array()
        .expect("met_on")
        .iter()
        .filter_map(|r| r["requirement"].as_str())
        .collect();
    assert!(met.contains(&"security-awareness"), "{answer}");
    assert_eq!(
        answer["met_on"][0]["recorded_by"], "admin-token:tests",
        "{answer}"
    );
    let (code, out, err) = cli(&[
        "evidence",
        "at",
        "--config",
        config_arg,
        "--subject",
        "erin@example.com",
        "--time",
        &after.to_rfc3339(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": COMPLIANT\n"), "{out}");
    assert!(
        out.lines().any(|l| l.contains("security-awareness")
            && l.contains("on record version 2026.1")
            && l.contains("by admin-token:tests")),
        "{out}"
    );

    // The export.
    let out_dir = dir.path().join("export");
    let out_arg = out_dir.to_str().expect("utf-8 path");
    let (code, out, err) = cli(&[
        "evidence", "export", "--config", config_arg, "--out", out_arg,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let manifest = read_json(&out_dir, "manifest.json");
    let files = manifest["files"].as_array().expect("files");
    assert_eq!(files.len(), 16, "{manifest}");
    for f in files {
        let name = f["name"].as_str().expect("name");
        let bytes = std::fs::read(out_dir.join(name)).expect("listed file exists");
        assert_eq!(
            f["sha256"].as_str(),
            Some(hex::encode(Sha256::digest(&bytes)).as_str()),
            "{name}"
        );
        if name.ends_with(".json") {
            let rows: Value = serde_json::from_slice(&bytes).expect("JSON rows");
            assert_eq!(
                rows.as_array().map(Vec::len),
                f["rows"].as_u64().map(|n| n as usize)
            );
        } else {
            let lines = String::from_utf8_lossy(&bytes).lines().count();
            assert_eq!(Some(lines as u64 - 1), f["rows"].as_u64(), "{name}");
        }
    }
    let config_sha = hex::encode(Sha256::digest(std::fs::read(&config).expect("config")));
    assert_eq!(manifest["config_sha256"], config_sha);
    // Every chain's head is in the manifest, as stored, and a digest pins them all.
    let heads = manifest["audit_chain"]["heads"].as_array().expect("heads");
    assert!(!heads.is_empty());
    let mut audit_len = 0;
    let mut digest = Sha256::new();
    for h in heads {
        let chain = h["chain"].as_str().expect("chain name");
        let tag = chain
            .strip_prefix("subject:")
            .map_or_else(|| format!("/{chain}"), str::to_owned);
        let len: usize = conn
            .llen(format!("clearance:{{{tag}}}:audit:log"))
            .await
            .expect("LLEN");
        let head: String = conn
            .get(format!("clearance:{{{tag}}}:audit:head"))
            .await
            .expect("GET head");
        assert_eq!(
            head,
            format!("{}:{}", h["seq"], h["mac"].as_str().unwrap_or(""))
        );
        assert_eq!(h["entries"], len);
        audit_len += len;
        digest.update(format!(
            "{} {} {}\n",
            chain,
            h["seq"],
            h["mac"].as_str().unwrap_or("")
        ));
    }
    assert_eq!(manifest["audit_chain"]["entries"], audit_len);
    assert_eq!(manifest["audit_chain"]["chains"], heads.len());
    assert_eq!(manifest["audit_chain"]["verified"], true);
    let all_heads_sha256 = manifest["audit_chain"]["heads_sha256"].clone();
    assert_eq!(
        manifest["audit_chain"]["heads_sha256"],
        hex::encode(digest.finalize())
    );

    let training = read_json(&out_dir, "training-records.json");
    let erin_training = rows(&training, "erin@example.com");
    assert_eq!(erin_training.len(), 1, "{training}");
    assert_eq!(erin_training[0]["requirement"], "security-awareness");
    assert_eq!(erin_training[0]["version"], "2026.1");
    assert_eq!(erin_training[0]["recorded_by"], "admin-token:tests");
    assert_eq!(erin_training[0]["evidence"]["ticket"], "TEST-1");
    let acceptances = read_json(&out_dir, "acceptances.json");
    assert_eq!(
        rows(&acceptances, "erin@example.com").len(),
        2,
        "{acceptances}"
    );
    let alice_acc = rows(&acceptances, "alice@example.com");
    assert_eq!(alice_acc.len(), 1);
    assert_eq!(alice_acc[0]["requirement"], "confidentiality-agreement");
    assert_eq!(alice_acc[0]["kind"], "agreement");
    let csv = std::fs::read_to_string(out_dir.join("acceptances.csv")).expect("csv");
    assert!(
        csv.starts_with("subject,requirement,kind,event,version"),
        "{csv}"
    );
    let denials = read_json(&out_dir, "denials.json");
    let carl_denials = rows(&denials, "carl@example.com");
    assert!(!carl_denials.is_empty(), "{denials}");
    assert_eq!(carl_denials[0]["path"], "/echo/app");
    assert!(rows(&denials, "erin@example.com").is_empty());
    let cases = read_json(&out_dir, "cases.json");
    assert_eq!(rows(&cases, "carl@example.com").len(), 1, "{cases}");
    let checklists = read_json(&out_dir, "checklists.json");
    assert!(
        rows(&checklists, "erin@example.com")
            .iter()
            .all(|r| r["state"] == "ok"),
        "{checklists}"
    );
    let abba = read_json(&out_dir, "access-before-agreement.json");
    let a = rows(&abba, "alice@example.com");
    assert_eq!(a.len(), 1, "{abba}");
    assert_eq!(a[0]["exception"], true);
    assert_eq!(a[0]["finding"], "access before signing");
    assert_eq!(a[0]["requirement"], "confidentiality-agreement");
    let e = rows(&abba, "erin@example.com");
    assert_eq!(e[0]["exception"], false, "{abba}");
    assert!(e[0]["first_access"].is_string());
    let c = rows(&abba, "carl@example.com");
    assert_eq!(
        (c[0]["exception"].clone(), c[0]["first_access"].clone()),
        (Value::Bool(false), Value::Null)
    );

    // A non-empty directory is refused, nothing is overwritten.
    let (code, _, err) = cli(&[
        "evidence", "export", "--config", config_arg, "--out", out_arg,
    ])
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("not empty"), "{err}");

    // Filtered by subject and time: only erin, only after her completions.
    let only = dir.path().join("only-erin");
    let (code, out, err) = cli(&[
        "evidence",
        "export",
        "--config",
        config_arg,
        "--out",
        only.to_str().expect("path"),
        "--subject",
        "erin@example.com",
        "--from",
        &before.to_rfc3339(),
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let acceptances = read_json(&only, "acceptances.json");
    assert!(
        acceptances
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["subject"] == "erin@example.com")
    );
    assert_eq!(acceptances.as_array().map(Vec::len), Some(2));
    let manifest = read_json(&only, "manifest.json");
    assert_eq!(manifest["filters"]["subjects"][0], "erin@example.com");
    assert_eq!(manifest["people"], 1);
    // Only erin's chain is named (and the service-wide ones); the digest still pins them all.
    let heads: Vec<&str> = manifest["audit_chain"]["heads"]
        .as_array()
        .expect("heads")
        .iter()
        .filter_map(|h| h["chain"].as_str())
        .collect();
    assert!(heads.contains(&"subject:erin@example.com"), "{heads:?}");
    assert!(
        heads
            .iter()
            .all(|h| !h.starts_with("subject:") || *h == "subject:erin@example.com"),
        "{heads:?}"
    );
    assert_eq!(manifest["audit_chain"]["heads_sha256"], all_heads_sha256);

    // Bad flags say which flag and what is expected.
    let (code, _, err) = cli(&[
        "evidence",
        "export",
        "--config",
        config_arg,
        "--out",
        "/tmp/x",
        "--from",
        "yesterday",
    ])
    .await;
    assert_eq!(code, 2);
    assert!(
        err.contains("--from \"yesterday\": use a date like"),
        "{err}"
    );
    let (code, _, err) = cli(&[
        "evidence",
        "export",
        "--config",
        config_arg,
        "--out",
        "/tmp/x",
        "--from",
        "2026-02-01",
        "--to",
        "2026-01-01",
    ])
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("is after --to"), "{err}");
    let (code, _, err) = cli(&[
        "evidence",
        "at",
        "--config",
        config_arg,
        "--subject",
        "erin@example.com",
        "--time",
        "31/12/2026",
    ])
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("--time \"31/12/2026\""), "{err}");
    let (code, _, err) = cli(&[
        "evidence",
        "at",
        "--config",
        config_arg,
        "--subject",
        "",
        "--time",
        "2026-01-01",
    ])
    .await;
    assert_eq!(code, 2);
    assert!(err.contains("--subject"), "{err}");

    // The API answers the same questions, to the admin token only.
    let client = reqwest::Client::new();
    let api = |path: &str| format!("{}/.clearance/api/v1/evidence/{path}", world.gate.url());
    let r = client.get(api("export")).send().await.expect("API");
    assert_eq!(r.status(), 401);
    let body: Value = client
        .get(api(
            "export?subject=alice@example.com&subject=erin@example.com",
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("API")
        .json()
        .await
        .expect("JSON");
    let abba = &body["files"]["access-before-agreement"];
    assert_eq!(
        rows(abba, "alice@example.com")[0]["exception"],
        true,
        "{body}"
    );
    assert_eq!(rows(abba, "erin@example.com")[0]["exception"], false);
    assert_eq!(body["manifest"]["people"], 2);
    assert_eq!(body["manifest"]["files"].as_array().map(Vec::len), Some(16));
    let r = client
        .get(api("export?from=soon"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("API");
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap_or_default();
    assert!(text.contains("from \\\"soon\\\""), "{text}");
    let url = format!(
        "{}?subject=erin@example.com&time={}",
        api("at"),
        percent(&after.to_rfc3339())
    );
    let at: Value = client
        .get(url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("API")
        .json()
        .await
        .expect("JSON");
    assert_eq!(at["compliant"], true, "{at}");
    let r = client
        .get(format!("{}?subject=erin@example.com", api("at")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("API");
    assert_eq!(r.status(), 400);
}

fn percent(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn directory_import_writes_all_or_nothing() {
    let redis_server = RedisServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(dir.path(), &redis_server.url());
    let config_arg = config.to_str().expect("path");
    let mut conn = redis::Client::open(redis_server.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "user_name,user_type,manager,sponsor,start_date\n\
         ann@example.com,Employee,boss@example.com,,2026-03-01\n\
         tom@example.com,Temp,,,2026-03-01\n\
         zed@example.com,Employee,,,2026-02-30\n",
    )
    .expect("write");
    let (code, _, err) = cli(&[
        "directory",
        "import",
        bad.to_str().expect("path"),
        "--config",
        config_arg,
    ])
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("line 3, sponsor: tom@example.com is a temp"),
        "{err}"
    );
    assert!(err.contains("line 4, start_date: \"2026-02-30\""), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    let keys: Vec<String> = conn.keys("*").await.expect("KEYS");
    assert!(keys.is_empty(), "nothing written: {keys:?}");

    let good = dir.path().join("people.csv");
    std::fs::write(
        &good,
        "user_name,active,user_type,manager,sponsor,employee_number,department,start_date,display_name,email\n\
         boss@example.com,true,Employee,,,1,Board,2020-01-01,Boss,boss@example.com\n\
         ann@example.com,true,Employee,boss@example.com,,2,Finance,2026-03-01,Ann,ann@example.com\n\
         tom@example.com,false,Temp,,boss@example.com,,,2026-03-01,Tom,\n",
    )
    .expect("write");
    let (code, out, err) = cli(&[
        "directory",
        "import",
        good.to_str().expect("path"),
        "--config",
        config_arg,
        "--dry-run",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 valid row(s)"), "{out}");
    let keys: Vec<String> = conn.keys("*").await.expect("KEYS");
    assert!(keys.is_empty(), "a dry run writes nothing: {keys:?}");

    let (code, out, err) = cli(&[
        "directory",
        "import",
        good.to_str().expect("path"),
        "--config",
        config_arg,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("3 created, 0 updated, 0 unchanged"), "{out}");
    let ann: String = conn
        .hget("clearance:{/directory}:people", "ann@example.com")
        .await
        .expect("HGET");
    let ann: Value = serde_json::from_str(&ann).expect("JSON");
    assert_eq!(ann["manager"], "boss@example.com");
    assert_eq!(ann["user_type"], "employee");
    assert_eq!(ann["source"], "csv");
    assert_eq!(ann["start_date"], "2026-03-01");
    let tom: String = conn
        .hget("clearance:{/directory}:people", "tom@example.com")
        .await
        .expect("HGET");
    let tom: Value = serde_json::from_str(&tom).expect("JSON");
    assert_eq!(
        (tom["active"].clone(), tom["sponsor"].clone()),
        (Value::Bool(false), Value::from("boss@example.com"))
    );
    let log: Vec<String> = conn
        .lrange("clearance:{/directory}:audit:log", 0, -1)
        .await
        .expect("LRANGE");
    assert_eq!(
        log.iter()
            .filter(
                |l| l.contains("directory.changed") && l.contains("\"actor\":\"csv:people.csv\"")
            )
            .count(),
        3
    );
    // Again: nothing changes, nothing is audited twice.
    let (code, out, _) = cli(&[
        "directory",
        "import",
        good.to_str().expect("path"),
        "--config",
        config_arg,
    ])
    .await;
    assert_eq!(code, 0);
    assert!(out.contains("0 created, 0 updated, 3 unchanged"), "{out}");
    let (code, out, err) = cli(&["audit", "verify", "--config", config_arg]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("intact: 3 entries"), "{out}");

    // A file without an active column: tom stays inactive (denied), what the file lacks is kept.
    let partial = dir.path().join("partial.csv");
    std::fs::write(
        &partial,
        "user_name,department\ntom@example.com,Ops\nann@example.com,\n",
    )
    .expect("write");
    let (code, out, err) = cli(&[
        "directory",
        "import",
        partial.to_str().expect("path"),
        "--config",
        config_arg,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 created, 1 updated, 1 unchanged"), "{out}");
    let tom: String = conn
        .hget("clearance:{/directory}:people", "tom@example.com")
        .await
        .expect("HGET");
    let tom: Value = serde_json::from_str(&tom).expect("JSON");
    assert_eq!(tom["active"], false, "{tom}");
    assert_eq!(tom["department"], "Ops", "{tom}");
    assert_eq!(tom["display_name"], "Tom", "{tom}");
    assert_eq!(tom["sponsor"], "boss@example.com", "{tom}");

    // An entry SCIM deactivated: refused without --force, nothing written; with it, still inactive.
    let mut zoe = tom.clone();
    zoe["subject"] = "zoe@example.com".into();
    zoe["user_name"] = "zoe@example.com".into();
    zoe["display_name"] = "Zoe".into();
    zoe["source"] = "scim".into();
    let () = conn
        .hset(
            "clearance:{/directory}:people",
            "zoe@example.com",
            zoe.to_string(),
        )
        .await
        .expect("HSET");
    let scim = dir.path().join("scim.csv");
    std::fs::write(
        &scim,
        "user_name,department\nnew@example.com,Ops\nzoe@example.com,Ops\n",
    )
    .expect("write");
    let args = [
        "directory",
        "import",
        scim.to_str().expect("path"),
        "--config",
        config_arg,
    ];
    let (code, _, err) = cli(&args).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("line 3, user_name: zoe@example.com (Zoe) is provisioned over SCIM"),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    let new: Option<String> = conn
        .hget("clearance:{/directory}:people", "new@example.com")
        .await
        .expect("HGET");
    assert_eq!(new, None, "nothing written");
    let (code, out, err) = cli(&[args.as_slice(), &["--force"]].concat()).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 created, 1 updated, 0 unchanged"), "{out}");
    let zoe: String = conn
        .hget("clearance:{/directory}:people", "zoe@example.com")
        .await
        .expect("HGET");
    let zoe: Value = serde_json::from_str(&zoe).expect("JSON");
    assert_eq!(
        (zoe["active"].clone(), zoe["department"].clone()),
        (Value::Bool(false), Value::from("Ops"))
    );
}

#[tokio::test]
async fn redis_store_reads_denials_by_time_and_keeps_the_first_access() {
    use clearance::config::{DenialSettings, RedisSettings};
    use clearance::domain::{DenialEvent, Principal, SubjectKey};
    use clearance::store::redis::RedisStore;
    use clearance::store::{DenialLog, FollowUpStore};
    use std::time::Duration;

    let redis_server = RedisServer::start().await;
    let store = RedisStore::new(
        &RedisSettings {
            url: redis_server.url(),
            topology: clearance::config::RedisTopology::Single,
            key_prefix: "t:".into(),
            response_timeout: Duration::from_millis(2000),
            connect_timeout: Duration::from_millis(500),
        },
        DenialSettings {
            max_entries: 10_000,
            max_age: None,
        },
        b"evidence-test-audit-key-0123456789abcdef".to_vec(),
    )
    .expect("store");
    let who = SubjectKey::parse("p@example.com").expect("subject");

    // More than one page of XRANGE.
    let start = Utc::now();
    for n in 0..1205 {
        let mut e = DenialEvent::for_principal(&Principal::bare(who.clone()), Utc::now(), vec![]);
        e.path = format!("/{n}");
        store.append_denial(&e).await.expect("append");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let middle = Utc::now();
    let mut late = DenialEvent::for_principal(&Principal::bare(who.clone()), middle, vec![]);
    late.path = "/late".into();
    store.append_denial(&late).await.expect("append");

    let all = store.denials_between(None, None).await.expect("range");
    assert_eq!(all.len(), 1206);
    assert_eq!(all[0].1.path, "/0", "oldest first");
    assert_eq!(all[1204].1.path, "/1204");
    let after = store
        .denials_between(Some(middle), None)
        .await
        .expect("range");
    assert_eq!(after.len(), 1, "only the late one: {}", after.len());
    assert_eq!(after[0].1.path, "/late");
    let before = store
        .denials_between(
            Some(start),
            Some(middle - chrono::Duration::milliseconds(1)),
        )
        .await
        .expect("range");
    assert_eq!(before.len(), 1205);

    // First access: set once, read with the standing.
    assert_eq!(
        store.standing(&who).await.expect("standing").first_access,
        None
    );
    let t1 = Utc::now();
    assert!(store.mark_first_access(&who, t1).await.expect("mark"));
    assert!(
        !store
            .mark_first_access(&who, t1 + chrono::Duration::hours(1))
            .await
            .expect("mark")
    );
    let on_file = store.standing(&who).await.expect("standing").first_access;
    assert_eq!(
        on_file.map(|t| t.timestamp_millis()),
        Some(t1.timestamp_millis())
    );
    assert_eq!(
        store
            .first_access(&who)
            .await
            .expect("read")
            .map(|t| t.timestamp_millis()),
        Some(t1.timestamp_millis())
    );
}
