//! `TcpProxy`: a TCP relay between the gate and Redis that adds latency to every chunk in each
//! direction (pipelined: each chunk is held until its own time, so throughput is unchanged) and
//! can freeze the connections that subscribed (they stay open and deliver nothing) or hold every
//! reply (the commands run, the client never learns it), as a half-dead network path or a hung
//! middlebox would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

#[derive(Default)]
struct Controls {
    target: AtomicU16,
    /// Added to each chunk in each direction, in microseconds.
    delay_us: AtomicU64,
    /// Connections that sent SUBSCRIBE forward nothing while set.
    frozen: AtomicBool,
    /// No connection forwards Redis' replies while set (the commands still run).
    replies_held: AtomicBool,
}

pub struct TcpProxy {
    port: u16,
    controls: Arc<Controls>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and relays to 127.0.0.1:`target`.
    pub async fn start(target: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let controls = Arc::new(Controls::default());
        controls.target.store(target, Ordering::SeqCst);
        let shared = controls.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let controls = shared.clone();
                tokio::spawn(async move {
                    let target = controls.target.load(Ordering::SeqCst);
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await {
                        relay(client, server, controls).await;
                    }
                });
            }
        });
        Self {
            port,
            controls,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Relays connections made from now on to 127.0.0.1:`target`.
    pub fn set_target(&self, target: u16) {
        self.controls.target.store(target, Ordering::SeqCst);
    }

    /// Points `settings` at this proxy and this proxy at the Redis `settings` named.
    pub fn interpose(&self, settings: &mut clearance::config::Settings) {
        let port = settings
            .redis
            .url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("redis://127.0.0.1:PORT/");
        self.set_target(port);
        settings.redis.url = self.url();
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Adds `each_way` to every chunk in each direction (so about twice that to a round trip).
    pub fn set_delay(&self, each_way: Duration) {
        let us = u64::try_from(each_way.as_micros()).unwrap_or(u64::MAX);
        self.controls.delay_us.store(us, Ordering::SeqCst);
    }

    /// While `held`, every connection passes commands to Redis but holds its replies: the
    /// commands run, and the client cannot know.
    pub fn hold_replies(&self, held: bool) {
        self.controls.replies_held.store(held, Ordering::SeqCst);
    }

    /// While `frozen`, connections that subscribed stay open but forward nothing either way.
    pub fn freeze_subscriptions(&self, frozen: bool) {
        self.controls.frozen.store(frozen, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, controls: Arc<Controls>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let subscriber = Arc::new(AtomicBool::new(false));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(
        client_read,
        server_write,
        controls.clone(),
        subscriber.clone(),
        true,
    );
    let down = pump(server_read, client_write, controls, subscriber, false);
    tokio::join!(up, down);
}

/// Copies one direction, holding each chunk until `delay` after it was read, and holding
/// everything on a subscribed connection while frozen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    controls: Arc<Controls>,
    subscriber: Arc<AtomicBool>,
    upstream: bool,
) {
    let (chunks, mut queued) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = {
        let controls = controls.clone();
        let subscriber = subscriber.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let chunk = buf[..n].to_vec();
                if upstream
                    && chunk
                        .windows(9)
                        .any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE"))
                {
                    subscriber.store(true, Ordering::SeqCst);
                }
                let delay = Duration::from_micros(controls.delay_us.load(Ordering::SeqCst));
                if chunks.send((Instant::now() + delay, chunk)).is_err() {
                    break;
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            while (subscriber.load(Ordering::SeqCst) && controls.frozen.load(Ordering::SeqCst))
                || (!upstream && controls.replies_held.load(Ordering::SeqCst))
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}
