//! A BERT encoder's forward pass for one sequence at a time on the CPU: a
//! sentence, or a pair of sentences with their token types (a
//! cross-encoder), optionally with a LoRA adapter merged into the weights
//! at load.
//!
//! The response cache embeds every chat prompt it looks up, so this pass is
//! on the request path. candle 0.11 (what the cache used before) took p50
//! 16.2 ms and p99 26.8 ms per real prompt on our 2-core machines; this
//! crate takes 6.5 / 12.3 ms with bf16 weights and 9.4 / 15.2 ms with f32
//! ones, on the same prompts in the same run. It does the same arithmetic
//! with:
//! - the weights of every linear layer packed once, at load, into panels of
//!   16 output columns laid out input by input, query, key and value fused
//!   into one projection, and kept as f32 or, by default, rounded to
//!   bfloat16 (half the bytes to read; a short prompt's pass reads all
//!   42.5 MB of f32 weights once, more than this CPU's caches hold);
//! - one SIMD kernel (AVX2 and FMA when the CPU has them, through `pulp`'s
//!   runtime dispatch, with no unsafe code here) that keeps a tile of up to
//!   6 tokens by 16 outputs in registers, over blocks of 128 inputs;
//! - attention, layer norm and the exact (erf) GELU computed on the rows
//!   in place, the GELU without calls so that it vectorizes.
//!
//! Sums are in f32, in another order than a framework's. The cache's
//! black-box test checks the sentence vectors against the served model's
//! (cosine ≥ 0.9999; least seen 0.99998 with bf16 weights, 0.9999998 with
//! f32 ones).

use pulp::{Arch, Simd, WithSimd};

mod tensors;
use tensors::Tensors;
pub use tensors::read_f32;

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("model files: {0}")]
    Weights(String),
    #[error("input: {0}")]
    Input(String),
}

fn weights_err(e: impl std::fmt::Display) -> EncoderError {
    EncoderError::Weights(e.to_string())
}

/// The architecture, from the model's `config.json`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    pub hidden: usize,
    pub heads: usize,
    pub layers: usize,
    pub intermediate: usize,
    pub max_positions: usize,
    pub vocab: usize,
    pub type_vocab: usize,
    pub eps: f32,
}

impl Config {
    /// Reads a BERT `config.json`; refuses what this pass does not compute
    /// (another activation or position embedding, sizes that do not tile).
    pub fn from_json(bytes: &[u8]) -> Result<Self, EncoderError> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(weights_err)?;
        let size = |key: &str| {
            v.get(key)
                .and_then(serde_json::Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| weights_err(format!("config.json: no positive {key}")))
        };
        let text = |key: &str| v.get(key).and_then(serde_json::Value::as_str);
        if text("hidden_act").unwrap_or("gelu") != "gelu" {
            return Err(weights_err(
                "config.json: only the exact (erf) gelu is computed",
            ));
        }
        if text("position_embedding_type").unwrap_or("absolute") != "absolute" {
            return Err(weights_err(
                "config.json: only absolute positions are computed",
            ));
        }
        let config = Self {
            hidden: size("hidden_size")?,
            heads: size("num_attention_heads")?,
            layers: size("num_hidden_layers")?,
            intermediate: size("intermediate_size")?,
            max_positions: size("max_position_embeddings")?,
            vocab: size("vocab_size")?,
            type_vocab: size("type_vocab_size")?,
            eps: v
                .get("layer_norm_eps")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(1e-12) as f32,
        };
        config.validate()?;
        Ok(config)
    }

    /// What this pass computes: positive sizes, heads that divide the
    /// hidden size, sizes that tile by 16 outputs, a finite positive
    /// epsilon, and no more layers or positions than any BERT has (so
    /// that a bad file is an error before anything is allocated).
    pub fn validate(&self) -> Result<(), EncoderError> {
        let sizes = [
            self.hidden,
            self.heads,
            self.layers,
            self.intermediate,
            self.max_positions,
            self.vocab,
            self.type_vocab,
        ];
        if sizes.contains(&0)
            || !self.hidden.is_multiple_of(self.heads)
            || !self.hidden.is_multiple_of(PANEL)
            || !self.intermediate.is_multiple_of(PANEL)
            || self.layers > 256
            || self.max_positions > 65_536
            || !(self.eps.is_finite() && self.eps > 0.0)
        {
            return Err(weights_err(format!(
                "config: {self:?} is not computed (sizes positive, hidden and intermediate multiples of {PANEL}, hidden a multiple of the heads, at most 256 layers and 65,536 positions)"
            )));
        }
        Ok(())
    }
}

/// Output columns per panel: two 8-lane vectors.
const PANEL: usize = 16;
/// Tokens per tile: 6 × 2 accumulators, 2 weight vectors and a broadcast
/// fit the 16 vector registers of AVX2.
const TILE: usize = 6;
/// Sequences from this many tokens split each product over two threads.
/// On the 2-core machines measured, real prompts (13 tokens at the median)
/// were no faster on two threads (f32 p50 9.6 against 9.4 ms), while 32 to
/// 128 tokens were 10 to 25% faster, and the longest prompts set the
/// semantic lookups' p99 (about 1 ms lower from 20 tokens than from 32, in
/// noisy runs).
const PARALLEL_FROM: usize = 20;
/// Inputs per block of the product.
const KC: usize = 128;

/// How the weights of the linear layers are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// As the model file has them.
    F32,
    /// Rounded to bfloat16 (8 bits of mantissa; products and sums stay
    /// f32): half the bytes to read per pass, which is what bounds a short
    /// prompt on a CPU whose caches do not hold the f32 weights (42.5 MB
    /// for MiniLM-L6). The cache's black-box test and its bench check the
    /// sentence vectors against the served f32 model's.
    #[default]
    Bf16,
}

/// One packed panel row: the 16 weights of one input for 16 outputs.
trait PanelRow: Copy + Send + Sync {
    /// Elements per panel row.
    const WIDTH: usize;
    fn pack(row: &[f32; PANEL], out: &mut [Self]);
    fn unpack(row: &[Self], out: &mut [f32; PANEL]);
    /// The row as two 8-lane vectors.
    fn load<S: Simd>(simd: S, row: &[Self]) -> Option<(S::f32s, S::f32s)>;
}

impl PanelRow for f32 {
    const WIDTH: usize = PANEL;
    fn pack(row: &[f32; PANEL], out: &mut [f32]) {
        out.copy_from_slice(row);
    }
    fn unpack(row: &[f32], out: &mut [f32; PANEL]) {
        out.copy_from_slice(row);
    }
    #[inline(always)]
    fn load<S: Simd>(_simd: S, row: &[f32]) -> Option<(S::f32s, S::f32s)> {
        match S::as_simd_f32s(row).0 {
            [a, b] => Some((*a, *b)),
            _ => None,
        }
    }
}

/// bfloat16 of `x`, rounded to nearest even (the weights are finite:
/// `Tensors::f32s` refuses others).
fn bf16(x: f32) -> u32 {
    let bits = x.to_bits();
    (bits + 0x7fff + ((bits >> 16) & 1)) >> 16
}

/// Two bfloat16 weights in one word: output `j` in the high half, output
/// `j + 8` in the low half, so that a mask and a shift make the two
/// vectors.
impl PanelRow for u32 {
    const WIDTH: usize = PANEL / 2;
    fn pack(row: &[f32; PANEL], out: &mut [u32]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = (bf16(row[j]) << 16) | bf16(row[j + PANEL / 2]);
        }
    }
    fn unpack(row: &[u32], out: &mut [f32; PANEL]) {
        for (j, w) in row.iter().enumerate() {
            out[j] = f32::from_bits(w & 0xffff_0000);
            out[j + PANEL / 2] = f32::from_bits(w << 16);
        }
    }
    #[inline(always)]
    fn load<S: Simd>(simd: S, row: &[u32]) -> Option<(S::f32s, S::f32s)> {
        match S::as_simd_u32s(row).0 {
            [w] => Some((
                simd.transmute_f32s_u32s(simd.and_u32s(*w, simd.splat_u32s(0xffff_0000))),
                simd.transmute_f32s_u32s(simd.wrapping_dyn_shl_u32s(*w, simd.splat_u32s(16))),
            )),
            _ => None,
        }
    }
}

enum Weights {
    F32(Vec<f32>),
    Bf16(Vec<u32>),
}

/// `y = x Wᵀ + b` with `W` packed: panel `p` holds, for every input `i`,
/// the 16 weights `W[16p .. 16p+16][i]` side by side.
struct Linear {
    inputs: usize,
    outputs: usize,
    weights: Weights,
    bias: Vec<f32>,
}

impl Linear {
    /// Packs row-major `[outputs][inputs]` matrices stacked along the
    /// outputs (several for a fused projection).
    fn pack(parts: &[(Vec<f32>, Vec<f32>)], inputs: usize, precision: Precision) -> Self {
        let rows: Vec<&[f32]> = parts
            .iter()
            .flat_map(|(w, _)| w.chunks_exact(inputs))
            .collect();
        let bias: Vec<f32> = parts.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        let outputs = rows.len();
        fn panels<W: PanelRow + Default>(rows: &[&[f32]], inputs: usize) -> Vec<W> {
            let mut out = vec![W::default(); rows.len() / PANEL * inputs * W::WIDTH];
            for (p, panel) in out.chunks_exact_mut(inputs * W::WIDTH).enumerate() {
                for (i, lane) in panel.chunks_exact_mut(W::WIDTH).enumerate() {
                    let mut row = [0.0f32; PANEL];
                    for (j, w) in row.iter_mut().enumerate() {
                        *w = rows[p * PANEL + j][i];
                    }
                    W::pack(&row, lane);
                }
            }
            out
        }
        let weights = match precision {
            Precision::F32 => Weights::F32(panels(&rows, inputs)),
            Precision::Bf16 => Weights::Bf16(panels(&rows, inputs)),
        };
        Self {
            inputs,
            outputs,
            weights,
            bias,
        }
    }
}

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    intermediate: Linear,
    output: Linear,
    output_norm: Norm,
}

/// A loaded BERT encoder.
pub struct Bert {
    config: Config,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    arch: Arch,
    /// Sequences of at least this many tokens split each product over two
    /// threads.
    parallel_from: Option<usize>,
}

impl std::fmt::Debug for Bert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bert")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Bert {
    /// Loads the weights of a `model.safetensors` (names as Hugging Face's
    /// `BertModel` writes them, with or without the `bert.` prefix), the
    /// linear layers' kept at `precision`.
    pub fn load(
        config: Config,
        safetensors: &[u8],
        precision: Precision,
    ) -> Result<Self, EncoderError> {
        Self::load_adapted(config, safetensors, None, precision)
    }

    /// [`Bert::load`] with a LoRA adapter merged into the weights: for a
    /// linear layer `NAME`, the adapter's `NAME.lora_a` (`[rank, inputs]`)
    /// and `NAME.lora_b` (`[outputs, rank]`, the scale already applied)
    /// add `B A` to its weight; a layer norm's `NAME.weight` and
    /// `NAME.bias` replace the model's. Tensors of other names (a
    /// classifier's head) are left to the caller ([`read_f32`]). An adapter
    /// that changes no linear layer is refused: it is not the file meant.
    pub fn load_adapted(
        config: Config,
        safetensors: &[u8],
        adapter: Option<&[u8]>,
        precision: Precision,
    ) -> Result<Self, EncoderError> {
        config.validate()?;
        let t = Tensors::parse(safetensors)?;
        let a = adapter.map(Tensors::parse).transpose()?;
        let merged = std::cell::Cell::new(0usize);
        let h = config.hidden;
        let linear = |name: &str, outputs: usize, inputs: usize| {
            let mut weight = t.f32s(&format!("{name}.weight"), &[outputs, inputs])?;
            if let Some(a) = &a
                && a.merge_lora(name, &mut weight, outputs, inputs)?
            {
                merged.set(merged.get() + 1);
            }
            Ok::<_, EncoderError>((weight, t.f32s(&format!("{name}.bias"), &[outputs])?))
        };
        let norm = |name: &str| {
            let own = |part: &str| {
                let name = format!("{name}.{part}");
                match a.as_ref().filter(|a| a.has(&name)) {
                    Some(a) => a.f32s(&name, &[h]),
                    None => t.f32s(&name, &[h]),
                }
            };
            Ok::<_, EncoderError>(Norm {
                weight: own("weight")?,
                bias: own("bias")?,
            })
        };
        let mut layers = Vec::new();
        for l in 0..config.layers {
            let p = format!("encoder.layer.{l}");
            layers.push(Layer {
                qkv: Linear::pack(
                    &[
                        linear(&format!("{p}.attention.self.query"), h, h)?,
                        linear(&format!("{p}.attention.self.key"), h, h)?,
                        linear(&format!("{p}.attention.self.value"), h, h)?,
                    ],
                    h,
                    precision,
                ),
                attention_out: Linear::pack(
                    &[linear(&format!("{p}.attention.output.dense"), h, h)?],
                    h,
                    precision,
                ),
                attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                intermediate: Linear::pack(
                    &[linear(
                        &format!("{p}.intermediate.dense"),
                        config.intermediate,
                        h,
                    )?],
                    h,
                    precision,
                ),
                output: Linear::pack(
                    &[linear(
                        &format!("{p}.output.dense"),
                        h,
                        config.intermediate,
                    )?],
                    config.intermediate,
                    precision,
                ),
                output_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        if a.is_some() && merged.get() == 0 {
            return Err(weights_err("adapter: no LoRA tensor for any linear layer"));
        }
        Ok(Self {
            word: t.f32s("embeddings.word_embeddings.weight", &[config.vocab, h])?,
            position: t.f32s(
                "embeddings.position_embeddings.weight",
                &[config.max_positions, h],
            )?,
            token_type: t.f32s(
                "embeddings.token_type_embeddings.weight",
                &[config.type_vocab, h],
            )?,
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
            config,
            arch: Arch::new(),
            parallel_from: Some(PARALLEL_FROM),
        })
    }

    /// From how many tokens each product is split between this thread and
    /// one of rayon's (`None`: never, `Some(1)`: always).
    pub fn with_parallel(mut self, from_tokens: Option<usize>) -> Self {
        self.parallel_from = from_tokens;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The last layer's hidden states of one sequence of token ids (token
    /// type 0, every token attended): `ids.len()` rows of `hidden` floats.
    pub fn forward(&self, ids: &[u32]) -> Result<Vec<f32>, EncoderError> {
        self.forward_typed(ids, None)
    }

    /// [`Bert::forward`] with each token's type (a pair of sentences: 0
    /// for the first, 1 for the second); `None` is type 0 throughout.
    pub fn forward_typed(
        &self,
        ids: &[u32],
        types: Option<&[u32]>,
    ) -> Result<Vec<f32>, EncoderError> {
        let c = &self.config;
        let (n, h) = (ids.len(), c.hidden);
        if n == 0 || n > c.max_positions {
            return Err(EncoderError::Input(format!(
                "{n} tokens (1 to {} are encoded)",
                c.max_positions
            )));
        }
        if let Some(types) = types {
            if types.len() != n {
                return Err(EncoderError::Input(format!(
                    "{} token types for {n} tokens",
                    types.len()
                )));
            }
            if let Some(bad) = types.iter().find(|t| **t as usize >= c.type_vocab) {
                return Err(EncoderError::Input(format!(
                    "token type {bad} (the model has {})",
                    c.type_vocab
                )));
            }
        }
        let mut x = vec![0.0f32; n * h];
        for (t, (row, id)) in x.chunks_exact_mut(h).zip(ids).enumerate() {
            let ty = types.map_or(0, |types| types[t] as usize);
            let token_type = &self.token_type[ty * h..(ty + 1) * h];
            let id = usize::try_from(*id).unwrap_or(usize::MAX);
            let word = self
                .word
                .get(id.saturating_mul(h)..id.saturating_mul(h).saturating_add(h))
                .ok_or_else(|| {
                    EncoderError::Input(format!("token id {id} is not in the vocabulary"))
                })?;
            let position = &self.position[t * h..(t + 1) * h];
            for (((o, w), p), ty) in row.iter_mut().zip(word).zip(position).zip(token_type) {
                *o = w + p + ty;
            }
        }
        layer_norm(&mut x, None, &self.embedding_norm, h, c.eps);

        let mut qkv = vec![0.0f32; n * 3 * h];
        let mut context = vec![0.0f32; n * h];
        let mut attended = vec![0.0f32; n * h];
        let mut inner = vec![0.0f32; n * c.intermediate];
        let mut scores = vec![0.0f32; n];
        for layer in &self.layers {
            self.project(&x, n, &layer.qkv, &mut qkv);
            self.arch.dispatch(Attend {
                qkv: &qkv,
                rows: n,
                hidden: h,
                heads: c.heads,
                context: &mut context,
                scores: &mut scores,
            });
            self.project(&context, n, &layer.attention_out, &mut attended);
            layer_norm(&mut attended, Some(&x), &layer.attention_norm, h, c.eps);
            self.project(&attended, n, &layer.intermediate, &mut inner);
            self.arch.dispatch(Gelu(&mut inner));
            self.project(&inner, n, &layer.output, &mut x);
            layer_norm(&mut x, Some(&attended), &layer.output_norm, h, c.eps);
        }
        Ok(x)
    }

    /// `y = x Wᵀ + b` over `rows` tokens; from `parallel_from` tokens,
    /// split by output panels between this thread and one of rayon's.
    fn project(&self, x: &[f32], rows: usize, linear: &Linear, y: &mut [f32]) {
        let packed = pack_tiles(x, rows, linear.inputs);
        match &linear.weights {
            Weights::F32(w) => self.split(&packed, rows, linear, w, y),
            Weights::Bf16(w) => self.split(&packed, rows, linear, w, y),
        }
    }

    fn split<W: PanelRow>(
        &self,
        packed: &[f32],
        rows: usize,
        linear: &Linear,
        weights: &[W],
        y: &mut [f32],
    ) {
        let k = linear.inputs;
        let job = |panels, bias, y| {
            self.arch.dispatch(Project {
                packed,
                rows,
                inputs: k,
                panels,
                bias,
                y,
            })
        };
        let panels = linear.outputs / PANEL;
        if self.parallel_from.is_none_or(|from| rows < from) || panels < 2 {
            return job(weights, &linear.bias, y);
        }
        let split = panels / 2 * PANEL;
        let (left_w, right_w) = weights.split_at(split / PANEL * k * W::WIDTH);
        let (left_b, right_b) = linear.bias.split_at(split);
        let mut left = vec![0.0f32; rows * split];
        let mut right = vec![0.0f32; rows * (linear.outputs - split)];
        rayon::join(
            || job(left_w, left_b, &mut left),
            || job(right_w, right_b, &mut right),
        );
        let m = linear.outputs;
        for ((row, l), r) in y
            .chunks_exact_mut(m)
            .zip(left.chunks_exact(split))
            .zip(right.chunks_exact(m - split))
        {
            row[..split].copy_from_slice(l);
            row[split..].copy_from_slice(r);
        }
    }
}

/// The exact GELU, `x Φ(x) = x (1 + erf(x/√2)) / 2`, over a slice.
///
/// A libm `erff` per element took a third of a short prompt's pass, so
/// erf is computed here without calls or branches, which the compiler
/// vectorizes: Abramowitz and Stegun's 7.1.26 (absolute error ≤ 1.5e-7;
/// 6.4e-7 as evaluated in f32, a few units in the last place of the
/// products around it) with `exp` by range reduction to `2^k e^r`,
/// `|r| ≤ ln2/2`, and a degree-7 Taylor polynomial (relative error about
/// 1e-8). A unit test checks both against libm over ±12.
struct Gelu<'a>(&'a mut [f32]);

impl WithSimd for Gelu<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        for v in self.0.iter_mut() {
            *v = gelu(*v);
        }
    }
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * exp_neg(z * z)).copysign(x)
}

/// `e^-y` for `y ≥ 0` (`e^-87` for larger `y`: f32's smallest normals).
#[inline(always)]
fn exp_neg(y: f32) -> f32 {
    let x = (-y).max(-87.0);
    let k = (x * std::f32::consts::LOG2_E + 0.5).floor();
    // r = x - k ln2, with ln2 in two parts so that k ln2 is exact enough.
    let r = (x - k * 0.693_145_75) - k * 1.428_606_8e-6;
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// `x = LayerNorm(x + residual)`, row by row.
fn layer_norm(x: &mut [f32], residual: Option<&[f32]>, norm: &Norm, width: usize, eps: f32) {
    if let Some(r) = residual {
        x.iter_mut().zip(r).for_each(|(a, b)| *a += b);
    }
    for row in x.chunks_exact_mut(width) {
        let mean = row.iter().sum::<f32>() / width as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(&norm.weight).zip(&norm.bias) {
            *v = (*v - mean) * inv * w + b;
        }
    }
}

/// Tokens in tiles of 6, each laid out input by input, so that a tile's 6
/// inputs for one weight row are adjacent (the tail tile zero-padded).
fn pack_tiles(x: &[f32], rows: usize, k: usize) -> Vec<f32> {
    let mut packed = vec![0.0f32; rows.div_ceil(TILE) * TILE * k];
    for (b, tile) in packed.chunks_exact_mut(TILE * k).enumerate() {
        for r in 0..TILE.min(rows - b * TILE) {
            let row = &x[(b * TILE + r) * k..(b * TILE + r + 1) * k];
            for (i, v) in row.iter().enumerate() {
                tile[i * TILE + r] = *v;
            }
        }
    }
    packed
}

/// Some of a linear layer's panels over `rows` packed tokens: `y` has
/// `rows` rows of 16 outputs per panel.
struct Project<'a, W> {
    packed: &'a [f32],
    rows: usize,
    inputs: usize,
    panels: &'a [W],
    bias: &'a [f32],
    y: &'a mut [f32],
}

impl<W: PanelRow> Project<'_, W> {
    fn width(&self) -> usize {
        self.bias.len()
    }
}

impl<W: PanelRow> WithSimd for Project<'_, W> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        if S::F32_LANES * 2 != PANEL {
            return project_scalar(self);
        }
        let m = self.width();
        let Project {
            packed,
            rows,
            inputs: k,
            panels,
            bias,
            y,
        } = self;
        // Inputs in blocks of KC, so that a block of a panel and of a tile
        // stay in the L1 cache while every tile passes over it.
        let mut out = [[0.0f32; PANEL]; TILE];
        for k0 in (0..k).step_by(KC) {
            let k1 = (k0 + KC).min(k);
            for (p, panel) in panels.chunks_exact(k * W::WIDTH).enumerate() {
                let weights = &panel[k0 * W::WIDTH..k1 * W::WIDTH];
                let bias = &bias[p * PANEL..(p + 1) * PANEL];
                for (b, tile) in packed.chunks_exact(TILE * k).enumerate() {
                    let n = TILE.min(rows - b * TILE);
                    for (r, acc) in out.iter_mut().take(n).enumerate() {
                        let at = (b * TILE + r) * m + p * PANEL;
                        acc.copy_from_slice(if k0 == 0 { bias } else { &y[at..at + PANEL] });
                    }
                    let tile = &tile[k0 * TILE..k1 * TILE];
                    match n {
                        6 => kernel::<S, W, 6>(simd, weights, tile, &mut out),
                        5 => kernel::<S, W, 5>(simd, weights, tile, &mut out),
                        4 => kernel::<S, W, 4>(simd, weights, tile, &mut out),
                        3 => kernel::<S, W, 3>(simd, weights, tile, &mut out),
                        2 => kernel::<S, W, 2>(simd, weights, tile, &mut out),
                        _ => kernel::<S, W, 1>(simd, weights, tile, &mut out),
                    }
                    for (r, acc) in out.iter().take(n).enumerate() {
                        let at = (b * TILE + r) * m + p * PANEL;
                        y[at..at + PANEL].copy_from_slice(acc);
                    }
                }
            }
        }
    }
}

/// `R` tokens by 16 outputs, added to `out`: for every input, two weight
/// vectors times the `R` tokens' input broadcast, accumulated in registers.
#[inline(always)]
fn kernel<S: Simd, W: PanelRow, const R: usize>(
    simd: S,
    weights: &[W],
    tile: &[f32],
    out: &mut [[f32; PANEL]; TILE],
) {
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; 2]; R];
    for (a, o) in acc.iter_mut().zip(out.iter()) {
        if let [v0, v1] = S::as_simd_f32s(o).0 {
            *a = [*v0, *v1];
        }
    }
    for (w, xs) in weights.chunks_exact(W::WIDTH).zip(tile.chunks_exact(TILE)) {
        if let (Some((w0, w1)), Ok(xs)) = (W::load(simd, w), <&[f32; TILE]>::try_from(xs)) {
            for (a, x) in acc.iter_mut().zip(xs) {
                let x = simd.splat_f32s(*x);
                a[0] = simd.mul_add_f32s(x, w0, a[0]);
                a[1] = simd.mul_add_f32s(x, w1, a[1]);
            }
        }
    }
    for (o, a) in out.iter_mut().zip(&acc) {
        if let [v0, v1] = S::as_mut_simd_f32s(o).0 {
            *v0 = a[0];
            *v1 = a[1];
        }
    }
}

/// The same product without SIMD (CPUs without 8-lane vectors).
fn project_scalar<W: PanelRow>(job: Project<'_, W>) {
    let m = job.width();
    let Project {
        packed,
        rows,
        inputs: k,
        panels,
        bias,
        y,
    } = job;
    let mut lane = [0.0f32; PANEL];
    for t in 0..rows {
        let tile = &packed[(t / TILE) * TILE * k..(t / TILE + 1) * TILE * k];
        for (p, panel) in panels.chunks_exact(k * W::WIDTH).enumerate() {
            let mut acc = [0.0f32; PANEL];
            for (row, xs) in panel.chunks_exact(W::WIDTH).zip(tile.chunks_exact(TILE)) {
                W::unpack(row, &mut lane);
                let v = xs[t % TILE];
                for (a, w) in acc.iter_mut().zip(&lane) {
                    *a += v * w;
                }
            }
            for (j, a) in acc.iter().enumerate() {
                y[t * m + p * PANEL + j] = a + bias[p * PANEL + j];
            }
        }
    }
}

/// Scaled dot-product attention of every head over every token (no mask:
/// one sequence, no padding).
struct Attend<'a> {
    qkv: &'a [f32],
    rows: usize,
    hidden: usize,
    heads: usize,
    context: &'a mut [f32],
    scores: &'a mut [f32],
}

impl WithSimd for Attend<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Attend {
            qkv,
            rows,
            hidden: h,
            heads,
            context,
            scores,
        } = self;
        let d = h / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let stride = 3 * h;
        for head in 0..heads {
            let (q0, k0, v0) = (head * d, h + head * d, 2 * h + head * d);
            for t in 0..rows {
                let q = &qkv[t * stride + q0..t * stride + q0 + d];
                let mut max = f32::NEG_INFINITY;
                for (s, score) in scores.iter_mut().enumerate().take(rows) {
                    let k = &qkv[s * stride + k0..s * stride + k0 + d];
                    *score = dot(simd, q, k) * scale;
                    max = max.max(*score);
                }
                let mut sum = 0.0;
                for score in scores.iter_mut().take(rows) {
                    *score = (*score - max).exp();
                    sum += *score;
                }
                let out = &mut context[t * h + head * d..t * h + head * d + d];
                out.fill(0.0);
                for (s, score) in scores.iter().enumerate().take(rows) {
                    let v = &qkv[s * stride + v0..s * stride + v0 + d];
                    axpy(simd, score / sum, v, out);
                }
            }
        }
    }
}

#[inline(always)]
fn dot<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let (av, at) = S::as_simd_f32s(a);
    let (bv, bt) = S::as_simd_f32s(b);
    let mut acc = simd.splat_f32s(0.0);
    for (x, y) in av.iter().zip(bv) {
        acc = simd.mul_add_f32s(*x, *y, acc);
    }
    simd.reduce_sum_f32s(acc) + at.iter().zip(bt).map(|(x, y)| x * y).sum::<f32>()
}

/// `y += alpha x`.
#[inline(always)]
fn axpy<S: Simd>(simd: S, alpha: f32, x: &[f32], y: &mut [f32]) {
    let a = simd.splat_f32s(alpha);
    let (xv, xt) = S::as_simd_f32s(x);
    let (yv, yt) = S::as_mut_simd_f32s(y);
    for (o, v) in yv.iter_mut().zip(xv) {
        *o = simd.mul_add_f32s(a, *v, *o);
    }
    for (o, v) in yt.iter_mut().zip(xt) {
        *o += alpha * v;
    }
}

#[cfg(test)]
mod tests;
