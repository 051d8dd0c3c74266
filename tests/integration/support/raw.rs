//! A tiny raw HTTP/1.1 client for requests no well-behaved client library will send (CRLF in
//! headers, duplicate or contradictory headers, raw bytes in the request line).

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What came back: the status (0 when the server closed without answering) and the raw head and
/// body as text.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub text: String,
}

impl RawResponse {
    /// What `bytes` say, read as a response (status 0 when they are not one).
    fn read(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Self { status, text }
    }

    /// The first value of header `name` (case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.text.split("\r\n\r\n").next().unwrap_or("");
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Sends `request` as is to 127.0.0.1:`port` and reads until the server closes (or 10 s pass).
pub async fn send(port: u16, request: &[u8]) -> RawResponse {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the gate");
    // The server may answer and close before it has read everything (431, 413): ignore that.
    let _ = stream.write_all(request).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    RawResponse::read(&buf)
}

/// A conversation with `Expect: 100-continue`: the first answer to the head alone, then, only
/// when it was `100 Continue`, the final answer to the body.
pub struct Expectation {
    pub first: RawResponse,
    pub last: Option<RawResponse>,
}

/// Sends `head` (which must ask for `100 Continue` and end with the blank line), waits up to
/// 5 s for the first answer, sends `body` only if it was `100 Continue`, and reads to the end.
pub async fn converse(port: u16, head: &str, body: &[u8]) -> Expectation {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the gate");
    stream.write_all(head.as_bytes()).await.expect("send head");
    let mut buf = Vec::new();
    let wait = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(wait, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(buf.len(), |i| i + 4);
    let first = RawResponse::read(&buf[..head_end]);
    if first.status != 100 {
        // The final answer: read the rest of it, up to the close.
        let _ = tokio::time::timeout_at(wait, stream.read_to_end(&mut buf)).await;
        return Expectation {
            first: RawResponse::read(&buf),
            last: None,
        };
    }
    stream.write_all(body).await.expect("send body");
    let _ = tokio::time::timeout_at(wait, stream.read_to_end(&mut buf)).await;
    Expectation {
        first,
        last: Some(RawResponse::read(&buf[head_end..])),
    }
}
