//! Reading `.safetensors` files: the model's tensors, and a LoRA adapter's
//! merged into them.

use crate::{EncoderError, weights_err};
use std::collections::HashMap;

/// The tensors of a `.safetensors` file: an 8-byte little-endian header
/// length, a JSON header naming each tensor's dtype, shape and byte range,
/// then the data.
pub(crate) struct Tensors<'a> {
    entries: HashMap<String, (String, Vec<usize>, usize, usize)>,
    data: &'a [u8],
}

impl<'a> Tensors<'a> {
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, EncoderError> {
        let len = bytes
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| weights_err("safetensors: no header length"))?;
        let end = len
            .checked_add(8)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| weights_err("safetensors: header past the end"))?;
        let header: HashMap<String, serde_json::Value> =
            serde_json::from_slice(&bytes[8..end]).map_err(weights_err)?;
        let mut entries = HashMap::new();
        for (name, info) in header {
            if name == "__metadata__" {
                continue;
            }
            let dtype = info.get("dtype").and_then(serde_json::Value::as_str);
            let shape: Option<Vec<usize>> = info.get("shape").and_then(|s| {
                s.as_array()?
                    .iter()
                    .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                    .collect()
            });
            let offsets: Option<Vec<usize>> = info.get("data_offsets").and_then(|s| {
                s.as_array()?
                    .iter()
                    .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                    .collect()
            });
            match (dtype, shape, offsets.as_deref()) {
                (Some(dtype), Some(shape), Some([from, to])) if from <= to => {
                    entries.insert(name, (dtype.to_string(), shape, *from, *to));
                }
                _ => return Err(weights_err(format!("safetensors: {name}: malformed entry"))),
            }
        }
        Ok(Self {
            entries,
            data: &bytes[end..],
        })
    }

    /// The named tensor's entry, with or without the `bert.` prefix.
    fn entry(&self, name: &str) -> Option<&(String, Vec<usize>, usize, usize)> {
        self.entries
            .get(name)
            .or_else(|| self.entries.get(&format!("bert.{name}")))
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    /// Adds the adapter's `B A` for the linear layer `name` to `weight`
    /// (`[outputs, inputs]`, row-major); whether it had one.
    pub(crate) fn merge_lora(
        &self,
        name: &str,
        weight: &mut [f32],
        outputs: usize,
        inputs: usize,
    ) -> Result<bool, EncoderError> {
        let (an, bn) = (format!("{name}.lora_a"), format!("{name}.lora_b"));
        let rank = match (self.entry(&an), self.has(&bn)) {
            (None, false) => return Ok(false),
            (Some((_, shape, _, _)), true) if shape.len() == 2 && shape[0] > 0 => shape[0],
            _ => {
                return Err(weights_err(format!(
                    "adapter: {name}: lora_a and lora_b go together"
                )));
            }
        };
        let a = self.f32s(&an, &[rank, inputs])?;
        let b = self.f32s(&bn, &[outputs, rank])?;
        for (o, row) in weight.chunks_exact_mut(inputs).enumerate() {
            for (k, bk) in b[o * rank..(o + 1) * rank].iter().enumerate() {
                row.iter_mut()
                    .zip(&a[k * inputs..(k + 1) * inputs])
                    .for_each(|(w, a)| *w += bk * a);
            }
        }
        Ok(true)
    }

    /// The named f32 tensor, which must have `shape`.
    pub(crate) fn f32s(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EncoderError> {
        let (dtype, found, from, to) = self
            .entry(name)
            .ok_or_else(|| weights_err(format!("safetensors: no tensor {name}")))?;
        if dtype != "F32" || found.as_slice() != shape {
            return Err(weights_err(format!(
                "safetensors: {name} is {dtype} {found:?}, expected F32 {shape:?}"
            )));
        }
        let size = shape.iter().try_fold(4usize, |a, d| a.checked_mul(*d));
        let bytes = self
            .data
            .get(*from..*to)
            .filter(|b| Some(b.len()) == size)
            .ok_or_else(|| weights_err(format!("safetensors: {name}: bad byte range")))?;
        let values: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(weights_err(format!("safetensors: {name}: not finite")));
        }
        Ok(values)
    }
}

/// The named f32 tensor of a `.safetensors` file, which must have `shape`
/// (a classifier head kept beside an adapter's tensors).
pub fn read_f32(safetensors: &[u8], name: &str, shape: &[usize]) -> Result<Vec<f32>, EncoderError> {
    Tensors::parse(safetensors)?.f32s(name, shape)
}
