//! Time of one forward pass by sequence length (batch 1, this process).
//!
//! `LLMOPS_CACHE_EMBEDDING_DIR=<all-MiniLM-L6-v2 dir> cargo bench -p llmops-encoder --bench encode [-- runs [tokens …]]`
//!
//! Prints p50 and p99 in milliseconds per length (tokens including
//! `[CLS]` and `[SEP]`), with f32 and bf16 weights, on one thread and
//! split over two, side by side, and the cosine of the bf16 sentence vector
//! with the f32 one; `benches/cache.sh` times whole prompts inside the
//! cache's lookups and checks real prompts against the served model.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::var("LLMOPS_CACHE_EMBEDDING_DIR")
        .map_err(|_| "set LLMOPS_CACHE_EMBEDDING_DIR to the model's directory")?;
    let dir = std::path::Path::new(&dir);
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let config = llmops_encoder::Config::from_json(&std::fs::read(dir.join("config.json"))?)?;
    let weights = std::fs::read(dir.join("model.safetensors"))?;
    use llmops_encoder::{Bert, Precision};
    let variants = [
        (
            "f32, 1 thread",
            Bert::load(config, &weights, Precision::F32)?.with_parallel(None),
        ),
        (
            "f32, 2 threads",
            Bert::load(config, &weights, Precision::F32)?.with_parallel(Some(1)),
        ),
        (
            "bf16, 1 thread",
            Bert::load(config, &weights, Precision::Bf16)?.with_parallel(None),
        ),
        (
            "bf16, 2 threads",
            Bert::load(config, &weights, Precision::Bf16)?.with_parallel(Some(1)),
        ),
    ];
    let names: Vec<&str> = variants.iter().map(|v| v.0).collect();
    println!(
        "p50 / p99 ms of one pass by tokens ({runs} runs each); cos: mean-pooled bf16 against f32"
    );
    println!(
        "tokens  {}  cos",
        names
            .iter()
            .map(|n| format!("{n:>17}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut lengths: Vec<usize> = std::env::args()
        .skip(2)
        .filter_map(|a| a.parse().ok())
        .collect();
    if lengths.is_empty() {
        lengths = vec![8, 16, 24, 32, 64, 128, 256];
    }
    let pooled = |hidden: Vec<f32>| {
        let h = config.hidden;
        let mut p = vec![0.0f64; h];
        for row in hidden.chunks_exact(h) {
            p.iter_mut().zip(row).for_each(|(a, v)| *a += f64::from(*v));
        }
        p
    };
    for n in lengths {
        let ids: Vec<u32> = (0..n as u32).map(|t| 1000 + t * 37 % 20000).collect();
        let mut cells = Vec::new();
        for (_, bert) in &variants {
            bert.forward(&ids)?;
            let mut times: Vec<f64> = (0..runs)
                .map(|_| {
                    let t0 = Instant::now();
                    let _ = std::hint::black_box(bert.forward(&ids));
                    t0.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            times.sort_by(f64::total_cmp);
            let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
            cells.push(format!("{:>8.2} / {:>6.2}", at(0.5), at(0.99)));
        }
        let (a, b) = (
            pooled(variants[0].1.forward(&ids)?),
            pooled(variants[2].1.forward(&ids)?),
        );
        let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        println!(
            "{n:>6}  {}  {:.7}",
            cells.join(" "),
            dot / (norm(&a) * norm(&b))
        );
    }
    Ok(())
}
