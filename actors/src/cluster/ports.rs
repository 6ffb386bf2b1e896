//! Loopback ports for nodes that another process binds later (test clusters, `mgrpo chaos`).
//! Binding port 0 and closing it hands back a port from the OS's ephemeral range, which the
//! OS may give to any outgoing connection before the node binds it — a race that failed test
//! runs now and then. These come from below that range (never handed out for outgoing
//! connections), from an offset set by the process id, each checked free by a bind and never
//! given twice by one process; only another process binding the same port on purpose can
//! take one.
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out.
const LOWEST: u16 = 10_000;

/// How far into the pool the next port of this process is.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The first port of the OS's ephemeral range (Linux's file; 32768 elsewhere).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// `n` distinct loopback ports, free when checked, outside the ephemeral range.
pub fn loopback_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let top = ephemeral_start().max(LOWEST + 1_000);
    let pool = u32::from(top - LOWEST);
    let offset = std::process::id().wrapping_mul(7_919) % pool;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        if i >= pool {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("no free loopback port left in {LOWEST}..{top}"),
            ));
        }
        let port = LOWEST + ((offset + i) % pool) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            out.push(port);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = loopback_ports(3).unwrap();
        let b = loopback_ports(3).unwrap();
        let all: std::collections::BTreeSet<u16> = a.iter().chain(&b).copied().collect();
        assert_eq!(all.len(), 6, "{a:?} {b:?}");
        let top = ephemeral_start();
        assert!(
            all.iter()
                .all(|p| *p >= LOWEST && *p < top.max(LOWEST + 1_000))
        );
        assert!(!all.contains(&held.local_addr().unwrap().port()));
        for p in all {
            std::net::TcpListener::bind(("127.0.0.1", p)).expect("free");
        }
    }
}
