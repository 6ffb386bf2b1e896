//! What crossed between nodes: every session this node dialled runs through a counting stream,
//! both directions, so the sum over nodes of [`link_bytes`] is every byte that crossed between
//! nodes (frames, handshakes, group sync), with each link counted once.
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use ractor_cluster::{BoxRead, BoxWrite};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

static LINK_BYTES: AtomicU64 = AtomicU64::new(0);

/// Bytes that crossed this node's dialled links so far, both directions.
pub fn link_bytes() -> u64 {
    LINK_BYTES.load(Ordering::Relaxed)
}

/// A read half whose bytes are counted.
pub(crate) struct CountingRead(pub(crate) BoxRead);
/// A write half whose bytes are counted.
pub(crate) struct CountingWrite(pub(crate) BoxWrite);

impl AsyncRead for CountingRead {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.0).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            LINK_BYTES.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for CountingWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.0).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            LINK_BYTES.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Each node's link-byte counter: node name → `(pid, bytes)`.
pub type LinkCounters = BTreeMap<String, (u32, u64)>;

/// Bytes that crossed between nodes from `before` to `after`: per node, the growth of its
/// counter, or the whole counter of a node that restarted in between (new pid).
pub fn crossed(before: &LinkCounters, after: &LinkCounters) -> u64 {
    after
        .iter()
        .map(|(node, (pid, bytes))| match before.get(node) {
            Some((p, b)) if p == pid => bytes.saturating_sub(*b),
            _ => *bytes,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_node_counts_from_zero() {
        let before = LinkCounters::from([("a".into(), (1, 100)), ("b".into(), (2, 50))]);
        let after = LinkCounters::from([("a".into(), (1, 130)), ("b".into(), (3, 20))]);
        assert_eq!(crossed(&before, &after), 30 + 20);
    }
}
