//! The `distributed:` section: data parallelism over processes (one machine or several)
//! over TCP (`crate::distributed`).

use serde::{Deserialize, Serialize};

use super::StageSpec;

fn default_address() -> String {
    "127.0.0.1:4321".into()
}

fn default_timeout() -> f64 {
    300.0
}

/// One rank of a run split over `nodes` processes: each trains on its share of every
/// micro-batch, gradients are summed across the ranks before every optimiser step, so every
/// rank holds the same weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributedSpec {
    /// Processes in the run (at least 2).
    pub nodes: usize,
    /// This process, `0..nodes`. Rank 0 writes the run folder; rank N keeps its own copy
    /// under `<results>/.rank-N/` (its checkpoints, for resume).
    pub rank: usize,
    /// `host:port` where rank 0 listens and the other ranks connect (`MASTER_ADDR:MASTER_PORT`).
    /// Rank 0 listens on exactly that address: 127.0.0.1 keeps a run on one machine, rank 0's
    /// own network address (or 0.0.0.0) opens it to others.
    #[serde(default = "default_address")]
    pub address: String,
    /// Seconds a rank waits for the others (to connect, or at a gradient sum) before it stops
    /// with an error naming them.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
}

impl DistributedSpec {
    pub(super) fn validate(&self, stages: &[StageSpec], devices: usize) -> Result<(), String> {
        if self.nodes < 2 {
            return Err(format!(
                "distributed.nodes {}: a distributed run needs at least 2 processes; remove \
                 `distributed:` to run in one",
                self.nodes
            ));
        }
        if self.rank >= self.nodes {
            return Err(format!(
                "distributed.rank {} is not below distributed.nodes {}: ranks are 0..{}",
                self.rank,
                self.nodes,
                self.nodes - 1
            ));
        }
        if port_of(&self.address).is_none() {
            return Err(format!(
                "distributed.address `{}`: expected host:port, e.g. 127.0.0.1:4321",
                self.address
            ));
        }
        if !(self.timeout_s.is_finite() && self.timeout_s > 0.0) {
            return Err(format!(
                "distributed.timeout_s {}: must be a positive number of seconds",
                self.timeout_s
            ));
        }
        if devices > 1 {
            return Err(
                "distributed: each rank runs on one device; give one `device:` per \
                        process (a device list splits batches inside one process)"
                    .into(),
            );
        }
        for (i, stage) in stages.iter().enumerate() {
            if stage.kind.trains() && stage.batch_size < self.nodes {
                return Err(format!(
                    "stages.{i}: batch_size {} is smaller than distributed.nodes {}: every \
                     rank needs at least one example of each micro-batch",
                    stage.batch_size, self.nodes
                ));
            }
        }
        Ok(())
    }
}

fn port_of(address: &str) -> Option<u16> {
    let (host, port) = address.rsplit_once(':')?;
    if host.is_empty() || host.contains('/') {
        return None;
    }
    port.parse().ok().filter(|&p| p > 0)
}
