//! A drift analysis of two windows of one tenant's model: prompt
//! embeddings by an MMD permutation test, text descriptors by PSI (with a
//! KS test and the Wasserstein distance for numeric ones). Pure: the
//! reports module loads the windows, the benchmark synthesises them.

use crate::drift;
use serde::Serialize;
use std::collections::BTreeMap;

/// What a window holds: one entry per answered call (descriptors) and the
/// sampled prompt embeddings.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub prompt_chars: Vec<f64>,
    pub output_chars: Vec<f64>,
    /// `und` when not detected.
    pub prompt_lang: Vec<String>,
    pub finish_reason: Vec<String>,
    pub refusal: Vec<bool>,
    pub empty: Vec<bool>,
    pub embeddings: Vec<Vec<f32>>,
}

impl Window {
    pub fn requests(&self) -> usize {
        self.prompt_chars.len()
    }
}

/// When a shift counts as drift.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Thresholds {
    /// A descriptor drifts at this PSI or more (0.1: the usual "moderate
    /// shift" boundary).
    pub psi: f64,
    /// The family-wise level: each of the report's tests (MMD on
    /// embeddings, KS or chi-square per descriptor) rejects below
    /// `p_value / tests` (Bonferroni), so a report of unshifted traffic
    /// says `drifted` at most this often.
    pub p_value: f64,
    /// How many tests share `p_value` (the embedding test and six
    /// descriptors).
    pub tests: usize,
    /// Fewest calls in each window for descriptors to be compared.
    pub min_requests: usize,
    /// Fewest embedding samples in each window for the MMD test.
    pub min_samples: usize,
    /// Permutations of the MMD test.
    pub permutations: usize,
}

impl Thresholds {
    /// The level each single test rejects at.
    pub fn per_test(&self) -> f64 {
        self.p_value / self.tests.max(1) as f64
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            psi: drift::DEFAULT_PSI_THRESHOLD,
            p_value: 0.05,
            tests: 7,
            min_requests: 30,
            min_samples: 20,
            permutations: 200,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EmbeddingDrift {
    /// `mmd_permutation` (Gaussian kernel, median-heuristic bandwidth).
    pub method: &'static str,
    /// The unbiased MMD² estimate.
    pub statistic: f64,
    pub p_value: f64,
    pub bandwidth: f64,
    pub permutations: usize,
    pub reference_samples: usize,
    pub current_samples: usize,
    pub drifted: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DescriptorDrift {
    /// `prompt_chars`, `output_chars`, `prompt_language`, `finish_reason`,
    /// `refusal`, `empty`.
    pub name: &'static str,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    pub psi: f64,
    /// Numeric descriptors: two-sample KS statistic and asymptotic p-value.
    pub ks_statistic: Option<f64>,
    pub ks_p_value: Option<f64>,
    /// Categorical descriptors: Pearson's chi-square test of the two
    /// windows' counts.
    pub chi2_statistic: Option<f64>,
    pub chi2_p_value: Option<f64>,
    /// Numeric descriptors: 1-D Wasserstein distance (in the descriptor's unit).
    pub wasserstein: Option<f64>,
    /// Mean (numeric) or share of each category, in each window.
    pub reference: serde_json::Value,
    pub current: serde_json::Value,
    /// PSI at the threshold and the test (KS or chi-square) rejects at
    /// the per-test level.
    pub drifted: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Analysis {
    pub drifted: bool,
    pub reference_requests: usize,
    pub current_requests: usize,
    /// `null` when either window has too few embedding samples.
    pub embedding: Option<EmbeddingDrift>,
    /// Most shifted first (by PSI); empty when a window has too few calls.
    pub descriptors: Vec<DescriptorDrift>,
    /// Why a part was not computed.
    pub notes: Vec<String>,
    pub thresholds: Thresholds,
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn shares(v: &[String]) -> BTreeMap<String, f64> {
    let mut m: BTreeMap<String, f64> = BTreeMap::new();
    for x in v {
        *m.entry(x.clone()).or_default() += 1.0;
    }
    let n = v.len().max(1) as f64;
    m.values_mut().for_each(|c| *c /= n);
    m
}

/// PSI over categories (each share floored at [`drift::PSI_EPSILON`]).
pub fn categorical_psi(reference: &[String], current: &[String]) -> f64 {
    let (r, c) = (shares(reference), shares(current));
    let keys: std::collections::BTreeSet<&String> = r.keys().chain(c.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let a = r.get(k).copied().unwrap_or(0.0).max(drift::PSI_EPSILON);
            let b = c.get(k).copied().unwrap_or(0.0).max(drift::PSI_EPSILON);
            (b - a) * (b / a).ln()
        })
        .sum()
}

/// Pearson's chi-square test of homogeneity of two samples of categories
/// (a 2×k table): `(statistic, p-value)`; one category in all: `(0, 1)`.
pub fn chi_square(reference: &[String], current: &[String]) -> (f64, f64) {
    let mut counts: BTreeMap<&str, [f64; 2]> = BTreeMap::new();
    for x in reference {
        counts.entry(x).or_default()[0] += 1.0;
    }
    for x in current {
        counts.entry(x).or_default()[1] += 1.0;
    }
    let (n0, n1) = (reference.len() as f64, current.len() as f64);
    let n = n0 + n1;
    if counts.len() < 2 || n0 == 0.0 || n1 == 0.0 {
        return (0.0, 1.0);
    }
    let mut stat = 0.0;
    for [a, b] in counts.values() {
        let total = a + b;
        for (obs, size) in [(a, n0), (b, n1)] {
            let expected = total * size / n;
            stat += (obs - expected).powi(2) / expected;
        }
    }
    let dof = (counts.len() - 1) as f64;
    (stat, chi2_sf(stat, dof))
}

/// The chi-square distribution's survival function: the regularised upper
/// incomplete gamma Q(dof/2, x/2), by its series below a+1 and Lentz's
/// continued fraction above.
pub fn chi2_sf(x: f64, dof: f64) -> f64 {
    if !(x.is_finite() && dof > 0.0) || x <= 0.0 {
        return 1.0;
    }
    let (a, x) = (dof / 2.0, x / 2.0);
    let ln_prefix = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        // P(a, x) by its series; Q = 1 - P.
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..1000 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * ln_prefix.exp()).clamp(0.0, 1.0)
    } else {
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (ln_prefix.exp() * h).clamp(0.0, 1.0)
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut acc = G[0];
    for (i, g) in G.iter().enumerate().skip(1) {
        acc += g / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + acc.ln()
}

fn numeric(name: &'static str, r: &[f64], c: &[f64], t: &Thresholds) -> Option<DescriptorDrift> {
    let psi = drift::psi(r, c, 10)?;
    let ks = drift::ks_2samp(r, c)?;
    Some(DescriptorDrift {
        name,
        kind: "numeric",
        psi,
        ks_statistic: Some(ks.statistic),
        ks_p_value: Some(ks.p_value),
        chi2_statistic: None,
        chi2_p_value: None,
        wasserstein: drift::wasserstein_1(r, c),
        reference: serde_json::json!(mean(r)),
        current: serde_json::json!(mean(c)),
        drifted: psi >= t.psi && ks.p_value < t.per_test(),
    })
}

fn categorical(name: &'static str, r: &[String], c: &[String], t: &Thresholds) -> DescriptorDrift {
    let psi = categorical_psi(r, c);
    let (chi2, p) = chi_square(r, c);
    DescriptorDrift {
        name,
        kind: "categorical",
        psi,
        ks_statistic: None,
        ks_p_value: None,
        chi2_statistic: Some(chi2),
        chi2_p_value: Some(p),
        wasserstein: None,
        reference: serde_json::json!(shares(r)),
        current: serde_json::json!(shares(c)),
        drifted: psi >= t.psi && p < t.per_test(),
    }
}

fn flags(v: &[bool]) -> Vec<String> {
    v.iter().map(|b| b.to_string()).collect()
}

/// Compares `current` with `reference`. `seed` makes the permutation test
/// reproducible.
pub fn analyze(reference: &Window, current: &Window, t: &Thresholds, seed: u64) -> Analysis {
    let mut notes = Vec::new();
    let mut descriptors = Vec::new();
    let (nr, nc) = (reference.requests(), current.requests());
    if nr >= t.min_requests && nc >= t.min_requests {
        descriptors.extend(numeric(
            "prompt_chars",
            &reference.prompt_chars,
            &current.prompt_chars,
            t,
        ));
        descriptors.extend(numeric(
            "output_chars",
            &reference.output_chars,
            &current.output_chars,
            t,
        ));
        descriptors.push(categorical(
            "prompt_language",
            &reference.prompt_lang,
            &current.prompt_lang,
            t,
        ));
        descriptors.push(categorical(
            "finish_reason",
            &reference.finish_reason,
            &current.finish_reason,
            t,
        ));
        descriptors.push(categorical(
            "refusal",
            &flags(&reference.refusal),
            &flags(&current.refusal),
            t,
        ));
        descriptors.push(categorical(
            "empty",
            &flags(&reference.empty),
            &flags(&current.empty),
            t,
        ));
        descriptors.sort_by(|a, b| b.psi.total_cmp(&a.psi));
    } else {
        notes.push(format!(
            "descriptors need {} calls in each window (reference {nr}, current {nc})",
            t.min_requests
        ));
    }
    let (sr, sc) = (reference.embeddings.len(), current.embeddings.len());
    let embedding = if sr >= t.min_samples && sc >= t.min_samples {
        match drift::mmd_permutation_test(
            &reference.embeddings,
            &current.embeddings,
            t.permutations,
            seed,
        ) {
            Some(m) => Some(EmbeddingDrift {
                method: "mmd_permutation",
                statistic: m.statistic,
                p_value: m.p_value,
                bandwidth: m.bandwidth,
                permutations: m.permutations,
                reference_samples: sr,
                current_samples: sc,
                drifted: m.p_value < t.per_test(),
            }),
            None => {
                notes.push("the embedding samples could not be compared".into());
                None
            }
        }
    } else {
        notes.push(format!(
            "the embedding test needs {} samples in each window (reference {sr}, current {sc})",
            t.min_samples
        ));
        None
    };
    let drifted =
        embedding.as_ref().is_some_and(|e| e.drifted) || descriptors.iter().any(|d| d.drifted);
    Analysis {
        drifted,
        reference_requests: nr,
        current_requests: nc,
        embedding,
        descriptors,
        notes,
        thresholds: t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(n: usize, chars: f64, lang: &str, dir: f32) -> Window {
        let mut w = Window::default();
        for i in 0..n {
            let wiggle = (i % 7) as f64;
            w.prompt_chars.push(chars + wiggle * 3.0);
            w.output_chars.push(200.0 + wiggle);
            w.prompt_lang.push(lang.into());
            w.finish_reason
                .push(if i % 5 == 0 { "length" } else { "stop" }.into());
            w.refusal.push(false);
            w.empty.push(false);
            let mut v = vec![0.0f32; 8];
            v[i % 8] = 1.0;
            v[0] += dir;
            w.embeddings.push(v);
        }
        w
    }

    #[test]
    fn the_same_traffic_does_not_drift_and_a_shifted_one_does() {
        let t = Thresholds::default();
        let same = analyze(
            &window(60, 40.0, "eng", 0.0),
            &window(60, 40.0, "eng", 0.0),
            &t,
            7,
        );
        assert!(!same.drifted, "{same:?}");
        assert!(same.embedding.is_some());
        let shifted = analyze(
            &window(60, 40.0, "eng", 0.0),
            &window(60, 400.0, "fra", 3.0),
            &t,
            7,
        );
        assert!(shifted.drifted);
        assert!(shifted.embedding.as_ref().unwrap().drifted);
        // The most shifted descriptors come first.
        let names: Vec<&str> = shifted.descriptors.iter().take(2).map(|d| d.name).collect();
        assert!(
            names.contains(&"prompt_chars") && names.contains(&"prompt_language"),
            "{names:?}"
        );
        assert!(shifted.descriptors.windows(2).all(|w| w[0].psi >= w[1].psi));
    }

    #[test]
    fn small_windows_are_noted_not_judged() {
        let a = analyze(
            &window(5, 40.0, "eng", 0.0),
            &window(5, 400.0, "fra", 3.0),
            &Thresholds::default(),
            1,
        );
        assert!(!a.drifted);
        assert!(a.descriptors.is_empty() && a.embedding.is_none());
        assert_eq!(a.notes.len(), 2, "{:?}", a.notes);
    }

    #[test]
    fn chi_square_matches_known_quantiles() {
        // The 95% quantiles of chi-square with 1, 2, 5 and 10 degrees of
        // freedom (scipy.stats.chi2.ppf(0.95, k)).
        for (x, k) in [
            (3.841_458_820_694_124, 1.0),
            (5.991_464_547_107_979, 2.0),
            (11.070_497_693_516_351, 5.0),
            (18.307_038_053_275_146, 10.0),
        ] {
            let p = chi2_sf(x, k);
            assert!((p - 0.05).abs() < 1e-9, "k={k}: {p}");
        }
        // scipy.stats.chi2.sf(0.5, 3) and sf(40, 4).
        assert!((chi2_sf(0.5, 3.0) - 0.918_891_411_654_676).abs() < 1e-9);
        assert!((chi2_sf(40.0, 4.0) - 4.328_422_607_120_966e-8).abs() < 1e-15);
        let a: Vec<String> = (0..100)
            .map(|i| if i % 2 == 0 { "x" } else { "y" }.to_string())
            .collect();
        assert_eq!(chi_square(&a, &a).0, 0.0);
        let b: Vec<String> = (0..100)
            .map(|i| if i % 10 == 0 { "x" } else { "y" }.to_string())
            .collect();
        assert!(chi_square(&a, &b).1 < 1e-6);
        // One empty answer in 300 against none is not significant.
        let e0: Vec<String> = vec!["false".into(); 300];
        let mut e1 = e0.clone();
        e1[0] = "true".into();
        assert!(chi_square(&e0, &e1).1 > 0.3);
    }

    #[test]
    fn categorical_psi_is_zero_for_equal_shares_and_grows_with_the_shift() {
        let r: Vec<String> = ["a", "b"]
            .iter()
            .cycle()
            .take(100)
            .map(|s| s.to_string())
            .collect();
        assert!(categorical_psi(&r, &r).abs() < 1e-12);
        let c: Vec<String> = ["a", "a", "a", "b"]
            .iter()
            .cycle()
            .take(100)
            .map(|s| s.to_string())
            .collect();
        let d: Vec<String> = vec!["a".to_string(); 100];
        assert!(categorical_psi(&r, &c) > 0.1);
        assert!(categorical_psi(&r, &d) > categorical_psi(&r, &c));
    }
}
