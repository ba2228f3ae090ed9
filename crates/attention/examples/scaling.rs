//! Attention scaling benchmark: softmax vs every linear variant, causal and non-causal, forward
//! and forward+backward, over sequence lengths (B = 1, H = 12, d = 64 by default).
//!
//! ```text
//! cargo run --release -p hedgehog-attention --example scaling -- [options]
//!   --backend ndarray|flex|cuda   (cuda needs `--features cuda`)      default ndarray
//!   --lengths 256,1024,4096,16384                                      default as shown
//!   --variants softmax,hedgehog_split,...   (see --list)               default all
//!   --passes forward,forward_backward                                  default both
//!   --repeats N        timed runs per case, the median is reported    default 3
//!   --max-gib G        skip cases whose estimated memory exceeds G    default 6
//!   --out FILE.csv     also write the rows as CSV
//!   --serve            read cases from stdin, one `variant causal pass T repeats` a line,
//!                      and answer each with one JSON line (`tools/bench_compare.py` drives
//!                      this so that ours and PyTorch alternate case by case); its
//!                      `peak_mib` is `null` where the device memory cannot be read
//! ```
//!
//! Causal linear attention runs the chunked form (chunk 64), non-causal the parallel form;
//! softmax runs `softmax::output` (on the CPU backend the fused kernel, which never forms the
//! `T × T` weights; elsewhere the composed scores-softmax-matmul). `softmax_flash` is burn's own
//! attention op (`burn::tensor::module::attention`): on CUDA its flash kernel for the forward
//! pass; under autodiff burn falls back to the composed form, so its forward+backward is that.
//! Peak memory on CPU backends is the host allocator's high-water mark during a case; on CUDA
//! it is the GPU's memory in use right after the case (cubecl's pool keeps what the case
//! reserved until the `memory_cleanup` that follows it) above what was in use before the first
//! case, as `nvidia-smi` reports it for the whole GPU (so nothing else should run there), `-`
//! where `nvidia-smi` does not answer.
//! Timings are wall-clock medians; compare ratios from one run, never across machines.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Distribution, Tensor};
use hedgehog_attention::{AttentionConfig, FeatureMapConfig, HedgehogActivation, softmax};

/// Counts live heap bytes and their high-water mark, for the peak-memory column, over mimalloc
/// (the `hedgehog` binary's allocator: it reuses freed memory instead of returning each large
/// buffer to the kernel and faulting it back in).
struct TrackingAllocator;

static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for TrackingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { INNER.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { INNER.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: TrackingAllocator = TrackingAllocator;

const BATCH: usize = 1;
const HEADS: usize = 12;
const HEAD_DIM: usize = 64;
const CHUNK: usize = 64;
/// The variant that runs burn's attention op instead of ours.
const FLASH: &str = "softmax_flash";

#[derive(Clone)]
struct Variant {
    name: &'static str,
    /// `None` = softmax.
    map: Option<FeatureMapConfig>,
}

fn variants(max_len: usize) -> Vec<Variant> {
    use FeatureMapConfig::*;
    let hedgehog = |activation| Hedgehog {
        activation,
        feature_dim: HEAD_DIM,
        per_head: true,
    };
    vec![
        Variant {
            name: "softmax",
            map: None,
        },
        Variant {
            name: FLASH,
            map: None,
        },
        Variant {
            name: "elu",
            map: Some(Elu),
        },
        Variant {
            name: "relu",
            map: Some(Relu),
        },
        Variant {
            name: "performer",
            map: Some(Performer {
                num_features: HEAD_DIM,
                seed: 0,
                stabilize_queries: false,
            }),
        },
        Variant {
            name: "cosformer",
            map: Some(Cosformer { max_len }),
        },
        Variant {
            name: "exp_t1",
            map: Some(Exp { t: 1.0 }),
        },
        Variant {
            name: "taylor",
            map: Some(Taylor { compressed: false }),
        },
        Variant {
            name: "taylor_compressed",
            map: Some(Taylor { compressed: true }),
        },
        Variant {
            name: "hedgehog_exp",
            map: Some(hedgehog(HedgehogActivation::Exp)),
        },
        Variant {
            name: "hedgehog_split",
            map: Some(hedgehog(HedgehogActivation::SoftmaxSplit)),
        },
        Variant {
            name: "hedgehog_joint",
            map: Some(hedgehog(HedgehogActivation::SoftmaxJoint)),
        },
        Variant {
            name: "t2r",
            map: Some(T2r {
                feature_dim: HEAD_DIM,
                per_head: true,
            }),
        },
    ]
}

struct Options {
    backend: String,
    lengths: Vec<usize>,
    variants: Option<Vec<String>>,
    passes: Vec<Pass>,
    repeats: usize,
    max_gib: f64,
    out: Option<String>,
    serve: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pass {
    Forward,
    ForwardBackward,
}

impl Pass {
    fn name(self) -> &'static str {
        match self {
            Pass::Forward => "forward",
            Pass::ForwardBackward => "forward_backward",
        }
    }
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        backend: "ndarray".into(),
        lengths: vec![256, 1024, 4096, 16384],
        variants: None,
        passes: vec![Pass::Forward, Pass::ForwardBackward],
        repeats: 3,
        max_gib: 6.0,
        out: None,
        serve: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--serve" {
            options.serve = true;
            continue;
        }
        if flag == "--list" {
            for v in variants(1) {
                println!("{}", v.name);
            }
            std::process::exit(0);
        }
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let list = |v: &str| {
            v.split(',')
                .map(str::trim)
                .map(String::from)
                .collect::<Vec<_>>()
        };
        match flag.as_str() {
            "--backend" => options.backend = value,
            "--lengths" => {
                options.lengths = list(&value)
                    .iter()
                    .map(|l| {
                        l.parse()
                            .map_err(|_| format!("--lengths: `{l}` is not a length"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--variants" => options.variants = Some(list(&value)),
            "--passes" => {
                options.passes = list(&value)
                    .iter()
                    .map(|p| match p.as_str() {
                        "forward" => Ok(Pass::Forward),
                        "forward_backward" => Ok(Pass::ForwardBackward),
                        other => Err(format!(
                            "--passes: `{other}` is not forward or forward_backward"
                        )),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--repeats" => {
                options.repeats = value.parse().map_err(|_| "--repeats needs a number")?
            }
            "--max-gib" => {
                options.max_gib = value.parse().map_err(|_| "--max-gib needs a number")?
            }
            "--out" => options.out = Some(value),
            other => {
                return Err(format!(
                    "unknown option {other}; see the header of examples/scaling.rs"
                ));
            }
        }
    }
    if let Some(names) = &options.variants {
        let known: Vec<&str> = variants(1).iter().map(|v| v.name).collect();
        if let Some(bad) = names.iter().find(|n| !known.contains(&n.as_str())) {
            return Err(format!(
                "unknown variant `{bad}`; known: {}",
                known.join(", ")
            ));
        }
    }
    Ok(options)
}

/// Rough bytes a case needs (f32), to skip what would not fit: softmax holds `T × T` scores,
/// weights and (backward) their gradients; linear attention holds features, the intra-chunk
/// blocks and the per-chunk states. `flash_kernel`: burn's attention op streams over the keys
/// (CUDA's flash kernel, forward only); elsewhere it forms the scores like softmax.
fn estimated_gib(variant: &Variant, t: usize, pass: Pass, flash_kernel: bool) -> f64 {
    let per_head = match &variant.map {
        None if variant.name == FLASH && flash_kernel && pass == Pass::Forward => {
            (t * HEAD_DIM) as f64 * 4.0
        }
        None => (t * t) as f64 * 3.0,
        Some(map) => {
            let f = map.feature_dim(HEAD_DIM) as f64;
            let t = t as f64;
            // Taylor also materialises the d × d outer product per token.
            let features = t * f * 4.0;
            features + t * CHUNK as f64 * 3.0 + (t / CHUNK as f64) * f * HEAD_DIM as f64 * 3.0
        }
    };
    let factor = if pass == Pass::ForwardBackward {
        2.5
    } else {
        1.0
    };
    per_head * (BATCH * HEADS) as f64 * 4.0 * factor / (1u64 << 30) as f64
}

struct Row {
    variant: &'static str,
    causal: bool,
    pass: Pass,
    seq_len: usize,
    ms: Option<f64>,
    peak_mib: Option<f64>,
    note: String,
}

/// Times of a case (ms, sorted) and its peak heap (MiB above what was live before it).
struct Timing {
    times: Vec<f64>,
    peak_mib: f64,
}

impl Timing {
    fn median(&self) -> f64 {
        self.times[self.times.len() / 2]
    }
}

/// burn's scaled dot-product attention op (scale `1/√d`, as ours).
fn burn_attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    causal: bool,
) -> Tensor<B, 4> {
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: causal,
    };
    burn::tensor::module::attention(q, k, v, None, None, options)
}

/// The memory in use on GPU 0 (MiB), every process's, as `nvidia-smi` reports it; `None`
/// without one.
fn device_mib() -> Option<f64> {
    let output = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=memory.used",
            "--format=csv,noheader,nounits",
            "-i",
            "0",
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// A case's peak memory: the host heap's on CPU backends, the device's elsewhere.
enum PeakMemory {
    Host,
    /// What the device held before the first case (`None`: `nvidia-smi` did not answer).
    Device(Option<f64>),
}

impl PeakMemory {
    fn new<B: Backend>(host: bool, device: &B::Device) -> Self {
        if host {
            return Self::Host;
        }
        B::memory_cleanup(device);
        Self::Device(device_mib())
    }

    /// Read right after the case, then the device's pool is emptied for the next one.
    fn peak_mib<B: Backend>(&self, timing: &Timing, device: &B::Device) -> Option<f64> {
        match self {
            Self::Host => Some(timing.peak_mib),
            Self::Device(baseline) => {
                let held = device_mib()
                    .zip(*baseline)
                    .map(|(now, before)| now - before);
                B::memory_cleanup(device);
                held
            }
        }
    }
}

fn run_case<B: AutodiffBackend>(
    variant: &Variant,
    causal: bool,
    pass: Pass,
    t: usize,
    repeats: usize,
    device: &B::Device,
) -> Timing {
    let linear = variant.map.clone().map(|map| {
        AttentionConfig::Linear {
            feature_map: map,
            tie_query_key: false,
            chunk_size: CHUNK,
            eps: 1e-6,
            window: 0,
            window_factor: hedgehog_attention::attention::DEFAULT_WINDOW_FACTOR,
        }
        .init_linear::<B>(HEAD_DIM, HEADS, device)
        .expect("valid benchmark config")
        .expect("linear")
    });
    let shape = [BATCH, HEADS, t, HEAD_DIM];
    let normal = Distribution::Normal(0.0, 0.5);
    let q = Tensor::<B, 4>::random(shape, normal, device);
    let k = Tensor::<B, 4>::random(shape, normal, device);
    let v = Tensor::<B, 4>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let once = || {
        match pass {
            Pass::Forward => {
                let (q, k, v) = (q.clone().inner(), k.clone().inner(), v.clone().inner());
                let y = match &linear {
                    Some(attention) => attention.valid().forward(q, k, v, causal, None).unwrap(),
                    None if variant.name == FLASH => burn_attention(q, k, v, causal),
                    None => softmax::output(q, k, v, causal, None, 0.0).unwrap(),
                };
                let _ = y.sum().into_scalar();
            }
            Pass::ForwardBackward => {
                let (q, k, v) = (
                    q.clone().require_grad(),
                    k.clone().require_grad(),
                    v.clone().require_grad(),
                );
                let y = match &linear {
                    Some(attention) => attention.forward(q.clone(), k, v, causal, None).unwrap(),
                    None if variant.name == FLASH => burn_attention(q.clone(), k, v, causal),
                    None => softmax::output(q.clone(), k, v, causal, None, 0.0).unwrap(),
                };
                let grads = y.sum().backward();
                let _ = q.grad(&grads).map(|g| g.sum().into_scalar());
            }
        }
        B::sync(device).expect("device sync");
    };
    once(); // warm-up: allocations, kernel compilation on GPU
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            once();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let peak_mib = (PEAK.load(Ordering::Relaxed).saturating_sub(base)) as f64 / (1u64 << 20) as f64;
    Timing { times, peak_mib }
}

/// `--serve`: one case per stdin line (`variant causal pass T repeats`), one JSON line back.
fn serve<B: AutodiffBackend>(device: &B::Device, track_memory: bool) -> Result<(), String> {
    use std::io::{BufRead, Write};
    let all = variants(1 << 20);
    let memory = PeakMemory::new::<B>(track_memory, device);
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let answer = match fields.as_slice() {
            [] => continue,
            [name, causal, pass, t, repeats] => {
                let parsed = (|| -> Result<_, String> {
                    let variant = all
                        .iter()
                        .find(|v| v.name == *name)
                        .ok_or(format!("unknown variant `{name}`"))?;
                    let causal: bool = causal.parse().map_err(|_| "causal: true or false")?;
                    let pass = match *pass {
                        "forward" => Pass::Forward,
                        "forward_backward" => Pass::ForwardBackward,
                        other => return Err(format!("unknown pass `{other}`")),
                    };
                    let t: usize = t.parse().map_err(|_| "T: a length")?;
                    let repeats: usize = repeats.parse().map_err(|_| "repeats: a count")?;
                    Ok((variant, causal, pass, t, repeats))
                })();
                match parsed {
                    Ok((variant, causal, pass, t, repeats)) => {
                        let timing = run_case::<B>(variant, causal, pass, t, repeats, device);
                        let times: Vec<String> =
                            timing.times.iter().map(|ms| format!("{ms:.3}")).collect();
                        let peak = memory.peak_mib::<B>(&timing, device);
                        format!(
                            "{{\"ms\": [{}], \"peak_mib\": {}}}",
                            times.join(", "),
                            peak.map_or("null".into(), |mib| format!("{mib:.1}"))
                        )
                    }
                    Err(message) => format!("{{\"error\": {message:?}}}"),
                }
            }
            _ => {
                format!("{{\"error\": \"expected `variant causal pass T repeats`, got {line:?}\"}}")
            }
        };
        writeln!(stdout, "{answer}").map_err(|e| format!("stdout: {e}"))?;
        stdout.flush().map_err(|e| format!("stdout: {e}"))?;
    }
    Ok(())
}

fn run_all<B: AutodiffBackend>(
    options: &Options,
    device: &B::Device,
    track_memory: bool,
) -> Vec<Row> {
    let max_len = options.lengths.iter().copied().max().unwrap_or(1);
    let selected: Vec<Variant> = variants(max_len)
        .into_iter()
        .filter(|v| {
            options
                .variants
                .as_ref()
                .is_none_or(|names| names.iter().any(|n| n == v.name))
        })
        .collect();
    let memory = PeakMemory::new::<B>(track_memory, device);
    let mut rows = Vec::new();
    for variant in &selected {
        for causal in [true, false] {
            for &pass in &options.passes {
                for &t in &options.lengths {
                    let estimate = estimated_gib(variant, t, pass, options.backend == "cuda");
                    let mut row = Row {
                        variant: variant.name,
                        causal,
                        pass,
                        seq_len: t,
                        ms: None,
                        peak_mib: None,
                        note: String::new(),
                    };
                    if estimate > options.max_gib {
                        row.note = format!(
                            "skipped: needs ~{estimate:.1} GiB > --max-gib {}",
                            options.max_gib
                        );
                    } else {
                        let timing =
                            run_case::<B>(variant, causal, pass, t, options.repeats, device);
                        row.ms = Some(timing.median());
                        row.peak_mib = memory.peak_mib::<B>(&timing, device);
                    }
                    eprintln!(
                        "{:>18} causal={:<5} {:<16} T={:<6} {}",
                        variant.name,
                        causal,
                        pass.name(),
                        t,
                        row.ms
                            .map_or(row.note.clone(), |ms| format!("{ms:>10.2} ms")),
                    );
                    rows.push(row);
                }
            }
        }
    }
    rows
}

/// Where the causal Hedgehog (softmax_split) time falls below softmax's: interpolated
/// log-log between the two measured lengths that bracket the sign change.
fn crossover(rows: &[Row], pass: Pass, causal: bool) -> String {
    let time = |name: &str, t: usize| {
        rows.iter()
            .find(|r| r.variant == name && r.pass == pass && r.causal == causal && r.seq_len == t)
            .and_then(|r| r.ms)
    };
    let mut lengths: Vec<usize> = rows.iter().map(|r| r.seq_len).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let ratios: Vec<(usize, Option<f64>, Option<f64>)> = lengths
        .iter()
        .map(|&t| (t, time("hedgehog_split", t), time("softmax", t)))
        .collect();
    let mut previous: Option<(usize, f64)> = None;
    for (t, hedgehog, softmax) in ratios {
        match (hedgehog, softmax) {
            (Some(h), Some(s)) => {
                let log_ratio = (h / s).ln();
                if log_ratio < 0.0 {
                    return match previous {
                        None => format!("≤ {t} (faster at every measured length)"),
                        Some((t0, r0)) => {
                            let (x0, x1) = ((t0 as f64).ln(), (t as f64).ln());
                            let x = x0 + (x1 - x0) * r0 / (r0 - log_ratio);
                            format!("≈ {:.0} (between {t0} and {t})", x.exp())
                        }
                    };
                }
                previous = Some((t, log_ratio));
            }
            (Some(_), None) => {
                return format!("≤ {t} (softmax skipped there: out of the memory budget)");
            }
            _ => {}
        }
    }
    "not reached at the measured lengths".into()
}

fn report(rows: &[Row], options: &Options, backend: &str) -> Result<(), String> {
    println!(
        "\n## Attention scaling on `{backend}` (B={BATCH}, H={HEADS}, d={HEAD_DIM}, chunk {CHUNK}; median of {} runs)\n",
        options.repeats
    );
    let lengths = &options.lengths;
    for &pass in &options.passes {
        for causal in [true, false] {
            println!(
                "### {} {}, ms (peak MiB)\n",
                if causal { "causal" } else { "non-causal" },
                pass.name()
            );
            println!(
                "| variant | {} |",
                lengths
                    .iter()
                    .map(|t| format!("T={t}"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            println!("|---|{}", "---:|".repeat(lengths.len()));
            let mut names: Vec<&str> = rows.iter().map(|r| r.variant).collect();
            names.dedup();
            for name in names {
                let cells: Vec<String> = lengths
                    .iter()
                    .map(|&t| {
                        rows.iter()
                            .find(|r| {
                                r.variant == name
                                    && r.pass == pass
                                    && r.causal == causal
                                    && r.seq_len == t
                            })
                            .map_or("".into(), |r| match (r.ms, r.peak_mib) {
                                (Some(ms), Some(mib)) => format!("{ms:.1} ({mib:.0})"),
                                (Some(ms), None) => format!("{ms:.1} (-)"),
                                _ => "skipped".into(),
                            })
                    })
                    .collect();
                println!("| {name} | {} |", cells.join(" | "));
            }
            println!(
                "\nHedgehog (softmax_split) beats softmax from T {}\n",
                crossover(rows, pass, causal)
            );
        }
    }
    if let Some(path) = &options.out {
        let mut csv = String::from("implementation,variant,causal,pass,seq_len,ms,peak_mib,note\n");
        for r in rows {
            csv.push_str(&format!(
                "hedgehog_{backend},{},{},{},{},{},{},{}\n",
                r.variant,
                r.causal,
                r.pass.name(),
                r.seq_len,
                r.ms.map_or(String::new(), |v| format!("{v:.3}")),
                r.peak_mib.map_or(String::new(), |v| format!("{v:.1}")),
                r.note
            ));
        }
        if let Some(parent) = std::path::Path::new(path).parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(path, csv).map_err(|e| format!("{path}: {e}"))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(2);
        }
    };
    if options.serve {
        let served = match options.backend.as_str() {
            "ndarray" => {
                serve::<burn::backend::Autodiff<burn::backend::NdArray>>(&Default::default(), true)
            }
            "flex" => {
                serve::<burn::backend::Autodiff<burn::backend::Flex>>(&Default::default(), true)
            }
            #[cfg(feature = "cuda")]
            "cuda" => serve::<burn::backend::Autodiff<burn::backend::Cuda>>(
                &burn::backend::cuda::CudaDevice::new(0),
                false,
            ),
            other => Err(format!("unknown backend `{other}`")),
        };
        if let Err(message) = served {
            eprintln!("error: {message}");
            std::process::exit(1);
        }
        return;
    }
    let rows = match options.backend.as_str() {
        "ndarray" => run_all::<burn::backend::Autodiff<burn::backend::NdArray>>(
            &options,
            &Default::default(),
            true,
        ),
        "flex" => run_all::<burn::backend::Autodiff<burn::backend::Flex>>(
            &options,
            &Default::default(),
            true,
        ),
        #[cfg(feature = "cuda")]
        "cuda" => run_all::<burn::backend::Autodiff<burn::backend::Cuda>>(
            &options,
            &burn::backend::cuda::CudaDevice::new(0),
            false,
        ),
        other => {
            eprintln!(
                "error: unknown backend `{other}` (ndarray, flex, or cuda with `--features cuda`)"
            );
            std::process::exit(2);
        }
    };
    if let Err(message) = report(&rows, &options, &options.backend) {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}
