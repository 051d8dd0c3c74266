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
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    RawResponse { status, text }
}
