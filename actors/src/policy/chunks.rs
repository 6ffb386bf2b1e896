//! Policy versions on the wire: a version's identity ([`PolicyId`]) and its weights in chunks.
//!
//! A version's weights (`Policy::to_bytes`) go as one chunk to an actor on the same node (the
//! `Arc` is shared, nothing is copied) and as several chunks, each under the cluster's frame
//! limit, to an actor on another node: ractor_cluster refuses frames above its limit and has no
//! chunking of its own.
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::swap::target::Serving;

/// Which policy a role runs: its generation (bumped by each hot-swap of the role; 0 until the
/// first) and its version (bumped by each learner update; 0 = warm start). Every trajectory
/// records the id of the policy that sampled it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct PolicyId {
    /// The role's generation.
    pub generation: u64,
    /// The version within it.
    pub version: u64,
}

/// One piece of one version's weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyChunk {
    /// The policy.
    pub id: PolicyId,
    /// How the role is served with it (a swap to the expert still ships the weights it keeps).
    pub serving: Serving,
    /// Part of a swap being prepared: the replica loads and health-checks it but keeps serving
    /// its current policy until told to activate it.
    pub staged: bool,
    /// This chunk's index.
    pub index: u32,
    /// Chunks in the version.
    pub total: u32,
    /// Its bytes.
    pub bytes: Arc<Vec<u8>>,
}

/// Splits a version's weights into chunks of at most `max_chunk` bytes (one chunk that shares
/// the buffer when it fits).
pub fn split(id: PolicyId, bytes: &Arc<Vec<u8>>, max_chunk: usize) -> Vec<PolicyChunk> {
    let max_chunk = max_chunk.max(1);
    if bytes.len() <= max_chunk {
        return vec![PolicyChunk {
            id,
            serving: Serving::Learner,
            staged: false,
            index: 0,
            total: 1,
            bytes: bytes.clone(),
        }];
    }
    let pieces: Vec<&[u8]> = bytes.chunks(max_chunk).collect();
    let total = pieces.len() as u32;
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, p)| PolicyChunk {
            id,
            serving: Serving::Learner,
            staged: false,
            index: i as u32,
            total,
            bytes: Arc::new(p.to_vec()),
        })
        .collect()
}

impl PolicyChunk {
    /// The chunk, to be served as `serving` (and staged or not).
    pub fn serving(self, serving: Serving, staged: bool) -> Self {
        Self {
            serving,
            staged,
            ..self
        }
    }
}

/// Chunk `index` of a version (for a pull by an actor that starts).
pub fn chunk(
    id: PolicyId,
    bytes: &Arc<Vec<u8>>,
    max_chunk: usize,
    index: u32,
) -> Option<PolicyChunk> {
    let max_chunk = max_chunk.max(1);
    let total = bytes.len().div_ceil(max_chunk).max(1) as u32;
    if index >= total {
        return None;
    }
    if total == 1 {
        return split(id, bytes, max_chunk).pop();
    }
    let start = index as usize * max_chunk;
    let end = (start + max_chunk).min(bytes.len());
    Some(PolicyChunk {
        id,
        serving: Serving::Learner,
        staged: false,
        index,
        total,
        bytes: Arc::new(bytes[start..end].to_vec()),
    })
}

/// A policy, how it is served, and its complete weights (`Policy::to_bytes`), shared without
/// copying.
pub type Assembled = (PolicyId, Serving, Arc<Vec<u8>>);

/// Reassembles chunks into a version's weights. A chunk of another version starts over, so
/// an interrupted transfer followed by a newer one never mixes the two.
#[derive(Debug, Default)]
pub struct Assembler {
    id: Option<PolicyId>,
    parts: Vec<Option<Arc<Vec<u8>>>>,
}

impl Assembler {
    /// Adds a chunk; returns the version and its whole bytes once every chunk is in.
    pub fn push(&mut self, c: PolicyChunk) -> Result<Option<Assembled>, String> {
        if c.total == 0 || c.index >= c.total {
            return Err(format!("chunk {} of {} is out of range", c.index, c.total));
        }
        if self.id != Some(c.id) || self.parts.len() != c.total as usize {
            self.id = Some(c.id);
            self.parts = vec![None; c.total as usize];
        }
        self.parts[c.index as usize] = Some(c.bytes);
        if self.parts.iter().any(Option::is_none) {
            return Ok(None);
        }
        let parts = std::mem::take(&mut self.parts);
        self.id = None;
        let whole = if parts.len() == 1 {
            parts.into_iter().flatten().next().unwrap_or_default()
        } else {
            Arc::new(
                parts
                    .into_iter()
                    .flatten()
                    .flat_map(|p| (*p).clone())
                    .collect(),
            )
        };
        Ok(Some((c.id, c.serving, whole)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(version: u64) -> PolicyId {
        PolicyId {
            generation: 0,
            version,
        }
    }

    #[test]
    fn split_and_reassemble_in_any_order() {
        let bytes = Arc::new((0..1000u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let chunks = split(v(7), &bytes, 300);
        assert_eq!(chunks.len(), 4);
        assert!(chunks.iter().all(|c| c.bytes.len() <= 300));
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(chunk(v(7), &bytes, 300, i as u32).as_ref(), Some(c));
        }
        assert!(chunk(v(7), &bytes, 300, 4).is_none());
        let mut a = Assembler::default();
        for i in [2, 0, 3] {
            assert_eq!(a.push(chunks[i].clone()).unwrap(), None);
        }
        let (id, _, whole) = a.push(chunks[1].clone()).unwrap().unwrap();
        assert_eq!((id, &*whole), (v(7), &*bytes));
    }

    #[test]
    fn one_chunk_shares_the_buffer_and_a_new_version_restarts() {
        let bytes = Arc::new(vec![1u8; 10]);
        let c = split(v(1), &bytes, 100);
        assert!(Arc::ptr_eq(&c[0].bytes, &bytes));
        let mut a = Assembler::default();
        let big = split(v(2), &Arc::new(vec![2u8; 10]), 4);
        a.push(big[0].clone()).unwrap();
        // A newer version arrives whole: the half-received version 2 is dropped.
        let (id, _, w) = a
            .push(split(v(3), &bytes, 100)[0].clone())
            .unwrap()
            .unwrap();
        assert_eq!((id, w.len()), (v(3), 10));
        assert!(
            a.push(PolicyChunk {
                id: v(4),
                serving: Serving::Learner,
                staged: false,
                index: 2,
                total: 2,
                bytes
            })
            .is_err()
        );
    }
}
