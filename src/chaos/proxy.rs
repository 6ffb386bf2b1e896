//! The fault proxy: `mgrpo chaos` puts one between each pair of nodes (the dialling node's
//! `dial` entry points at it) and breaks the link on purpose while both processes stay up —
//! what `tc netem` would do, which these kernels do not offer. It forwards ractor_cluster's
//! frames (a u64 big-endian length, then the payload) whole, so a fault lands on a frame: held
//! while the link is cut (per direction), delayed by `ms ± jitter`, its length header replaced
//! by garbage (corrupt), or cut off half-way with the connection closed (close). A frame
//! announcing more than `max_frame` bytes (TLS records, or garbage) is forwarded as raw bytes.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// A direction of a link: from the dialling node to the one it dials, or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Dialler → listener.
    Up,
    /// Listener → dialler.
    Down,
}

/// What the proxy does to one direction now.
#[derive(Debug, Clone, Default)]
struct DirState {
    cut: bool,
    delay: Option<(u64, u64)>,
    corrupt: u32,
    close: u32,
}

/// Faults applied to a link, shared by its connections.
#[derive(Debug, Default)]
pub struct LinkFaults {
    up: Mutex<DirState>,
    down: Mutex<DirState>,
    fired: Mutex<Vec<(&'static str, Instant)>>,
}

impl LinkFaults {
    fn dir(&self, d: Dir) -> &Mutex<DirState> {
        match d {
            Dir::Up => &self.up,
            Dir::Down => &self.down,
        }
    }

    fn set(&self, dirs: &[Dir], f: impl Fn(&mut DirState)) {
        for d in dirs {
            if let Ok(mut s) = self.dir(*d).lock() {
                f(&mut s);
            }
        }
    }

    /// Cuts (or heals) the directions.
    pub fn cut(&self, dirs: &[Dir], on: bool) {
        self.set(dirs, |s| s.cut = on);
    }

    /// Delays every frame by `ms ± jitter` (or stops delaying).
    pub fn delay(&self, dirs: &[Dir], delay: Option<(u64, u64)>) {
        self.set(dirs, |s| s.delay = delay);
    }

    /// Corrupts the next frame in one of the directions.
    pub fn corrupt_next(&self, dir: Dir) {
        self.set(&[dir], |s| s.corrupt += 1);
    }

    /// Closes the connection half-way through the next frame in one of the directions.
    pub fn close_next(&self, dir: Dir) {
        self.set(&[dir], |s| s.close += 1);
    }

    /// One-shot faults that struck, with when.
    pub fn fired(&self) -> Vec<(&'static str, Instant)> {
        self.fired.lock().map(|f| f.clone()).unwrap_or_default()
    }

    fn note(&self, what: &'static str) {
        if let Ok(mut f) = self.fired.lock() {
            f.push((what, Instant::now()));
        }
    }
}

/// A running proxy for one link.
pub struct Proxy {
    /// Where the dialling node connects.
    pub addr: SocketAddr,
    /// Its faults.
    pub faults: Arc<LinkFaults>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a proxy on a free loopback port forwarding to `upstream`.
pub async fn start(upstream: String, max_frame: u64) -> std::io::Result<Proxy> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let faults = Arc::new(LinkFaults::default());
    let f = faults.clone();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (f, upstream) = (f.clone(), upstream.clone());
            tokio::spawn(async move {
                // The listener may be down (its node killed): the dialler sees a closed link.
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let mut up = tokio::spawn(pump(cr, sw, f.clone(), Dir::Up, max_frame));
                let mut down = tokio::spawn(pump(sr, cw, f, Dir::Down, max_frame));
                // When one direction ends, end the other: the connection is gone (both
                // sockets are dropped, so both ends see it closed).
                tokio::select! {
                    _ = &mut up => {},
                    _ = &mut down => {},
                }
                up.abort();
                down.abort();
            });
        }
    });
    Ok(Proxy { addr, faults, task })
}

/// Forwards frames one way, applying the direction's faults.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    faults: Arc<LinkFaults>,
    dir: Dir,
    max_frame: u64,
) {
    let mut header = [0u8; 8];
    loop {
        // A cut direction reads nothing: the sender's socket buffers fill and it stalls.
        while faults.dir(dir).lock().map(|s| s.cut).unwrap_or(false) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if from.read_exact(&mut header).await.is_err() {
            let _ = to.shutdown().await;
            return;
        }
        let len = u64::from_be_bytes(header);
        let mut frame = header.to_vec();
        if len <= max_frame {
            let mut payload = vec![0u8; len as usize];
            if from.read_exact(&mut payload).await.is_err() {
                let _ = to.shutdown().await;
                return;
            }
            frame.extend_from_slice(&payload);
        } else {
            // Not a frame we know: forward what is there.
            let mut buf = vec![0u8; 16 << 10];
            if let Ok(n) = from.read(&mut buf).await {
                frame.extend_from_slice(&buf[..n]);
            }
        }
        // A frame read just before the cut waits too.
        while faults.dir(dir).lock().map(|s| s.cut).unwrap_or(false) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (delay, corrupt, close) = {
            let Ok(mut s) = faults.dir(dir).lock() else {
                return;
            };
            let corrupt = s.corrupt > 0;
            let close = !corrupt && s.close > 0;
            if corrupt {
                s.corrupt -= 1;
            }
            if close {
                s.close -= 1;
            }
            (s.delay, corrupt, close)
        };
        if let Some((ms, jitter)) = delay {
            let j = if jitter > 0 {
                rand::rng().random_range(0..=2 * jitter) as i64 - jitter as i64
            } else {
                0
            };
            tokio::time::sleep(Duration::from_millis((ms as i64 + j).max(0) as u64)).await;
        }
        if corrupt {
            // A length no node accepts: the receiver refuses the frame and drops the session.
            frame[..8].copy_from_slice(&u64::MAX.to_be_bytes());
            faults.note("corrupt");
        }
        if close {
            let half = frame.len() / 2;
            let _ = to.write_all(&frame[..half]).await;
            let _ = to.shutdown().await;
            faults.note("close");
            return;
        }
        if to.write_all(&frame).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u64).to_be_bytes().to_vec();
        f.extend_from_slice(payload);
        f
    }

    /// A proxy in front of a listener, a client connected through it, and the listener's end.
    async fn through_proxy() -> (Proxy, TcpStream, TcpStream) {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = start(server.local_addr().unwrap().to_string(), 1 << 20)
            .await
            .unwrap();
        let client = TcpStream::connect(proxy.addr).await.unwrap();
        let (upstream, _) = server.accept().await.unwrap();
        (proxy, client, upstream)
    }

    #[tokio::test]
    async fn frames_pass_are_held_while_cut_and_a_corrupt_one_is_unreadable() {
        let (proxy, mut client, mut upstream) = through_proxy().await;
        client.write_all(&frame(b"hello")).await.unwrap();
        let mut got = vec![0u8; 13];
        upstream.read_exact(&mut got).await.unwrap();
        assert_eq!(got, frame(b"hello"));

        proxy.faults.cut(&[Dir::Up], true);
        client.write_all(&frame(b"held")).await.unwrap();
        let mut buf = [0u8; 12];
        let r = tokio::time::timeout(Duration::from_millis(200), upstream.read_exact(&mut buf));
        assert!(r.await.is_err(), "nothing passes a cut link");
        proxy.faults.cut(&[Dir::Up], false);
        upstream.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf.to_vec(), frame(b"held"), "delivered once healed");

        proxy.faults.corrupt_next(Dir::Up);
        client.write_all(&frame(b"bad")).await.unwrap();
        let mut hdr = [0u8; 8];
        upstream.read_exact(&mut hdr).await.unwrap();
        assert_eq!(u64::from_be_bytes(hdr), u64::MAX);
        assert_eq!(proxy.faults.fired().len(), 1);
    }

    #[tokio::test]
    async fn close_cuts_a_frame_in_half_and_ends_the_connection() {
        let (proxy, mut client, mut upstream) = through_proxy().await;
        proxy.faults.close_next(Dir::Up);
        client.write_all(&frame(&[7u8; 100])).await.unwrap();
        let mut got = Vec::new();
        upstream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), 54, "half of the 108-byte frame, then EOF");
    }
}
