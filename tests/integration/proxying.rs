//! The reverse proxy on real traffic: streaming both ways, server-sent events, hop-by-hop and
//! forwarded headers, normalised-path routing, and upstream faults as 502 / 504.

use crate::gate::World;
use crate::sign_in;
use crate::support::{Browser, Upstream};
use futures_util::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// A signed-in, compliant person's session cookie header.
async fn admitted(world: &World) -> (Browser, String) {
    let browser = Browser::new();
    sign_in(world, &browser, "alice@example.com", "/").await;
    crate::complete_everything(world, "alice@example.com").await;
    let value = browser
        .cookie(&world.gate.host_port(), "_clearance")
        .unwrap();
    (browser, format!("_clearance={value}"))
}

#[tokio::test]
async fn bodies_stream_both_ways_and_sse_is_not_buffered() {
    let world = World::start().await;
    let (_, cookie) = admitted(&world).await;
    let client = reqwest::Client::new();

    // Upload 3 MiB, streamed to the upstream.
    let data = Upstream::pattern(3 * 1024 * 1024 + 17);
    let r = client
        .post(format!("{}/upload", world.gate.url()))
        .header("cookie", &cookie)
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let up: Value = r.json().await.unwrap();
    assert_eq!(up["bytes"], data.len());
    assert_eq!(up["sha256"], Upstream::sha256_hex(&data));

    // A chunked upload (no content length) too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        data.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let r = client
        .post(format!("{}/upload", world.gate.url()))
        .header("cookie", &cookie)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    let up: Value = r.json().await.unwrap();
    assert_eq!(up["bytes"], data.len());

    // Download 8 MiB, chunked by the upstream.
    let r = client
        .get(format!(
            "{}/download?bytes={}",
            world.gate.url(),
            8 * 1024 * 1024
        ))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let expected = r.headers()["x-sha256"].to_str().unwrap().to_owned();
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 8 * 1024 * 1024);
    assert_eq!(hex::encode(Sha256::digest(&body)), expected);

    // Server-sent events arrive one by one, not all at the end.
    let r = client
        .get(format!("{}/sse", world.gate.url()))
        .header("cookie", &cookie)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut stream = r.bytes_stream();
    let mut arrivals = Vec::new();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        if !chunk.is_empty() {
            arrivals.push(Instant::now());
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert_eq!(text.matches("data: tick").count(), 5, "{text}");
    let spread = *arrivals.last().unwrap() - arrivals[0];
    // The upstream spaces its 5 events 200 ms apart; a buffering proxy would deliver them at once.
    assert!(
        arrivals.len() >= 3 && spread >= Duration::from_millis(400),
        "events were buffered: {} chunks over {spread:?}",
        arrivals.len()
    );
}

#[tokio::test]
async fn headers_are_cleaned_and_forwarded_headers_set() {
    let world = World::start().await;
    let (_, cookie) = admitted(&world).await;
    let r = reqwest::Client::new()
        .get(format!("{}/echo/h", world.gate.url()))
        .header("cookie", format!("{cookie}; theme=dark"))
        .header("connection", "keep-alive, x-secret-hop")
        .header("x-secret-hop", "1")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=6.6.6.6")
        .header("x-app-header", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo: Value = r.json().await.unwrap();
    let h = &echo["headers"];
    assert!(
        h.get("x-secret-hop").is_none(),
        "connection-listed header removed: {h}"
    );
    assert_eq!(
        h["x-forwarded-for"][0], "127.0.0.1",
        "client XFF is not trusted: {h}"
    );
    assert_eq!(h["x-forwarded-host"][0], world.gate.host_port());
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert!(h.get("forwarded").is_none());
    assert_eq!(h["x-app-header"][0], "kept");
    assert_eq!(
        h["cookie"][0], "theme=dark",
        "the app's cookies pass, Clearance's do not"
    );
    assert!(h["x-request-id"][0].as_str().is_some_and(|s| s.len() == 36));
}

#[tokio::test]
async fn routes_match_on_the_normalised_path() {
    let world = World::start().await;
    let browser = Browser::new();
    // Carl is blocked on the default route, but /echo/open needs nothing.
    let first = sign_in(&world, &browser, "carl@example.com", "/echo/open/x").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let get = |path: &str| {
        let browser = browser.clone();
        let url = format!("{}{path}", world.gate.url());
        async move { browser.get(url).await.unwrap() }
    };
    let r = get("/echo/open//a/./b/../c?q=1").await;
    assert_eq!(r.status, 200);
    let echo: Value = r.json().unwrap();
    assert_eq!(
        echo["path"], "/echo/open/a/c",
        "the normalised path is forwarded"
    );
    assert_eq!(echo["query"], "q=1");
    // Raw requests: an HTTP client library would resolve the dot segments before sending.
    let cookie = format!(
        "_clearance={}",
        browser
            .cookie(&world.gate.host_port(), "_clearance")
            .unwrap()
    );
    let raw = |path: &'static str| raw_get(world.gate.port, path, cookie.clone());
    for sneaky in [
        "/echo/open/../secret",
        "/echo/open/%2e%2e/secret",
        "/echo/open/%2E%2e/secret",
        "/echo/open/./../../echo/secret",
        "/echo/open;x=1/../secret",
    ] {
        let (status, body) = raw(sneaky).await;
        assert_eq!(
            status, 403,
            "{sneaky} must be judged by the route it normalises to: {body}"
        );
    }
    let (status, body) = raw("/echo/open/./x/../y").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"path\":\"/echo/open/y\""), "{body}");
    for refused in [
        "/echo/open%2f..%2fsecret",
        "/echo/open/%252e%252e/secret",
        "/../../etc/passwd",
        "/echo/open/..\\..\\secret",
        "/echo/open/%00/x",
    ] {
        let (status, body) = raw(refused).await;
        assert_eq!(status, 400, "{refused}: {body}");
        assert!(body.contains("invalid_path"), "{body}");
    }
    let upstream_paths = world.upstream.requests();
    assert!(
        upstream_paths
            .iter()
            .all(|p| !p.contains("secret") && !p.contains("passwd")),
        "{upstream_paths:?}"
    );
}

#[tokio::test]
async fn upstream_faults_are_502_and_504() {
    // The test configuration: upstream_connect_timeout_ms = 1000, upstream_timeout_ms = 2000.
    // The bounds below are those timeouts plus a generous margin for a loaded machine: they
    // check that Clearance gives up when configured, not how fast it is.
    let connect_timeout = Duration::from_millis(1000);
    let response_timeout = Duration::from_millis(2000);
    let margin = Duration::from_millis(2500);
    // An upstream that never accepts: a tiny backlog, filled, so that further connection
    // attempts hang (SYNs dropped) or sit unaccepted in the queue.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let hung = socket.listen(1).unwrap();
    let hung_port = hung.local_addr().unwrap().port();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(("127.0.0.1", hung_port)),
        )
        .await
        {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
    }
    let world = World::start_with(
        |p| p,
        "",
        &format!(
            "\n[[routes]]\npath_prefix = \"/hung\"\nupstream = \"http://127.0.0.1:{hung_port}\"\nrequirements = []\n"
        ),
    )
    .await;
    let (browser, _) = admitted(&world).await;

    let started = Instant::now();
    let dead = browser
        .get(format!("{}/dead/x", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(dead.status, 502, "{}", dead.body);
    assert!(dead.body.contains("not responding"));
    assert!(
        started.elapsed() < connect_timeout + margin,
        "connection refused: {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let slow = browser
        .get(format!("{}/slow?ms=5000", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert!(slow.body.contains("did not answer in time"));
    assert!(
        started.elapsed() < response_timeout + margin,
        "slow headers are cut at upstream_timeout_ms, not after the upstream's 5 s: {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let never = browser
        .get(format!("{}/hung/x", world.gate.url()))
        .await
        .unwrap();
    assert!(
        never.status == 502 || never.status == 504,
        "{} {}",
        never.status,
        never.body
    );
    assert!(
        started.elapsed() < connect_timeout + response_timeout + margin,
        "a hung connect is cut by the configured timeouts: {:?}",
        started.elapsed()
    );
    drop(fillers);

    let fine = browser
        .get(format!("{}/slow?ms=10", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(fine.status, 200);
    let teapot = browser
        .get(format!("{}/status/418", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(teapot.status, 418, "upstream statuses pass through");
}

/// Sends a request line exactly as given, without any client-side path clean-up.
async fn raw_get(port: u16, path: &str, cookie: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn induction_and_public_routes() {
    let world = World::start().await;
    // Public: no sign-in, and client identity headers still never reach the app.
    let anonymous = Browser::new();
    let r = anonymous
        .get_with(
            format!("{}/echo/public/health", world.gate.url()),
            &[("x-auth-request-user", "mallory@example.com")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let echo: Value = r.json().unwrap();
    assert!(
        echo["headers"].get("x-auth-request-user").is_none(),
        "{echo}"
    );
    // Induction: needs sign-in ...
    let r = anonymous
        .get(format!("{}/echo/lms/course", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(r.status, 302);
    // ... but not compliance: blocked Carl reaches the LMS with his identity.
    let carl = Browser::new();
    let page = sign_in(&world, &carl, "carl@example.com", "/echo/lms/course").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let echo: Value = page.json().unwrap();
    assert_eq!(
        echo["headers"]["x-auth-request-user"][0],
        "carl@example.com"
    );
    // Every other route stays blocked.
    let r = carl
        .get(format!("{}/echo/private", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = carl
        .get(format!("{}/echo/lmsx", world.gate.url()))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "prefixes match whole segments");
}
