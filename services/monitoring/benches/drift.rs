//! Drift-detection benchmark: the false-alarm rate of `analysis::analyze` on
//! unshifted synthetic traffic and its power on known shifts, at the default
//! thresholds (`Thresholds::default()`).
//!
//! Every scenario is run R times (default 200) with fresh seeds, at the
//! default-sized windows (300 calls, 100 embedding samples) and at the
//! minimum ones (30 calls, 20 samples). The first numeric argument sets R:
//! `cargo bench -p llmops-monitoring --bench drift -- 20` is a smoke run.
//! Prints Markdown tables; rates come with 95% Wilson intervals.
//!
//! The synthetic process is fixed up front and is not tuned to the test:
//! prompt embeddings are 384-dim unit vectors from a mixture of 8 topics
//! (random unit centres, per-coordinate Gaussian noise, normalised: cosine to
//! the centre ≈ 0.6), prompt and output lengths are log-normal character
//! counts, prompt language is 90% eng / 5% fra / 5% deu, finish reason is
//! 10% `length`, 2% of calls are refusals and 1% are empty.

use llmops_monitoring::analysis::{Analysis, Thresholds, Window, analyze};
use std::f64::consts::PI;
use std::time::{Duration, Instant};

const DIM: usize = 384;
/// Reference topic mix (sums to 1).
const TOPIC_MIX: [f64; 8] = [0.25, 0.2, 0.15, 0.12, 0.1, 0.08, 0.06, 0.04];
/// Per-coordinate noise around a unit topic centre (noise norm ≈ 1.33).
const TOPIC_NOISE: f64 = 0.068;
/// (calls, embedding samples) per window: the defaults' scale and the minimum.
const SIZES: [(usize, usize); 2] = [(300, 100), (30, 20)];
const DESCRIPTORS: [&str; 6] = [
    "prompt_chars",
    "output_chars",
    "prompt_language",
    "finish_reason",
    "refusal",
    "empty",
];

/// xoshiro256** seeded through splitmix64.
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut splitmix = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            s: [splitmix(), splitmix(), splitmix(), splitmix()],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller; 1 − u keeps the log argument in (0, 1]).
    fn normal(&mut self) -> f64 {
        let (u, v) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * PI * v).cos()
    }

    fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Index drawn with the given weights (summing to 1).
    fn pick(&mut self, weights: &[f64]) -> usize {
        let mut u = self.uniform();
        for (i, &w) in weights.iter().enumerate() {
            if u < w {
                return i;
            }
            u -= w;
        }
        weights.len().saturating_sub(1)
    }

    /// Log-normal character count with the given median, at least 1.
    fn chars(&mut self, median: f64, sigma: f64) -> f64 {
        (median * (sigma * self.normal()).exp()).round().max(1.0)
    }
}

fn normalised(v: Vec<f64>) -> Vec<f64> {
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    v.into_iter().map(|x| x / norm).collect()
}

fn unit_vector(rng: &mut Rng) -> Vec<f64> {
    normalised((0..DIM).map(|_| rng.normal()).collect())
}

/// How the current window departs from the reference process.
struct Scenario {
    name: &'static str,
    /// Share of traffic taken by a topic absent from the reference.
    new_topic: f64,
    /// Factor on prompt lengths.
    length: f64,
    /// Share of `fra` prompts (taken from `eng`).
    fra: f64,
}

const REFERENCE: Scenario = Scenario {
    name: "unshifted",
    new_topic: 0.0,
    length: 1.0,
    fra: 0.05,
};

const SCENARIOS: [Scenario; 5] = [
    REFERENCE,
    Scenario {
        name: "topic shift: new topic at 30%",
        new_topic: 0.3,
        ..REFERENCE
    },
    Scenario {
        name: "length shift: prompts 1.5x longer",
        length: 1.5,
        ..REFERENCE
    },
    Scenario {
        name: "language shift: fra 5% → 25%",
        fra: 0.25,
        ..REFERENCE
    },
    Scenario {
        name: "small topic shift: new topic at 10%",
        new_topic: 0.1,
        ..REFERENCE
    },
];

/// One window of traffic; `centres` holds the reference topics followed by
/// the new one.
fn window(
    rng: &mut Rng,
    centres: &[Vec<f64>],
    s: &Scenario,
    calls: usize,
    samples: usize,
) -> Window {
    let mut mix: Vec<f64> = TOPIC_MIX.iter().map(|w| w * (1.0 - s.new_topic)).collect();
    mix.push(s.new_topic);
    let langs = [("eng", 0.95 - s.fra), ("fra", s.fra), ("deu", 0.05)];
    let lang_weights: Vec<f64> = langs.iter().map(|l| l.1).collect();
    let mut w = Window::default();
    for _ in 0..calls {
        let empty = rng.bernoulli(0.01);
        w.prompt_chars.push(rng.chars(350.0 * s.length, 0.9));
        w.output_chars
            .push(if empty { 0.0 } else { rng.chars(900.0, 0.7) });
        let lang = langs.get(rng.pick(&lang_weights)).map_or("und", |l| l.0);
        w.prompt_lang.push(lang.into());
        let finish = if rng.bernoulli(0.1) { "length" } else { "stop" };
        w.finish_reason.push(finish.into());
        w.refusal.push(rng.bernoulli(0.02));
        w.empty.push(empty);
    }
    for _ in 0..samples {
        let Some(centre) = centres.get(rng.pick(&mix)) else {
            continue;
        };
        let noisy = centre
            .iter()
            .map(|c| c + TOPIC_NOISE * rng.normal())
            .collect();
        w.embeddings
            .push(normalised(noisy).into_iter().map(|x| x as f32).collect());
    }
    w
}

#[derive(Default)]
struct Tally {
    runs: usize,
    drifted: usize,
    embedding: usize,
    any_descriptor: usize,
    per_descriptor: [usize; DESCRIPTORS.len()],
    elapsed: Duration,
}

impl Tally {
    fn add(&mut self, a: &Analysis, elapsed: Duration) {
        self.runs += 1;
        self.elapsed += elapsed;
        self.drifted += usize::from(a.drifted);
        self.embedding += usize::from(a.embedding.as_ref().is_some_and(|e| e.drifted));
        self.any_descriptor += usize::from(a.descriptors.iter().any(|d| d.drifted));
        for (count, name) in self.per_descriptor.iter_mut().zip(DESCRIPTORS) {
            *count += usize::from(a.descriptors.iter().any(|d| d.name == name && d.drifted));
        }
    }
}

fn run(scenario: usize, size: usize, runs: usize, t: &Thresholds) -> Tally {
    let (calls, samples) = SIZES.get(size).copied().unwrap_or((0, 0));
    let Some(s) = SCENARIOS.get(scenario) else {
        return Tally::default();
    };
    let mut tally = Tally::default();
    for r in 0..runs {
        let seed = 0x5EED_D81F_0000_0000 ^ ((scenario as u64) << 48) ^ ((size as u64) << 40);
        let mut rng = Rng::new(seed ^ r as u64);
        let centres: Vec<Vec<f64>> = (0..=TOPIC_MIX.len())
            .map(|_| unit_vector(&mut rng))
            .collect();
        let reference = window(&mut rng, &centres, &REFERENCE, calls, samples);
        let current = window(&mut rng, &centres, s, calls, samples);
        let test_seed = rng.next_u64();
        let start = Instant::now();
        let analysis = analyze(&reference, &current, t, test_seed);
        tally.add(&analysis, start.elapsed());
    }
    tally
}

fn pct(k: usize, n: usize) -> String {
    format!("{:.1}%", 100.0 * k as f64 / n.max(1) as f64)
}

/// Rate with its 95% Wilson score interval.
fn wilson(k: usize, n: usize) -> String {
    if n == 0 {
        return "n/a".into();
    }
    let (z, nf) = (1.959_964, n as f64);
    let p = k as f64 / nf;
    let denom = 1.0 + z * z / nf;
    let centre = (p + z * z / (2.0 * nf)) / denom;
    let half = z / denom * (p * (1.0 - p) / nf + z * z / (4.0 * nf * nf)).sqrt();
    let (lo, hi) = ((centre - half).max(0.0), (centre + half).min(1.0));
    format!("{} ({:.1}–{:.1}%)", pct(k, n), 100.0 * lo, 100.0 * hi)
}

fn main() {
    let runs = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(200);
    let t = Thresholds::default();
    let started = Instant::now();
    println!(
        "Thresholds::default(): a descriptor flags at PSI ≥ {} when its test (KS or chi-square) \
         rejects; each of the {} tests (MMD + {} descriptors) rejects at p < {}/{} = {:.4} \
         (Bonferroni); min_requests {}, min_samples {}, permutations {}; a report is `drifted` \
         when the MMD test or any descriptor flags.",
        t.psi,
        t.tests,
        DESCRIPTORS.len(),
        t.p_value,
        t.tests,
        t.per_test(),
        t.min_requests,
        t.min_samples,
        t.permutations,
    );
    println!(
        "Synthetic traffic: {DIM}-dim embeddings from {} topics; {runs} runs per row, \
         fresh seeds each run.\n",
        TOPIC_MIX.len()
    );
    let mut rows = Vec::new();
    for scenario in 0..SCENARIOS.len() {
        for size in 0..SIZES.len() {
            rows.push((scenario, size, run(scenario, size, runs, &t)));
        }
    }
    let label = |scenario: usize, size: usize| {
        let name = SCENARIOS.get(scenario).map_or("?", |s| s.name);
        let (calls, samples) = SIZES.get(size).copied().unwrap_or((0, 0));
        format!("| {name} | {calls} | {samples} |")
    };
    println!(
        "| scenario | calls/window | samples/window | runs | drifted | embedding test | any descriptor |"
    );
    println!("|---|---:|---:|---:|---|---:|---:|");
    for (scenario, size, t) in &rows {
        println!(
            "{} {} | {} | {} | {} |",
            label(*scenario, *size),
            t.runs,
            wilson(t.drifted, t.runs),
            pct(t.embedding, t.runs),
            pct(t.any_descriptor, t.runs)
        );
    }
    println!("\nShare of runs in which each descriptor flags:\n");
    println!(
        "| scenario | calls/window | samples/window | {} |",
        DESCRIPTORS.join(" | ")
    );
    println!("|---|---:|---:|{}", "---:|".repeat(DESCRIPTORS.len()));
    for (scenario, size, t) in &rows {
        let cells: Vec<String> = t.per_descriptor.iter().map(|&k| pct(k, t.runs)).collect();
        println!("{} {} |", label(*scenario, *size), cells.join(" | "));
    }
    println!("\n| calls/window | samples/window | analyses | mean ms per analysis |");
    println!("|---:|---:|---:|---:|");
    for (size, (calls, samples)) in SIZES.iter().enumerate() {
        let (n, total) = rows
            .iter()
            .filter(|r| r.1 == size)
            .fold((0, Duration::ZERO), |(n, d), r| {
                (n + r.2.runs, d + r.2.elapsed)
            });
        let ms = total.as_secs_f64() * 1e3 / n.max(1) as f64;
        println!("| {calls} | {samples} | {n} | {ms:.2} |");
    }
    println!(
        "\nWhole run (synthesis included): {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
