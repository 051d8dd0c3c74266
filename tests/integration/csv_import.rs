//! `clearance records import`: the real binary against a real `redis-server`: invalid files write
//! nothing, `--skip-invalid` writes only the good rows, re-importing a file changes nothing.

use crate::support::{RedisServer, free_port};
use redis::AsyncCommands;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A temp dir with a configuration pointing at `redis`. The provider and upstream addresses are
/// never contacted by the import.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(redis: &RedisServer) -> Self {
        let toml = crate::gate::config(
            free_port(),
            &redis.url(),
            "http://127.0.0.1:9/issuer",
            "http://127.0.0.1:9",
            "",
            "",
        );
        if let Err(e) = clearance::config::from_toml_str(&toml) {
            panic!("the test configuration is valid: {e}");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("clearance.toml");
        std::fs::write(&config, toml).expect("write config");
        Self { dir, config }
    }

    fn csv(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write csv");
        path
    }

    async fn import(&self, file: &Path, flags: &[&str]) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_clearance"));
        command
            .args(["records", "import"])
            .arg(file)
            .arg("--config")
            .arg(&self.config)
            .args(flags);
        for (name, _) in std::env::vars() {
            if name.starts_with("CLEARANCE_") {
                command.env_remove(name);
            }
        }
        command.output().await.expect("run the clearance binary")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection")
}

/// Every key but the audit chains' (which `audit_entries` counts) and Clearance's indexes.
async fn keys(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = conn.keys("*").await.expect("KEYS");
    keys.retain(|k| !k.contains(":audit:") && !k.starts_with("clearance:{/clearance}:"));
    keys.sort();
    keys
}

/// Entries in every audit chain together.
async fn audit_entries(conn: &mut redis::aio::MultiplexedConnection) -> usize {
    let logs: Vec<String> = conn.keys("clearance:*:audit:log").await.expect("KEYS");
    let mut n = 0;
    for log in logs {
        n += conn.llen::<_, usize>(log).await.expect("LLEN");
    }
    n
}

async fn history_len(conn: &mut redis::aio::MultiplexedConnection, subject: &str) -> usize {
    conn.llen(format!("clearance:{{{subject}}}:history"))
        .await
        .expect("LLEN")
}

async fn current(
    conn: &mut redis::aio::MultiplexedConnection,
    subject: &str,
    requirement: &str,
) -> Option<Value> {
    let json: Option<String> = conn
        .hget(format!("clearance:{{{subject}}}:records"), requirement)
        .await
        .expect("HGET");
    json.map(|j| serde_json::from_str(&j).expect("record JSON"))
}

const MIXED: &str = "subject,requirement,version,completed_at\n\
    good@example.com,confidentiality-agreement,1,2025-06-01\n\
    late@example.com,security-awareness,2026.1,31/02/2026\n\
    typo@example.com,fire-safety,1,2025-06-01\n\
    ,acceptable-use-policy,3.0,2025-06-01\n";

#[tokio::test]
async fn an_invalid_file_writes_nothing_unless_invalid_rows_are_skipped() {
    let redis = RedisServer::start().await;
    let setup = Setup::new(&redis);
    let mut conn = connection(&redis).await;
    let file = setup.csv("mixed.csv", MIXED);

    let out = setup.import(&file, &[]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 3, completed_at: \"31/02/2026\" is not a date"),
        "{err}"
    );
    assert!(
        err.contains("line 4, requirement: \"fire-safety\""),
        "{err}"
    );
    assert!(err.contains("line 5, subject: is empty"), "{err}");
    assert!(err.contains("Nothing was written"), "{err}");
    assert!(
        !err.contains("line 2"),
        "the good row is not reported: {err}"
    );
    assert!(keys(&mut conn).await.is_empty(), "Redis is left unchanged");

    let out = setup.import(&file, &["--skip-invalid", "--dry-run"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("dry run"), "{}", stdout(&out));
    assert!(keys(&mut conn).await.is_empty(), "a dry run writes nothing");

    assert_eq!(
        audit_entries(&mut conn).await,
        0,
        "nothing written, nothing audited"
    );
    let out = setup.import(&file, &["--skip-invalid"]).await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        audit_entries(&mut conn).await,
        1,
        "the one row written is audited"
    );
    assert!(
        err.contains("line 3, completed_at") && err.contains("line 5, subject"),
        "{err}"
    );
    assert!(
        text.contains("1 new, 0 already imported")
            && text.contains("3 invalid skipped (line 3, 4, 5)"),
        "{text}"
    );
    assert_eq!(
        keys(&mut conn).await,
        [
            "clearance:{good@example.com}:history",
            "clearance:{good@example.com}:idem",
            "clearance:{good@example.com}:records",
        ],
        "only the good row was written"
    );
    let record = current(&mut conn, "good@example.com", "confidentiality-agreement")
        .await
        .expect("the good row is the current record");
    assert_eq!(record["source"], "csv");
    assert_eq!(record["recorded_by"], "csv-import:mixed.csv");
    assert_eq!(record["completed_at"], "2025-06-01T00:00:00Z");
}

#[tokio::test]
async fn a_good_file_imports_once() {
    let redis = RedisServer::start().await;
    let setup = Setup::new(&redis);
    let mut conn = connection(&redis).await;
    // BOM, CRLF, a blank line, columns in another order, evidence and an explicit source.
    let file = setup.csv(
        "good.csv",
        "\u{feff}requirement,subject,completed_at,version,expires_at,source,evidence_ticket\r\n\
         security-awareness,Ann@Example.com,2025-03-01T09:30:00Z,2025.1,,,HR-1\r\n\
         \r\n\
         security-awareness,ann@example.com,2026-01-10,2026.1,,,HR-2\r\n\
         confidentiality-agreement,bo@example.com,2025-11-20,1,2027-11-20,esign,\r\n",
    );

    let out = setup.import(&file, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("good.csv: 3 new, 0 already imported"),
        "{}",
        stdout(&out)
    );
    assert_eq!(history_len(&mut conn, "ann@example.com").await, 2);
    assert_eq!(history_len(&mut conn, "bo@example.com").await, 1);
    let ann = current(&mut conn, "ann@example.com", "security-awareness")
        .await
        .expect("ann's record");
    assert_eq!(ann["version"], "2026.1", "the latest completion is current");
    assert_eq!(ann["evidence"]["ticket"], "HR-2");
    let bo = current(&mut conn, "bo@example.com", "confidentiality-agreement")
        .await
        .expect("bo's record");
    assert_eq!(bo["source"], "esign");
    assert_eq!(bo["expires_at"], "2027-11-20T00:00:00Z");
    let before = keys(&mut conn).await;

    let out = setup.import(&file, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("0 new, 2 already imported"),
        "{}",
        stdout(&out)
    );
    // The older row of ann's is not written again either way.
    assert!(
        stdout(&out).contains("later completion is stored (line 2)"),
        "{}",
        stdout(&out)
    );
    // Under another name, the same rows are still the same rows.
    let copy = setup.csv(
        "good-copy.csv",
        &std::fs::read_to_string(&file).expect("read"),
    );
    let out = setup.import(&copy, &[]).await;
    assert!(
        stdout(&out).contains("0 new, 2 already imported"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        history_len(&mut conn, "ann@example.com").await,
        2,
        "history unchanged"
    );
    assert_eq!(
        history_len(&mut conn, "bo@example.com").await,
        1,
        "history unchanged"
    );
    assert_eq!(keys(&mut conn).await, before);
}

#[tokio::test]
async fn unreadable_inputs_and_outages_are_named() {
    let mut redis = RedisServer::start().await;
    let setup = Setup::new(&redis);
    let missing = setup.dir.path().join("nope.csv");
    let out = setup.import(&missing, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope.csv"), "{}", stderr(&out));

    let file = setup.csv(
        "team.csv",
        "subject,requirement,version,completed_at,team\n",
    );
    let out = setup.import(&file, &["--skip-invalid"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("line 1: unknown column \"team\""),
        "{}",
        stderr(&out)
    );
    let mut conn = connection(&redis).await;
    assert!(keys(&mut conn).await.is_empty());

    redis.stop().await;
    let file = setup.csv(
        "ok.csv",
        MIXED
            .lines()
            .take(2)
            .collect::<Vec<_>>()
            .join("\n")
            .as_str(),
    );
    let out = setup.import(&file, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("ok.csv: writing line 2 failed"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn would_block_report_lists_who_and_why() {
    let redis = RedisServer::start().await;
    let setup = Setup::new(&redis);
    // Alice completed everything on 2026-01-10; the training lasts 365 days. Carl has only
    // the training.
    let file = setup.csv(
        "people.csv",
        "subject,requirement,version,completed_at\n\
         alice@example.com,security-awareness,2026.1,2026-01-10\n\
         alice@example.com,confidentiality-agreement,1,2026-01-10\n\
         alice@example.com,acceptable-use-policy,3.0,2026-01-10\n\
         carl@example.com,security-awareness,2026.1,2026-06-01\n",
    );
    let imported = setup.import(&file, &[]).await;
    assert!(imported.status.success(), "{}", stderr(&imported));
    let report = |at: &'static str, format: &'static str| {
        let config = setup.config.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_clearance"))
                .args([
                    "report",
                    "would-block",
                    "--at",
                    at,
                    "--format",
                    format,
                    "--config",
                ])
                .arg(config)
                .output()
                .await
                .expect("run the report")
        }
    };
    let soon = report("2026-12-01", "json").await;
    assert!(soon.status.success(), "{}", stderr(&soon));
    let rows: Value = serde_json::from_str(&stdout(&soon)).expect("JSON report");
    let subjects: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        vec!["carl@example.com"],
        "only Carl is missing things on 2026-12-01"
    );
    assert_eq!(rows[0]["missing"].as_array().map(Vec::len), Some(2));

    let later = report("2027-02-01", "text").await;
    let text = stdout(&later);
    assert!(
        text.starts_with("2 people would be blocked on 2027-02-01"),
        "{text}"
    );
    assert!(
        text.contains("alice@example.com") && text.contains("security-awareness (expired)"),
        "{text}"
    );

    let bad = report("next tuesday", "text").await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--at"));
}

/// Completions that arrive by CSV settle cases like every other feed: a person the import makes
/// compliant with everything that applies to them has their open case closed; one it does not
/// keeps it.
#[tokio::test]
async fn an_import_that_makes_a_person_compliant_closes_their_case() {
    let redis = RedisServer::start().await;
    let setup = Setup::new(&redis);
    let settings = clearance::config::load(&setup.config).expect("config");
    let store = clearance::redis_store(&settings).expect("store");
    let open_case = async |subject: &str| {
        let key = clearance::domain::SubjectKey::parse(subject).unwrap();
        let mut event = clearance::domain::DenialEvent::for_principal(
            &clearance::domain::Principal::bare(key.clone()),
            chrono::Utc::now(),
            Vec::new(),
        );
        event.host = "app.example.test".into();
        store
            .touch_case(&event, &format!("case-{subject}"), false)
            .await
            .unwrap();
        key
    };
    let dora = open_case("dora@example.com").await;
    let eve = open_case("eve@example.com").await;
    let today = chrono::Utc::now().format("%Y-%m-%d");
    let file = setup.csv(
        "completions.csv",
        &format!(
            "subject,requirement,version,completed_at\n\
             dora@example.com,security-awareness,2026.1,{today}\n\
             dora@example.com,confidentiality-agreement,1,{today}\n\
             dora@example.com,acceptable-use-policy,3.0,{today}\n\
             eve@example.com,security-awareness,2026.1,{today}\n"
        ),
    );
    let out = setup.import(&file, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 open case(s) closed"),
        "{}",
        stdout(&out)
    );
    let cases = store.cases(&dora).await.unwrap();
    assert!(
        cases.iter().all(|c| !c.is_open()),
        "compliant now: {cases:?}"
    );
    let cases = store.cases(&eve).await.unwrap();
    assert!(
        cases.iter().any(|c| c.is_open()),
        "still two requirements short: {cases:?}"
    );
}
