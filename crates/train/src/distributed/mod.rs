//! Data parallelism over processes, on one machine or several (`distributed:` in a spec).
//! Each rank computes the loss and gradients of its share of every micro-batch ([`shard`]),
//! weighted by the share's size; before the optimiser step the ranks sum their gradients (and
//! the step's loss) in one exchange, so every rank applies the same update to the same
//! weights. [`Peer::agree`] checks that at the start of a run and after every stage: the same
//! spec, step and weights on every rank, or an error that lists each rank's.
//!
//! The exchange is ours, over std's TCP ([`engine`], [`wire`]), not burn-collective's: in
//! burn 0.21.0 its all-reduce across processes waits forever from the second call on, and its
//! `GradientsParams::all_reduce` pairs parameters by `ParamId`s that burn draws at random in
//! each process (crates/train/README.md, "Distributed runs", has the details). Ours pairs
//! them by their place in the model and sends all of a step's numbers as one message.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::spec::Spec;

mod engine;
pub use engine::Peer;

mod wire;

mod flat;
pub(crate) use flat::{flatten_grads, trained_ids, unflatten_grads, weights_checksum};

/// Rank `rank`'s share of a micro-batch of `len` examples: contiguous, the shares' sizes
/// differing by at most one, none empty when `len >= nodes`.
pub(crate) fn shard(len: usize, rank: usize, nodes: usize) -> Range<usize> {
    rank * len / nodes..(rank + 1) * len / nodes
}

/// A spec's identity, in three 21-bit pieces (exact in f32), leaving out `distributed`
/// (whose `rank` differs from rank to rank).
pub(crate) fn spec_fingerprint(spec: &Spec) -> [f32; 3] {
    let mut shared = spec.clone();
    shared.distributed = None;
    let text = serde_json::to_string(&shared).expect("a spec serialises");
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    [0, 21, 42].map(|shift| ((hash >> shift) & 0x1f_ffff) as f32)
}

/// Where rank `rank` keeps its run folders: rank 0 in `results`, the others in a hidden
/// folder of their own there, so that ranks on one machine never write the same files.
pub fn rank_results(results: &Path, rank: usize) -> PathBuf {
    if rank == 0 {
        results.to_path_buf()
    } else {
        results.join(format!(".rank-{rank}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order() {
        for len in [2, 3, 5, 7, 16] {
            for nodes in 2..=len {
                let shards: Vec<_> = (0..nodes).map(|r| shard(len, r, nodes)).collect();
                assert_eq!(shards[0].start, 0);
                assert_eq!(shards[nodes - 1].end, len);
                for pair in shards.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start);
                }
                assert!(shards.iter().all(|s| !s.is_empty()), "{len} {nodes}");
            }
        }
    }
}
