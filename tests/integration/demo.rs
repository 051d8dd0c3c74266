//! `clearance demo` as a newcomer runs it: the real binary, its built-in provider, a blocked
//! contractor who fixes things at the demo portal, and an admitted employee.

use crate::support::{Browser, Response, free_port};
use crate::{blocked_items, links};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Demo {
    child: Child,
    url: String,
}

impl Demo {
    async fn start() -> Self {
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_clearance"))
            .args(["demo", "--port", &port.to_string()])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start clearance demo");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                banner.push_str(&line);
                banner.push('\n');
                if let Some(url) = line.strip_prefix("ready ") {
                    return Some(url.to_owned());
                }
            }
            None
        })
        .await
        .expect("the demo starts within 60 s")
        .expect("the demo prints its URL");
        for person in [
            "alice@example.com",
            "carl@example.com",
            "erin@example.com",
            "mona@example.com",
        ] {
            assert!(
                banner.contains(person),
                "the banner lists the demo accounts: {banner}"
            );
        }
        assert_eq!(ready, format!("http://127.0.0.1:{port}"));
        // Keep draining stdout so that the demo never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, url: ready }
    }
}

/// Signs in at the demo's built-in provider by picking the account's button.
async fn sign_in(demo: &Demo, browser: &Browser, login: &str) -> Response {
    let (page, _) = browser.get_follow(format!("{}/", demo.url)).await.unwrap();
    assert_eq!(
        page.status, 200,
        "the provider's sign-in page: {}",
        page.body
    );
    let form = page
        .forms()
        .into_iter()
        .find(|f| f.field("login") == Some(login))
        .unwrap_or_else(|| panic!("a button for {login} on {}", page.body));
    let chosen = browser.submit(&form, None).await.unwrap();
    let (landed, _) = browser.follow(chosen).await.unwrap();
    landed
}

#[tokio::test]
async fn demo_walks_a_blocked_and_an_admitted_person() {
    let mut demo = Demo::start().await;

    // Carl, a contractor, has not signed the confidentiality agreement.
    let carl = Browser::new();
    let blocked = sign_in(&demo, &carl, "carl@example.com").await;
    assert_eq!(blocked.status, 403, "{}", blocked.body);
    assert_eq!(
        blocked_items(&blocked),
        vec![(
            "confidentiality-agreement".to_owned(),
            "never_completed".to_owned()
        )]
    );
    // He follows the link to the demo induction portal and signs it there.
    let portal = links(&blocked)
        .into_iter()
        .find(|l| l.contains("/complete/confidentiality-agreement"))
        .expect("a link to fix it");
    let form_page = carl.get(&portal).await.unwrap();
    let mut form = form_page.forms().into_iter().next().expect("portal form");
    form.set("email", "carl@example.com");
    let done = carl.submit(&form, None).await.unwrap();
    let (admitted, _) = carl.follow(done).await.unwrap();
    assert_eq!(admitted.status, 200, "{}", admitted.body);
    assert!(admitted.body.contains("Welcome to the demo intranet"));
    assert!(admitted.body.contains("carl@example.com"));

    // Erin's training expired.
    let erin = Browser::new();
    let expired = sign_in(&demo, &erin, "erin@example.com").await;
    assert_eq!(expired.status, 403);
    assert_eq!(
        blocked_items(&expired),
        vec![("security-awareness".to_owned(), "expired".to_owned())]
    );

    // Alice is admitted straight away, and the app sees who she is.
    let alice = Browser::new();
    let welcome = sign_in(&demo, &alice, "alice@example.com").await;
    assert_eq!(welcome.status, 200, "{}", welcome.body);
    assert!(welcome.body.contains("Alice Admitted"));
    assert!(welcome.body.contains("alice@example.com"));

    // Tom accepted an old policy version: he accepts the new one on Clearance's own page.
    let tom = Browser::new();
    let blocked = sign_in(&demo, &tom, "tom@example.com").await;
    assert_eq!(blocked.status, 403, "{}", blocked.body);
    assert_eq!(
        blocked_items(&blocked),
        vec![(
            "acceptable-use-policy".to_owned(),
            "outdated_version".to_owned()
        )]
    );
    let link = links(&blocked)
        .into_iter()
        .find(|l| l.starts_with("/.clearance/requirements/acceptable-use-policy"))
        .expect("a link to the sign-off page");
    let page = tom.get(format!("{}{link}", demo.url)).await.unwrap();
    assert!(page.body.contains("AI assistants"), "what changed is shown");
    let form = page
        .forms()
        .into_iter()
        .find(|f| f.action.path() == "/.clearance/requirements/acceptable-use-policy")
        .expect("accept form");
    let read = tom
        .post_form(
            format!(
                "{}/.clearance/requirements/acceptable-use-policy/read",
                demo.url
            ),
            &[
                ("csrf", form.field("csrf").unwrap()),
                ("token", form.field("token").unwrap()),
                ("beacon", "1"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(read.status, 204);
    let mut fields = form.submission(None);
    fields.retain(|(k, _)| k != "decision");
    fields.push(("decision".into(), "accept".into()));
    let accepted = tom.post_form(form.action.as_str(), &fields).await.unwrap();
    let (admitted, _) = tom.follow(accepted).await.unwrap();
    assert_eq!(admitted.status, 200, "{}", admitted.body);
    assert!(admitted.body.contains("Tom Temp"));

    // Mona manages all four: her team view shows Erin still blocked, with an open case, and
    // Carl's case closed once he signed.
    let mona = Browser::new();
    assert_eq!(sign_in(&demo, &mona, "mona@example.com").await.status, 200);
    let team = mona
        .get(format!("{}/.clearance/manage", demo.url))
        .await
        .unwrap();
    assert_eq!(team.status, 200, "{}", team.body);
    for person in ["alice", "carl", "erin", "tom"] {
        assert!(
            team.body
                .contains(&format!("data-subject=\"{person}@example.com\"")),
            "{person} in {}",
            team.body
        );
    }
    assert!(team.body.contains("open case: 1 denial"), "{}", team.body);
    // Everyone in the demo started 30 days ago: new joiners, with their checklist progress.
    assert!(team.body.contains("id=\"new-joiners\""), "{}", team.body);
    assert!(team.body.contains("(day 30)"), "{}", team.body);
    let erin_file = mona
        .get(format!(
            "{}/.clearance/manage/people/erin%40example.com",
            demo.url
        ))
        .await
        .unwrap();
    assert_eq!(erin_file.status, 200);
    assert!(erin_file.body.contains("Record an action"));

    demo.child.kill().await.expect("stop the demo");
}
