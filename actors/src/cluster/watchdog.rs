//! A read half that fails when nothing arrived for too long. ractor_cluster's sessions ping
//! each other every 1–5 s but never time a pong out, so a link that is cut or hung while both
//! processes stay up (no FIN, no RST) looks alive forever and every request over it waits its
//! full `request_timeout_s`. Every session of a node (dialled or accepted) reads through this
//! watchdog: silence past `cluster.link_timeout_s` ends the session with `TimedOut`, the peer
//! is reported lost, requests in flight fail and are retried, and the dialling side dials again.
//! It also ends connections that open and never say anything (a stalled handshake).
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ractor_cluster::BoxRead;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A read half that errors after `limit` without a byte.
pub(crate) struct WatchedRead {
    inner: BoxRead,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
    label: String,
}

impl WatchedRead {
    /// Watches `inner`; `label` names the link in the error.
    pub(crate) fn new(inner: BoxRead, limit: Duration, label: String) -> Self {
        Self {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            label,
        }
    }
}

impl AsyncRead for WatchedRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + this.limit;
                    this.deadline.as_mut().reset(next);
                }
                Poll::Ready(r)
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    tracing::warn!(link = %this.label, limit = ?this.limit, "link silent; dropping it");
                    Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("nothing from {} for {:?}", this.label, this.limit),
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// On tokio's paused clock: time moves only when every task waits, so the gaps below
    /// are exact whatever the machine's load.
    #[tokio::test(start_paused = true)]
    async fn bytes_keep_it_alive_and_silence_ends_it() {
        let (mut a, b) = tokio::io::duplex(64);
        let mut r = WatchedRead::new(Box::new(b), Duration::from_millis(200), "test".into());
        let mut buf = [0u8; 4];
        // Gaps of 190 ms, each under the limit: 570 ms alive in all, three times the limit.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(190)).await;
            a.write_all(b"ping").await.unwrap();
            r.read_exact(&mut buf).await.unwrap();
        }
        let silent = tokio::time::Instant::now();
        let e = r.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        let after = silent.elapsed().as_millis();
        assert!(
            (200..=201).contains(&after),
            "dropped at the limit, not {after} ms"
        );
    }
}
