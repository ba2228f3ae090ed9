//! What a run will cost, said before it starts: steps and tokens of every training stage, the
//! model's size and its training state, and a lower bound on the time from the device's
//! measured matrix-multiply rate. A fresh run whose lower bound passes a day waits for
//! `--yes`: a spec sized for a GPU that lands on a CPU says so instead of starting a run of
//! weeks.

use std::time::{Duration, Instant};

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

use crate::RunError;
use crate::spec::Spec;
use crate::stage::stage_steps;
use crate::task::TaskInfo;

/// Lower bounds past this ask for confirmation.
const CONFIRM_ABOVE: Duration = Duration::from_secs(24 * 3600);

/// The cost of a run's training stages.
pub(super) struct Cost {
    pub lines: Vec<String>,
    /// Training FLOPs at the measured rate: no run is faster.
    pub at_least: Duration,
}

/// Training a token costs about 6 FLOPs per parameter (forward 2, backward 4); attention,
/// norms, the optimiser and data loading come on top, which is why the estimate is a floor.
const FLOPS_PER_PARAMETER_TOKEN: f64 = 6.0;

pub(super) fn estimate<B: AutodiffBackend>(
    spec: &Spec,
    info: &TaskInfo,
    parameters: usize,
    device: &B::Device,
) -> Cost {
    let mut lines = Vec::new();
    let mut tokens = 0.0;
    for (index, stage) in spec.stages.iter().enumerate() {
        if !stage.kind.trains() {
            continue;
        }
        let steps = stage_steps(stage, info.train_examples);
        let per_step = stage.batch_size * stage.grad_accumulation * info.tokens_per_example;
        let stage_tokens = steps as f64 * per_step as f64;
        tokens += stage_tokens;
        lines.push(format!(
            "  stage {index} ({}): {steps} steps × {per_step} tokens = {} tokens",
            stage.label(),
            count(stage_tokens)
        ));
    }
    let rate = matmul_flops_per_second::<B::InnerBackend>(device);
    let flops = FLOPS_PER_PARAMETER_TOKEN * parameters as f64 * tokens;
    let at_least = Duration::from_secs_f64(flops / rate);
    let weights_mib = parameters as f64 * 4.0 / (1u64 << 20) as f64;
    lines.push(format!(
        "  model: {} parameters, {weights_mib:.0} MiB of f32 weights; training all of them with \
         Adam holds 4× that (weights, gradients, two moments) before activations",
        count(parameters as f64)
    ));
    lines.push(format!(
        "  time: at least {} ({} tokens × 6 FLOPs per parameter at this device's measured \
         {:.1} GFLOP/s matrix product; attention, data and evaluation come on top)",
        duration(at_least),
        count(tokens),
        rate / 1e9
    ));
    Cost { lines, at_least }
}

/// A fresh run past a day of compute waits for the user's `--yes`.
pub(super) fn check(cost: &Cost, spec: &Spec, confirmed: bool) -> Result<(), RunError> {
    if confirmed || cost.at_least <= CONFIRM_ABOVE {
        return Ok(());
    }
    let smaller = match &spec.cpu_scale {
        Some(path) => format!(
            " or run the experiment's CPU-scale spec: `hedgehog run {}`",
            path.display()
        ),
        None => " or shorten it with `--set stages.N.steps=...`".into(),
    };
    Err(RunError::Config(format!(
        "{} would take at least {} on this device (the estimate above); start it anyway with \
         `--yes`{smaller}",
        spec.name,
        duration(cost.at_least)
    )))
}

/// FLOP/s of a 512×512 f32 matrix product on `device`, the best of a few repetitions (inputs
/// built on the host: drawing them would move the backend's seeded random stream).
fn matmul_flops_per_second<B: Backend>(device: &B::Device) -> f64 {
    const N: usize = 512;
    let values: Vec<f32> = (0..N * N).map(|i| (i % 17) as f32 / 17.0).collect();
    let a = Tensor::<B, 2>::from_data(TensorData::new(values, [N, N]), device);
    let product = || {
        let start = Instant::now();
        let _ = a.clone().matmul(a.clone()).into_data();
        start.elapsed()
    };
    product();
    let mut best = product();
    let began = Instant::now();
    while began.elapsed() < Duration::from_millis(200) {
        best = best.min(product());
    }
    2.0 * (N * N * N) as f64 / best.as_secs_f64().max(1e-9)
}

fn count(value: f64) -> String {
    match value {
        v if v >= 1e9 => format!("{:.2}G", v / 1e9),
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

fn duration(d: Duration) -> String {
    let seconds = d.as_secs_f64();
    match seconds {
        s if s >= 2.0 * 86400.0 => format!("{:.1} days", s / 86400.0),
        s if s >= 3600.0 => format!("{:.1} h", s / 3600.0),
        s if s >= 60.0 => format!("{:.1} min", s / 60.0),
        s => format!("{s:.1} s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_counts_read_naturally() {
        assert_eq!(duration(Duration::from_secs(30)), "30.0 s");
        assert_eq!(duration(Duration::from_secs(5400)), "1.5 h");
        assert_eq!(duration(Duration::from_secs(3 * 86400)), "3.0 days");
        assert_eq!(count(64_000.0 * 50_000.0), "3.20G");
        assert_eq!(count(1500.0), "1.5k");
    }
}
