//! The wire format of every payload that may cross a node, and what crossed.
//!
//! `ractor_cluster` serialises a message field by field through `BytesConvertable`. Our payloads
//! are serde types, so [`Wire<T>`] carries any of them with the project's one versioned codec
//! (`mgrpo_store::codec`: a format byte, then bincode 2). Primitive fields (`u64`, `u32`, `bool`)
//! use ractor's own fixed-width encodings.
//!
//! A payload that does not decode (another format version, garbage) is logged and dropped: the
//! derive catches the decode failure and the node session drops the message (or, for a reply,
//! the caller's request ends as failed and is retried). It never takes the node down.
//!
//! Every encode and decode is counted per payload type ([`counters`]), so `mgrpo status` can show
//! what the node sent and received. Only messages to another node are encoded: a message to a
//! local actor is moved, never serialised.
use std::collections::BTreeMap;
use std::sync::Mutex;

use ractor::BytesConvertable;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A serde payload in a cluster message (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Wire<T>(pub T);

/// The reply of a request between roles: the callee's result, its error as text.
pub type Reply<R> = Wire<Result<R, String>>;

/// Bytes and messages of one payload type, both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadCount {
    /// Payloads encoded (sent to another node).
    pub sent: u64,
    /// Their bytes.
    pub sent_bytes: u64,
    /// Payloads decoded (received from another node).
    pub received: u64,
    /// Their bytes.
    pub received_bytes: u64,
    /// Payloads that failed to decode and were dropped.
    pub rejected: u64,
}

static COUNTS: Mutex<BTreeMap<&'static str, PayloadCount>> = Mutex::new(BTreeMap::new());

fn count(kind: &'static str, f: impl FnOnce(&mut PayloadCount)) {
    if let Ok(mut m) = COUNTS.lock() {
        f(m.entry(kind).or_default());
    }
}

/// The per-payload-type counts of this process so far, keyed by a short type name.
pub fn counters() -> BTreeMap<String, PayloadCount> {
    COUNTS
        .lock()
        .map(|m| m.iter().map(|(k, v)| (short_name(k), *v)).collect())
        .unwrap_or_default()
}

/// `core::result::Result<alloc::vec::Vec<mgrpo_actors::planner::GroupResult>, …>` →
/// `Result<Vec<GroupResult>, String>`.
fn short_name(full: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    for ch in full.chars() {
        if ch.is_alphanumeric() || ch == '_' || ch == ':' {
            word.push(ch);
        } else {
            out.push_str(word.rsplit("::").next().unwrap_or(""));
            word.clear();
            out.push(ch);
        }
    }
    out.push_str(word.rsplit("::").next().unwrap_or(""));
    out
}

impl<T: Serialize + DeserializeOwned> BytesConvertable for Wire<T> {
    fn into_bytes(self) -> Vec<u8> {
        let kind = std::any::type_name::<T>();
        // Encoding our own serde types into a Vec cannot fail (no maps with non-string keys,
        // no custom serialisers that error); a failure would be a bug, and the derive turns
        // the panic into a dropped message rather than a dead node.
        let bytes = mgrpo_store::codec::encode(&self.0)
            .unwrap_or_else(|e| panic!("encoding {kind} for the wire: {e}"));
        count(kind, |c| {
            c.sent += 1;
            c.sent_bytes += bytes.len() as u64;
        });
        bytes
    }

    fn from_bytes(bytes: Vec<u8>) -> Self {
        let kind = std::any::type_name::<T>();
        match mgrpo_store::codec::decode(&bytes) {
            Ok(v) => {
                count(kind, |c| {
                    c.received += 1;
                    c.received_bytes += bytes.len() as u64;
                });
                Wire(v)
            }
            Err(e) => {
                count(kind, |c| c.rejected += 1);
                tracing::error!(payload = %short_name(kind), bytes = bytes.len(), error = %e,
                    "dropping a payload that does not decode");
                // Caught by the derive's `catch_unwind`: the message is dropped, the node lives.
                std::panic::panic_any(WireDecodeError)
            }
        }
    }
}

/// The panic payload of a dropped undecodable payload (so the panic hook can stay quiet).
#[derive(Debug, Clone, Copy)]
pub struct WireDecodeError;

/// Installs a panic hook that stays silent for [`WireDecodeError`] (already logged) and defers
/// to the previous hook for every other panic.
pub fn quiet_decode_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<WireDecodeError>().is_none() {
            previous(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_counts_and_drops_garbage() {
        let v: Result<Vec<(u64, String)>, String> = Ok(vec![(3, "x".into())]);
        let bytes = Wire(v.clone()).into_bytes();
        assert_eq!(bytes[0], mgrpo_store::codec::FORMAT_VERSION);
        assert_eq!(
            Wire::<Result<Vec<(u64, String)>, String>>::from_bytes(bytes).0,
            v
        );
        let c = counters();
        let k = c
            .get("Result<Vec<(u64, String)>, String>")
            .expect("counted under its short name");
        assert!(k.sent >= 1 && k.received >= 1 && k.sent_bytes > 0);

        quiet_decode_panics();
        let r = std::panic::catch_unwind(|| Wire::<Vec<u64>>::from_bytes(vec![99, 1, 2]));
        assert!(r.is_err(), "garbage is refused");
        assert!(counters()["Vec<u64>"].rejected >= 1);
    }

    #[test]
    fn short_names() {
        assert_eq!(
            short_name("core::option::Option<alloc::string::String>"),
            "Option<String>"
        );
    }
}
