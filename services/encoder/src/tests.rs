use super::*;

/// Deterministic pseudo-random floats in [-0.5, 0.5).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

/// A tensor: name, shape, values.
type Tensor = (String, Vec<usize>, Vec<f32>);

/// A small BERT's tensors and its config.
fn tiny_model(seed: u64) -> (Config, Vec<Tensor>) {
    let config = Config {
        hidden: 32,
        heads: 4,
        layers: 2,
        intermediate: 64,
        max_positions: 20,
        vocab: 50,
        type_vocab: 2,
        eps: 1e-12,
    };
    let mut rng = Lcg(seed);
    let (h, i) = (config.hidden, config.intermediate);
    let mut tensors = vec![
        (
            "embeddings.word_embeddings.weight".to_string(),
            vec![config.vocab, h],
        ),
        (
            "embeddings.position_embeddings.weight".to_string(),
            vec![config.max_positions, h],
        ),
        (
            "embeddings.token_type_embeddings.weight".to_string(),
            vec![2, h],
        ),
        ("embeddings.LayerNorm.weight".to_string(), vec![h]),
        ("embeddings.LayerNorm.bias".to_string(), vec![h]),
    ];
    for l in 0..config.layers {
        let p = format!("encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", i, h),
            ("output.dense", h, i),
        ] {
            tensors.push((format!("{p}.{name}.weight"), vec![out, inp]));
            tensors.push((format!("{p}.{name}.bias"), vec![out]));
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            tensors.push((format!("{p}.{name}.weight"), vec![h]));
            tensors.push((format!("{p}.{name}.bias"), vec![h]));
        }
    }
    let tensors = tensors
        .into_iter()
        .map(|(name, shape)| {
            let n = shape.iter().product();
            let mut values = rng.vec(n);
            if name.ends_with("LayerNorm.weight") {
                values.iter_mut().for_each(|v| *v += 1.0);
            }
            (name, shape, values)
        })
        .collect();
    (config, tensors)
}

fn safetensors(tensors: &[Tensor]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let from = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [from, data.len()]}),
        );
    }
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let header = serde_json::to_vec(&header).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(data);
    out
}

/// The textbook forward pass, from the unpacked tensors.
fn reference(config: &Config, tensors: &[Tensor], ids: &[u32]) -> Vec<f32> {
    reference_typed(config, tensors, ids, &vec![0; ids.len()])
}

/// [`reference`] with each token's type.
fn reference_typed(config: &Config, tensors: &[Tensor], ids: &[u32], types: &[u32]) -> Vec<f32> {
    let get = |name: &str| -> &Vec<f32> { &tensors.iter().find(|t| t.0 == name).unwrap().2 };
    let (h, n) = (config.hidden, ids.len());
    let linear = |x: &[f32], name: &str, outputs: usize| -> Vec<f32> {
        let (w, b) = (get(&format!("{name}.weight")), get(&format!("{name}.bias")));
        let inputs = w.len() / outputs;
        let mut y = vec![0.0; n * outputs];
        for t in 0..n {
            for o in 0..outputs {
                let mut s = b[o] as f64;
                for i in 0..inputs {
                    s += x[t * inputs + i] as f64 * w[o * inputs + i] as f64;
                }
                y[t * outputs + o] = s as f32;
            }
        }
        y
    };
    let norm = |x: &mut Vec<f32>, name: &str| {
        let (w, b) = (get(&format!("{name}.weight")), get(&format!("{name}.bias")));
        for row in x.chunks_mut(h) {
            let mean = row.iter().map(|v| *v as f64).sum::<f64>() / h as f64;
            let var = row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / h as f64;
            for (j, v) in row.iter_mut().enumerate() {
                *v = (((*v as f64 - mean) / (var + 1e-12).sqrt()) as f32) * w[j] + b[j];
            }
        }
    };
    let mut x = vec![0.0; n * h];
    for (t, id) in ids.iter().enumerate() {
        for j in 0..h {
            x[t * h + j] = get("embeddings.word_embeddings.weight")[*id as usize * h + j]
                + get("embeddings.position_embeddings.weight")[t * h + j]
                + get("embeddings.token_type_embeddings.weight")[types[t] as usize * h + j];
        }
    }
    norm(&mut x, "embeddings.LayerNorm");
    let d = h / config.heads;
    for l in 0..config.layers {
        let p = format!("encoder.layer.{l}");
        let q = linear(&x, &format!("{p}.attention.self.query"), h);
        let k = linear(&x, &format!("{p}.attention.self.key"), h);
        let v = linear(&x, &format!("{p}.attention.self.value"), h);
        let mut ctx = vec![0.0f32; n * h];
        for head in 0..config.heads {
            for t in 0..n {
                let scores: Vec<f64> = (0..n)
                    .map(|s| {
                        (0..d)
                            .map(|e| {
                                q[t * h + head * d + e] as f64 * k[s * h + head * d + e] as f64
                            })
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                for e in 0..d {
                    ctx[t * h + head * d + e] = (0..n)
                        .map(|s| exps[s] / sum * v[s * h + head * d + e] as f64)
                        .sum::<f64>() as f32;
                }
            }
        }
        let mut a = linear(&ctx, &format!("{p}.attention.output.dense"), h);
        a.iter_mut().zip(&x).for_each(|(a, x)| *a += x);
        norm(&mut a, &format!("{p}.attention.output.LayerNorm"));
        let mut inner = linear(&a, &format!("{p}.intermediate.dense"), config.intermediate);
        inner.iter_mut().for_each(|v| {
            let z = *v as f64;
            *v = (0.5 * z * (1.0 + libm::erf(z / 2f64.sqrt()))) as f32;
        });
        let mut o = linear(&inner, &format!("{p}.output.dense"), h);
        o.iter_mut().zip(&a).for_each(|(o, a)| *o += a);
        norm(&mut o, &format!("{p}.output.LayerNorm"));
        x = o;
    }
    x
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn the_forward_pass_is_the_textbook_one_at_every_length() {
    let (config, tensors) = tiny_model(7);
    let bytes = safetensors(&tensors);
    let one = Bert::load(config, &bytes, Precision::F32)
        .unwrap()
        .with_parallel(None);
    let two = Bert::load(config, &bytes, Precision::F32)
        .unwrap()
        .with_parallel(Some(1));
    // Every tile remainder (1 to 6 tokens) and several whole tiles, on one
    // thread and on two.
    for n in 1..=config.max_positions {
        let ids: Vec<u32> = (0..n as u32)
            .map(|t| (t * 7 + 3) % config.vocab as u32)
            .collect();
        let want = reference(&config, &tensors, &ids);
        for bert in [&one, &two] {
            let got = bert.forward(&ids).unwrap();
            let diff = max_diff(&got, &want);
            assert!(diff < 2e-4, "{n} tokens: largest difference {diff}");
        }
    }
}

#[test]
fn bf16_weights_are_the_rounded_model_exactly() {
    // The bf16 pass is the textbook pass of the model whose weights were
    // rounded to bfloat16 (biases and norms stay f32).
    let (config, tensors) = tiny_model(9);
    let rounded: Vec<_> = tensors
        .iter()
        .map(|(name, shape, values)| {
            let linear = name.starts_with("encoder.")
                && name.ends_with(".weight")
                && !name.contains("LayerNorm");
            let values = if linear {
                values
                    .iter()
                    .map(|v| f32::from_bits(bf16(*v) << 16))
                    .collect()
            } else {
                values.clone()
            };
            (name.clone(), shape.clone(), values)
        })
        .collect();
    let bytes = safetensors(&tensors);
    for parallel in [false, true] {
        let bert = Bert::load(config, &bytes, Precision::Bf16)
            .unwrap()
            .with_parallel(parallel.then_some(1));
        for n in [1, 5, 6, 7, 13, config.max_positions] {
            let ids: Vec<u32> = (0..n as u32)
                .map(|t| (t * 11 + 1) % config.vocab as u32)
                .collect();
            let diff = max_diff(
                &bert.forward(&ids).unwrap(),
                &reference(&config, &rounded, &ids),
            );
            assert!(diff < 2e-4, "{n} tokens: largest difference {diff}");
        }
    }
    // Rounding is to nearest, ties to even.
    assert_eq!(bf16(1.0), 0x3f80);
    assert_eq!(bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
    assert_eq!(bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
    assert_eq!(bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
}

#[test]
fn the_simd_and_scalar_products_agree() {
    let mut rng = Lcg(11);
    let (inputs, outputs) = (300, 48);
    let w = rng.vec(outputs * inputs);
    let b = rng.vec(outputs);
    let f32s = Linear::pack(&[(w.clone(), b.clone())], inputs, Precision::F32);
    let Weights::F32(panels) = &f32s.weights else {
        panic!("f32 weights")
    };
    for rows in 1..=13 {
        let x = rng.vec(rows * inputs);
        let packed = pack_tiles(&x, rows, inputs);
        let job = |y| Project {
            packed: &packed,
            rows,
            inputs,
            panels: panels.as_slice(),
            bias: &f32s.bias,
            y,
        };
        let mut simd = vec![0.0; rows * outputs];
        let mut scalar = vec![0.0; rows * outputs];
        Arch::new().dispatch(job(&mut simd));
        project_scalar(job(&mut scalar));
        let naive: Vec<f32> = (0..rows * outputs)
            .map(|at| {
                let (t, o) = (at / outputs, at % outputs);
                b[o] + (0..inputs)
                    .map(|i| x[t * inputs + i] * w[o * inputs + i])
                    .sum::<f32>()
            })
            .collect();
        assert!(max_diff(&simd, &naive) < 1e-5, "{rows} rows");
        assert!(max_diff(&scalar, &naive) < 1e-5, "{rows} rows");
    }
}

#[test]
fn erf_and_exp_are_accurate_over_the_range() {
    let mut worst = (0.0f64, 0.0f64);
    for i in -120_000..=120_000 {
        let x = i as f32 / 10_000.0;
        let erf = (erf(x) as f64 - libm::erf(x as f64)).abs();
        let gelu_err =
            (gelu(x) as f64 - 0.5 * x as f64 * (1.0 + libm::erf(x as f64 / 2f64.sqrt()))).abs();
        worst.0 = worst.0.max(erf);
        worst.1 = worst.1.max(gelu_err / (x as f64).abs().max(1.0));
        if x >= 0.0 {
            let want = (-(x as f64)).exp();
            let got = exp_neg(x) as f64;
            assert!(
                (got - want).abs() <= 4e-7 * want + 1e-38,
                "exp(-{x}) = {got}, want {want}"
            );
        }
    }
    assert!(worst.0 < 1e-6, "erf: largest error {}", worst.0);
    assert!(worst.1 < 1e-6, "gelu: largest relative error {}", worst.1);
    assert!(exp_neg(1e9) < 2e-38);
    assert!(erf(f32::INFINITY) == 1.0 && erf(f32::NEG_INFINITY) == -1.0);
}

#[test]
fn gelu_is_the_exact_one() {
    // x Φ(x) at a few points (Φ the standard normal CDF).
    for (x, want) in [
        (0.0f32, 0.0f32),
        (1.0, 0.841_344_7),
        (-1.0, -0.158_655_3),
        (3.0, 2.995_950_4),
    ] {
        assert!((gelu(x) - want).abs() < 1e-6, "gelu({x}) = {}", gelu(x));
    }
}

#[test]
fn bad_files_and_inputs_are_errors() {
    let (config, tensors) = tiny_model(3);
    let good = safetensors(&tensors);
    // Truncated, a header past the end, no header at all.
    assert!(Bert::load(config, &good[..good.len() - 4], Precision::F32).is_err());
    assert!(Bert::load(config, &u64::MAX.to_le_bytes(), Precision::F32).is_err());
    assert!(Bert::load(config, &[1, 2], Precision::F32).is_err());
    // A missing tensor, and a tensor of another shape.
    let missing: Vec<_> = tensors
        .iter()
        .filter(|t| !t.0.contains("layer.1.output.dense.bias"))
        .cloned()
        .collect();
    assert!(
        Bert::load(config, &safetensors(&missing), Precision::F32)
            .unwrap_err()
            .to_string()
            .contains("no tensor")
    );
    let mut reshaped = tensors.clone();
    reshaped[0].1 = vec![config.hidden, config.vocab];
    assert!(Bert::load(config, &safetensors(&reshaped), Precision::F32).is_err());

    // A NaN weight; a shape whose byte size overflows.
    let mut nan = tensors.clone();
    nan[7].2[3] = f32::NAN;
    assert!(
        Bert::load(config, &safetensors(&nan), Precision::Bf16)
            .unwrap_err()
            .to_string()
            .contains("not finite")
    );
    let mut huge = tensors.clone();
    let wide = Config {
        vocab: usize::MAX / 64,
        ..config
    };
    huge[0].1 = vec![wide.vocab, config.hidden];
    assert!(
        Bert::load(wide, &safetensors(&huge), Precision::F32)
            .unwrap_err()
            .to_string()
            .contains("bad byte range")
    );
    // A config built by hand is checked too, before anything is allocated.
    for bad in [
        Config { heads: 0, ..config },
        Config {
            hidden: 0,
            ..config
        },
        Config {
            hidden: 24,
            ..config
        },
        Config {
            layers: 1 << 40,
            ..config
        },
        Config {
            eps: f32::NAN,
            ..config
        },
    ] {
        assert!(Bert::load(bad, &good, Precision::F32).is_err(), "{bad:?}");
    }

    let bert = Bert::load(config, &good, Precision::F32).unwrap();
    assert!(bert.forward(&[]).is_err());
    assert!(bert.forward(&[config.vocab as u32]).is_err());
    assert!(bert.forward(&vec![1; config.max_positions + 1]).is_err());
    assert!(bert.forward(&vec![1; config.max_positions]).is_ok());
}

/// A LoRA adapter for `tensors`: `lora_a`/`lora_b` for the query and the
/// intermediate projection of every layer, a replaced layer norm, and a
/// head the encoder leaves alone; with the tensors it should give, merged
/// by hand.
fn tiny_adapter(config: &Config, tensors: &[Tensor], rank: usize) -> (Vec<Tensor>, Vec<Tensor>) {
    let mut rng = Lcg(11);
    let mut adapter = Vec::new();
    let mut merged = tensors.to_vec();
    for l in 0..config.layers {
        for name in ["attention.self.query", "intermediate.dense"] {
            let name = format!("encoder.layer.{l}.{name}");
            let weight = merged
                .iter_mut()
                .find(|t| t.0 == format!("{name}.weight"))
                .unwrap();
            let (outputs, inputs) = (weight.1[0], weight.1[1]);
            let a = rng.vec(rank * inputs);
            let b = rng.vec(outputs * rank);
            for o in 0..outputs {
                for i in 0..inputs {
                    weight.2[o * inputs + i] += (0..rank)
                        .map(|k| b[o * rank + k] * a[k * inputs + i])
                        .sum::<f32>();
                }
            }
            adapter.push((format!("{name}.lora_a"), vec![rank, inputs], a));
            adapter.push((format!("{name}.lora_b"), vec![outputs, rank], b));
        }
        let norm = format!("encoder.layer.{l}.output.LayerNorm.weight");
        let values = rng.vec(config.hidden);
        merged.iter_mut().find(|t| t.0 == norm).unwrap().2 = values.clone();
        adapter.push((norm, vec![config.hidden], values));
    }
    adapter.push((
        "head.weight".into(),
        vec![config.hidden],
        rng.vec(config.hidden),
    ));
    (adapter, merged)
}

#[test]
fn an_adapter_is_merged_and_pairs_of_sentences_are_typed() {
    let (config, tensors) = tiny_model(5);
    let (adapter, merged) = tiny_adapter(&config, &tensors, 3);
    let bytes = safetensors(&tensors);
    let bert = Bert::load_adapted(config, &bytes, Some(&safetensors(&adapter)), Precision::F32)
        .unwrap()
        .with_parallel(None);
    let plain = Bert::load(config, &bytes, Precision::F32).unwrap();
    for n in [1, 5, 13] {
        let ids: Vec<u32> = (0..n as u32)
            .map(|t| (t * 5 + 2) % config.vocab as u32)
            .collect();
        let types: Vec<u32> = (0..n).map(|t| u32::from(t >= n / 2)).collect();
        let want = reference_typed(&config, &merged, &ids, &types);
        let got = bert.forward_typed(&ids, Some(&types)).unwrap();
        assert!(max_diff(&got, &want) < 2e-4, "{n} tokens");
        // Type 0 throughout is the untyped pass; the adapter changes it.
        assert_eq!(
            bert.forward_typed(&ids, None).unwrap(),
            bert.forward(&ids).unwrap()
        );
        assert!(max_diff(&plain.forward(&ids).unwrap(), &bert.forward(&ids).unwrap()) > 1e-2);
    }
    // The head is the caller's to read.
    let head = read_f32(&safetensors(&adapter), "head.weight", &[config.hidden]).unwrap();
    assert_eq!(head, adapter.last().unwrap().2);

    // Types that do not fit, and adapters that do not.
    assert!(bert.forward_typed(&[1, 2], Some(&[0])).is_err());
    assert!(bert.forward_typed(&[1, 2], Some(&[0, 2])).is_err());
    let no_lora: Vec<_> = adapter
        .iter()
        .filter(|t| !t.0.contains("lora"))
        .cloned()
        .collect();
    let half: Vec<_> = adapter
        .iter()
        .filter(|t| !t.0.ends_with("lora_b"))
        .cloned()
        .collect();
    let mut wrong_rank = adapter.clone();
    wrong_rank[1].1 = vec![config.hidden, 2];
    for (bad, why) in [
        (no_lora, "no LoRA tensor"),
        (half, "go together"),
        (wrong_rank, "expected F32"),
    ] {
        let err = Bert::load_adapted(config, &bytes, Some(&safetensors(&bad)), Precision::F32)
            .unwrap_err()
            .to_string();
        assert!(err.contains(why), "{err}");
    }
}

#[test]
fn config_refuses_what_is_not_computed() {
    let base = serde_json::json!({
        "hidden_size": 384, "num_attention_heads": 12, "num_hidden_layers": 6,
        "intermediate_size": 1536, "max_position_embeddings": 512, "vocab_size": 30522,
        "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12
    });
    let config = Config::from_json(&serde_json::to_vec(&base).unwrap()).unwrap();
    assert_eq!((config.hidden, config.heads, config.layers), (384, 12, 6));
    for (key, value) in [
        ("hidden_act", serde_json::json!("relu")),
        ("position_embedding_type", serde_json::json!("relative_key")),
        ("hidden_size", serde_json::json!(100)),
        ("num_attention_heads", serde_json::json!(0)),
        ("vocab_size", serde_json::json!("many")),
        (
            "num_hidden_layers",
            serde_json::json!(100_000_000_000_000_000u64),
        ),
    ] {
        let mut v = base.clone();
        v[key] = value;
        assert!(
            Config::from_json(&serde_json::to_vec(&v).unwrap()).is_err(),
            "{key}"
        );
    }
}
