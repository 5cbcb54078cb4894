//! The learned judge of semantic candidates, until 2026-12-04; the pair
//! classifier ([`crate::pair`]) has replaced it on the request path. It is
//! kept for the bench, which shows both decisions side by side, and for
//! [`screen`], the floor and hard rules that both run first.
//!
//! The deterministic guard ([`crate::guard`]) catches what rules can name
//! (another number, a negation, a swapped pair of places) but rejects many
//! true paraphrases on its softer rules: reordered clauses look like moved
//! arguments, a synonym looks like a substituted object. The judge decides
//! those cases from a pair's features, learned from labelled pairs:
//!
//! - the two prompts' sentence cosine;
//! - a token alignment from the same encoder pass: each content piece's
//!   best cosine among the other prompt's contextual piece vectors (the
//!   weakest and the mean, both ways, and the share left unmatched), the
//!   pieces that appear in one prompt only, and how far the aligned
//!   positions run backwards (neighbours inverted, all pairs discordant):
//!   a swapped argument keeps every word but turns its alignment around;
//! - which soft guard rules failed.
//!
//! The model is a logistic regression (`judge.json`: feature means and
//! scales, weights, bias and the decision threshold), fitted with
//! [`fit`] by `cargo bench -p llmops-cache --bench cache -- train` on the
//! training pairs of `tests/corpus/cache` (never on the held-out
//! `pairs-final.json`). The guard's rules other than the [`SOFT`] ones
//! still veto on their own: no score should outvote another number,
//! identifier, negation or antonym.

use crate::CacheError;
use crate::embed::{Encoded, cosine};
use crate::guard::{self, Rejection};
use crate::words::STOP;
use serde::{Deserialize, Serialize};

/// Guard failures the judge weighs as features. Every other failure is
/// a miss whatever the judge says (a rule added later is hard unless it is
/// listed here).
pub const SOFT: &[Rejection] = &[
    Rejection::Entities,
    Rejection::Order,
    Rejection::Substitution,
];

/// Whether a guard failure vetoes on its own.
pub fn is_hard(r: &Rejection) -> bool {
    !SOFT.contains(r)
}

/// The features, in the model's order.
pub const FEATURES: &[&str] = &[
    "cosine",
    "align_min_qc",
    "align_min_cq",
    "align_mean_qc",
    "align_mean_cq",
    "unmatched_qc",
    "unmatched_cq",
    "lexical_only_q",
    "lexical_only_c",
    "inverted_neighbours",
    "discordant_pairs",
    "length_gap",
    "guard_entities",
    "guard_order",
    "guard_substitution",
];

/// Below this best cosine a content piece counts as unmatched.
const UNMATCHED: f32 = 0.5;
/// At or above this best cosine a piece takes part in the order features.
const ALIGNED: f32 = 0.6;

fn is_content(piece: &str) -> bool {
    piece.chars().any(char::is_alphanumeric) && !STOP.contains(&piece)
}

struct Side {
    min: f64,
    mean: f64,
    unmatched: f64,
    only_here: f64,
    /// The other prompt's position aligned to each content piece, in
    /// this prompt's order (pieces aligned well enough only).
    aligned: Vec<usize>,
}

/// A dot product in eight lanes, which the compiler turns into vector
/// instructions (a plain sum must keep its order and stays scalar).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (xs, ys) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0f32; 8];
    for (x, y) in xs.zip(ys) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Every piece state of `q` against every one of `c` (unit vectors: the
/// products are cosines), computed once for both directions: row `i`,
/// column `j` at `i * columns + j`.
struct Similarities {
    values: Vec<f32>,
    rows: usize,
    columns: usize,
}

impl Similarities {
    fn of(q: &Encoded, c: &Encoded) -> Self {
        let d = q.dims.max(1);
        let (qs, cs): (Vec<&[f32]>, Vec<&[f32]>) = (
            q.states.chunks_exact(d).take(q.pieces.len()).collect(),
            c.states.chunks_exact(d).collect(),
        );
        let mut values = Vec::with_capacity(qs.len() * cs.len());
        for v in &qs {
            values.extend(cs.iter().map(|w| dot(v, w)));
        }
        Similarities {
            values,
            rows: qs.len(),
            columns: cs.len(),
        }
    }
}

/// Each content piece of `x` against all pieces of `y`: `sim(i, j)` is
/// the cosine of `x`'s piece `i` and `y`'s piece `j`, of which there are
/// `ny`.
fn side(x: &Encoded, y: &Encoded, nx: usize, ny: usize, sim: impl Fn(usize, usize) -> f32) -> Side {
    let (mut min, mut sum, mut n, mut unmatched, mut only) =
        (1.0f64, 0.0f64, 0usize, 0usize, 0usize);
    let mut aligned = Vec::new();
    for (i, piece) in x.pieces.iter().enumerate().take(nx) {
        if !is_content(piece) {
            continue;
        }
        let (mut best, mut at) = (f32::MIN, 0usize);
        for j in 0..ny {
            let s = sim(i, j);
            if s > best {
                (best, at) = (s, j);
            }
        }
        let best = if ny == 0 { 0.0 } else { best };
        n += 1;
        sum += f64::from(best);
        min = min.min(f64::from(best));
        if best < UNMATCHED {
            unmatched += 1;
        }
        if !y.pieces.iter().any(|p| p == piece) {
            only += 1;
        }
        if best >= ALIGNED {
            aligned.push(at);
        }
    }
    let n_f = n.max(1) as f64;
    Side {
        min,
        // No content piece: nothing unmatched, nothing to average.
        mean: if n == 0 { 1.0 } else { sum / n as f64 },
        unmatched: unmatched as f64 / n_f,
        only_here: only as f64 / n_f,
        aligned,
    }
}

/// Share of neighbouring aligned positions that run backwards, and of all
/// pairs that are discordant.
fn inversions(aligned: &[usize]) -> (f64, f64) {
    if aligned.len() < 2 {
        return (0.0, 0.0);
    }
    let back = aligned.windows(2).filter(|w| w[1] < w[0]).count();
    let (mut disc, mut pairs) = (0usize, 0usize);
    for i in 0..aligned.len() {
        for j in i + 1..aligned.len() {
            pairs += 1;
            if aligned[j] < aligned[i] {
                disc += 1;
            }
        }
    }
    (
        back as f64 / (aligned.len() - 1) as f64,
        disc as f64 / pairs.max(1) as f64,
    )
}

/// Whether the two prompts have the same words in the same order, once
/// punctuation and the short contractions ("what's" / "what is") are set
/// aside. With no guard failure either, there is nothing left for the
/// judge to weigh, and the model, fitted on pairs that differ, is not
/// asked. Every word counts, stop words too ("what is my brother's
/// daughter to me" is not "what am I to my brother's daughter"), and so
/// does case, except a sentence's first letter or two prose prompts each
/// typed in one case: `[A-Z]` is not `[a-z]`, `getUserById` not
/// `getUserByID`. Symbols are words too (see `words_of`).
pub fn same_words(query: &str, candidate: &str) -> bool {
    let (q, c) = (words_of(query), words_of(candidate));
    // Case is loose only when both prompts are prose (no symbol) typed in
    // one case each: "HOW DO I UNZIP A FILE" / "how do i unzip a file",
    // never "[A-Z]+" / "[a-z]+".
    let one_case =
        |t: &str| !t.chars().any(char::is_uppercase) || !t.chars().any(char::is_lowercase);
    let prose =
        |ws: &[(String, bool)]| ws.iter().all(|(w, _)| w.chars().any(char::is_alphanumeric));
    let loose = one_case(query) && one_case(candidate) && prose(&q) && prose(&c);
    !q.is_empty()
        && q.len() == c.len()
        && q.iter().zip(&c).all(|((a, ai), (b, bi))| {
            if a == b {
                return true;
            }
            if a.to_lowercase() != b.to_lowercase() {
                return false;
            }
            // Case: anywhere when both are one-case, else only the first
            // letter of a sentence's first word.
            let rest = |w: &str| w.chars().skip(1).collect::<String>();
            loose || ((*ai || *bi) && rest(a) == rest(b))
        })
}

/// The words of a prompt, each with whether it starts a sentence; a short
/// contraction's tail written out ("what's" → "what", "is"). Symbols are
/// words of their own (`7 - 2` is not `7 + 2`, `C++` not `C#`, `!=` not
/// `==`, `[A-Z]` keeps its brackets); only quotes and the punctuation that
/// ends a sentence or a clause (followed by a space or the end) go.
fn words_of(text: &str) -> Vec<(String, bool)> {
    fn flush(cur: &mut String, initial: &mut bool, out: &mut Vec<(String, bool)>) {
        let w = cur.trim_matches(['\'', '’']).to_string();
        cur.clear();
        if w.is_empty() {
            return;
        }
        match w.split_once(['\'', '’']) {
            Some((head, tail)) => {
                out.push((head.to_string(), *initial));
                let tail = match tail.to_lowercase().as_str() {
                    "s" => "is".to_string(),
                    "re" => "are".to_string(),
                    "ll" => "will".to_string(),
                    "ve" => "have".to_string(),
                    "m" => "am".to_string(),
                    _ => format!("'{tail}"),
                };
                out.push((tail, false));
            }
            None => out.push((w, *initial)),
        }
        *initial = false;
    }
    let (mut out, mut cur, mut initial) = (Vec::new(), String::new(), true);
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch.is_alphanumeric() || ch == '\'' || ch == '’' {
            cur.push(ch);
            continue;
        }
        flush(&mut cur, &mut initial, &mut out);
        let ends = chars.peek().is_none_or(|n| n.is_whitespace());
        match ch {
            c if c.is_whitespace() => {}
            '"' | '`' | '“' | '”' | '‘' => {}
            '.' | '?' | '!' | ',' | ';' | ':' if ends => {
                if matches!(ch, '.' | '?' | '!') {
                    initial = true;
                }
            }
            c => {
                out.push((c.to_string(), initial));
                initial = false;
            }
        }
    }
    flush(&mut cur, &mut initial, &mut out);
    out
}

/// The pair's features, in [`FEATURES`]' order: `query` is the new
/// prompt, `candidate` the cached one, `failures` the guard's.
pub fn features(query: &Encoded, candidate: &Encoded, failures: &[Rejection]) -> Vec<f64> {
    if query.dims != candidate.dims {
        // Another model's vectors: no feature vector, so no hit.
        return Vec::new();
    }
    let m = Similarities::of(query, candidate);
    let at = |i: usize, j: usize| m.values[i * m.columns + j];
    let q = side(query, candidate, m.rows, m.columns, at);
    let c = side(candidate, query, m.columns, m.rows, |i, j| at(j, i));
    let (back_q, disc_q) = inversions(&q.aligned);
    let (back_c, disc_c) = inversions(&c.aligned);
    let (nq, nc) = (query.pieces.len() as f64, candidate.pieces.len() as f64);
    let flag = |r: Rejection| if failures.contains(&r) { 1.0 } else { 0.0 };
    vec![
        f64::from(cosine(&query.pooled, &candidate.pooled)),
        q.min,
        c.min,
        q.mean,
        c.mean,
        q.unmatched,
        c.unmatched,
        q.only_here,
        c.only_here,
        back_q.max(back_c),
        disc_q.max(disc_c),
        (nq - nc).abs() / nq.max(nc).max(1.0),
        flag(Rejection::Entities),
        flag(Rejection::Order),
        flag(Rejection::Substitution),
    ]
}

/// A fitted logistic model over [`FEATURES`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Judge {
    pub features: Vec<String>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
    /// The least probability served.
    pub threshold: f64,
    /// What it was fitted on (pair counts per file), for the record.
    #[serde(default)]
    pub trained_on: serde_json::Value,
}

impl Judge {
    /// The model shipped with this build (`judge.json`).
    pub fn builtin() -> Result<Self, CacheError> {
        Self::from_json(include_str!("judge.json"))
    }

    /// Parses a model and checks it matches this build's features.
    pub fn from_json(text: &str) -> Result<Self, CacheError> {
        let j: Judge =
            serde_json::from_str(text).map_err(|e| CacheError::Corrupt(format!("judge: {e}")))?;
        let n = FEATURES.len();
        if j.features
            .iter()
            .map(String::as_str)
            .ne(FEATURES.iter().copied())
            || j.mean.len() != n
            || j.scale.len() != n
            || j.weights.len() != n
            || !(0.0..=1.0).contains(&j.threshold)
            || !j.bias.is_finite()
            || j.mean.iter().chain(&j.weights).any(|v| !v.is_finite())
            || j.scale.iter().any(|v| !v.is_finite() || *v <= 0.0)
        {
            return Err(CacheError::Corrupt(
                "judge: the model does not match this build's features".into(),
            ));
        }
        Ok(j)
    }

    /// The probability that the pair asks the same thing.
    pub fn probability(&self, x: &[f64]) -> f64 {
        let z: f64 = self.bias
            + x.iter()
                .zip(&self.mean)
                .zip(&self.scale)
                .zip(&self.weights)
                .map(|(((v, m), s), w)| w * (v - m) / s)
                .sum::<f64>();
        let p = 1.0 / (1.0 + (-z).exp());
        if p.is_finite() { p } else { 0.0 }
    }

    /// Served only at or above the threshold; anything odd is a miss.
    pub fn accepts(&self, x: &[f64]) -> bool {
        x.len() == self.weights.len()
            && x.iter().all(|v| v.is_finite())
            && self.probability(x) >= self.threshold
    }

    /// The semantic level's whole decision on a candidate: [`screen`],
    /// then the judge on the pair's features.
    pub fn verify(
        &self,
        query: (&str, &Encoded),
        candidate: (&str, &Encoded),
        similarity: f32,
        threshold: f32,
    ) -> Result<(), Rejection> {
        let failures = screen(query.0, candidate.0, similarity, threshold)?;
        self.decide(query, candidate, &failures)
    }

    /// The judge's part: `failures` are the soft ones [`screen`] passed.
    /// Prompts with the same words ([`same_words`]) and no failure are
    /// served without asking the model.
    pub fn decide(
        &self,
        query: (&str, &Encoded),
        candidate: (&str, &Encoded),
        failures: &[Rejection],
    ) -> Result<(), Rejection> {
        self.decide_with(failures, same_words(query.0, candidate.0), || {
            features(query.1, candidate.1, failures)
        })
    }

    /// [`Judge::decide`] from the pair's parts (the bench computes the
    /// features once per pair): `features` is only called when the model
    /// is asked.
    pub fn decide_with(
        &self,
        failures: &[Rejection],
        same_words: bool,
        features: impl FnOnce() -> Vec<f64>,
    ) -> Result<(), Rejection> {
        if (failures.is_empty() && same_words) || self.accepts(&features()) {
            Ok(())
        } else {
            Err(Rejection::Judged)
        }
    }
}

/// What comes before the judge, and costs no encoding of the candidate:
/// both prompts readable, the cosine at or above the threshold, no hard
/// guard failure. Returns the soft failures, which the judge weighs.
pub fn screen(
    query: &str,
    candidate: &str,
    similarity: f32,
    threshold: f32,
) -> Result<Vec<Rejection>, Rejection> {
    guard::readable(query, candidate, similarity)?;
    if similarity < threshold {
        return Err(Rejection::Similarity);
    }
    let failures = guard::failures(query, candidate);
    match failures.iter().find(|r| is_hard(r)) {
        Some(hard) => Err(*hard),
        None => Ok(failures),
    }
}

/// Fits an L2-regularised logistic regression by Newton's method on
/// standardised features; the threshold is left at 0.5 for the caller to
/// choose.
pub fn fit(rows: &[Vec<f64>], labels: &[bool], l2: f64) -> Judge {
    let n = FEATURES.len();
    let m = rows.len().max(1) as f64;
    let mut mean = vec![0.0; n];
    let mut scale = vec![0.0; n];
    for r in rows {
        for (k, v) in r.iter().enumerate().take(n) {
            mean[k] += v / m;
        }
    }
    for r in rows {
        for (k, v) in r.iter().enumerate().take(n) {
            scale[k] += (v - mean[k]).powi(2) / m;
        }
    }
    for s in &mut scale {
        *s = if *s > 1e-12 { s.sqrt() } else { 1.0 };
    }
    // Design rows with a leading 1 for the bias.
    let xs: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            std::iter::once(1.0)
                .chain((0..n).map(|k| (r.get(k).copied().unwrap_or(0.0) - mean[k]) / scale[k]))
                .collect()
        })
        .collect();
    let d = n + 1;
    let mut w = vec![0.0; d];
    for _ in 0..50 {
        let mut grad = vec![0.0; d];
        let mut hess = vec![vec![0.0; d]; d];
        for (x, &y) in xs.iter().zip(labels) {
            let z: f64 = x.iter().zip(&w).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            let e = p - if y { 1.0 } else { 0.0 };
            let h = (p * (1.0 - p)).max(1e-9);
            for i in 0..d {
                grad[i] += e * x[i];
                for j in 0..d {
                    hess[i][j] += h * x[i] * x[j];
                }
            }
        }
        for i in 1..d {
            grad[i] += l2 * w[i];
            hess[i][i] += l2;
        }
        let Some(step) = solve(hess, grad) else { break };
        let size: f64 = step.iter().map(|s| s * s).sum::<f64>().sqrt();
        for (wi, s) in w.iter_mut().zip(&step) {
            *wi -= s;
        }
        if size < 1e-9 {
            break;
        }
    }
    Judge {
        features: FEATURES.iter().map(|f| f.to_string()).collect(),
        mean,
        scale,
        weights: w[1..].to_vec(),
        bias: w[0],
        threshold: 0.5,
        trained_on: serde_json::Value::Null,
    }
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting.
// Two rows of one matrix at a time: indices say it plainest.
#[allow(clippy::needless_range_loop)]
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            for k in col..n {
                a[row][k] -= f * a[col][k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(pieces: &[(&str, [f32; 2])]) -> Encoded {
        let states: Vec<f32> = pieces.iter().flat_map(|(_, v)| *v).collect();
        Encoded {
            pooled: vec![1.0, 0.0],
            pieces: pieces.iter().map(|(p, _)| p.to_string()).collect(),
            states,
            dims: 2,
        }
    }

    #[test]
    fn a_swapped_pair_of_words_inverts_the_alignment() {
        let paris = [1.0, 0.0];
        let berlin = [0.0, 1.0];
        let a = enc(&[("paris", paris), ("to", [0.7, 0.7]), ("berlin", berlin)]);
        let b = enc(&[("berlin", berlin), ("to", [0.7, 0.7]), ("paris", paris)]);
        let f = features(&a, &b, &[]);
        assert_eq!(f.len(), FEATURES.len());
        assert_eq!(f[9], 1.0, "neighbours inverted");
        assert_eq!(f[10], 1.0, "pairs discordant");
        let same = features(&a, &a, &[]);
        assert_eq!((same[9], same[10]), (0.0, 0.0));
        assert_eq!((same[1], same[5], same[7]), (1.0, 0.0, 0.0));
    }

    #[test]
    fn the_lane_product_is_the_dot_product_and_both_sides_share_one_matrix() {
        for n in [0usize, 1, 7, 8, 9, 16, 23, 384] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 % 11) as f32 - 5.0) / 7.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5 % 13) as f32 - 6.0) / 9.0).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
            assert!((f64::from(dot(&a, &b)) - plain).abs() < 1e-4, "{n}");
        }
        // Three pieces against two: the candidate's side reads the
        // query's matrix by columns.
        let a = enc(&[
            ("cat", [1.0, 0.0]),
            ("sat", [0.6, 0.8]),
            ("mat", [0.0, 1.0]),
        ]);
        let b = enc(&[("cat", [1.0, 0.0]), ("mat", [0.0, 1.0])]);
        let (ab, ba) = (features(&a, &b, &[]), features(&b, &a, &[]));
        assert_eq!((ab[1], ab[2]), (ba[2], ba[1]));
        assert_eq!((ab[3], ab[4]), (ba[4], ba[3]));
        assert!((ab[1] - 0.8).abs() < 1e-6 && ab[2] == 1.0, "{ab:?}");
        // Another model's vectors: no features, so no hit.
        let mut other = b.clone();
        other.dims = 1;
        assert!(features(&a, &other, &[]).is_empty());
    }

    #[test]
    fn same_words_sets_aside_punctuation_contractions_and_sentence_case_only() {
        assert!(same_words(
            "What is the capital of France?",
            "what's the capital of France"
        ));
        assert!(same_words(
            "HOW DO I UNZIP A FILE",
            "how do i unzip a file?"
        ));
        assert!(same_words("Thanks. Where is it?", "thanks! where's it"));
        assert!(!same_words(
            "What does the regex [A-Z]{3} match?",
            "What does the regex [a-z]{3} match?"
        ));
        assert!(!same_words(
            "Why does `getUserById` fail?",
            "Why does `getUserByID` fail?"
        ));
        assert!(!same_words(
            "What is my brother's daughter to me?",
            "What am I to my brother's daughter?"
        ));
        assert!(!same_words("Is it safe?", "Is it not safe?"));
        assert!(!same_words("", ""));
        assert!(!same_words("What is 7 - 2?", "What is 7 + 2?"));
        assert!(!same_words("Should I learn C++?", "Should I learn C#?"));
        assert!(!same_words("Is a != b here?", "Is a == b here?"));
        assert!(!same_words("match [a-z]+ please", "MATCH [A-Z]+ PLEASE"));
        assert!(same_words(
            "which is faster, go or rust?",
            "WHICH IS FASTER, GO OR RUST"
        ));
    }

    #[test]
    fn fit_separates_what_is_separable_and_the_builtin_model_loads() {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..200 {
            let mut r = vec![0.0; FEATURES.len()];
            let y = i % 2 == 0;
            r[0] = if y { 0.9 } else { 0.7 } + (i % 7) as f64 * 0.01;
            r[3] = (i % 5) as f64;
            rows.push(r);
            labels.push(y);
        }
        let j = fit(&rows, &labels, 1.0);
        let right = rows
            .iter()
            .zip(&labels)
            .filter(|(r, y)| (j.probability(r) >= 0.5) == **y)
            .count();
        assert_eq!(right, rows.len());
        assert!(j.weights[0] > 0.0 && j.weights[3].abs() < j.weights[0]);
        let built = Judge::builtin().expect("judge.json");
        assert!(built.threshold > 0.5);
        assert!(!built.accepts(&[f64::NAN; 15]));
        assert!(Judge::from_json("{}").is_err());
    }
}
