"""Minimal, fast GGUF reading/writing.

The `gguf` package's GGUFReader takes ~3 s to open a SmolLM2 file (it turns
each of the ~100k tokenizer strings into numpy objects) and its writer
re-packs every metadata value; a training run opens and writes GGUFs several
times, so this module parses the file layout itself:

- metadata values are kept as raw bytes and copied verbatim when writing;
  scalars and strings are decoded, arrays only on demand;
- tensor data is memory-mapped;
- `gguf` (pure numpy, 0.19.0) is only used for its dequantization kernels.

Functions:
- `GgufFile(path)`: header, metadata, tensor infos, tensor data views.
- `dequantize_to_f32(src, dst)`: all-F32 copy of a GGUF (training needs
  writable F32 weights), streamed tensor by tensor.
- `write_f32_gguf(dst, ref, override, extra_kv)`: a GGUF with `ref`'s metadata
  and tensor list, tensor data from `override` (trained tensors read out of
  llama.cpp's memory) or from `ref`.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
from dataclasses import dataclass
from typing import Callable

import numpy as np

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGUF value types
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(13)
_SCALAR = {
    T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h", T_UINT32: "<I", T_INT32: "<i",
    T_FLOAT32: "<f", T_BOOL: "<?", T_UINT64: "<Q", T_INT64: "<q", T_FLOAT64: "<d",
}
_SCALAR_SIZE = {k: struct.calcsize(v) for k, v in _SCALAR.items()}

GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_BF16 = 30

# Keys never copied into a rewritten F32 file (they describe the old tensors);
# general.alignment is dropped because the writer uses the default alignment.
_DROP_KEYS = {"general.file_type", "general.quantization_version", "general.alignment"}


class GgufError(Exception):
    pass


@dataclass
class KV:
    vtype: int
    raw: bytes  # the encoded value (without the key and the type tag)
    value: object  # decoded scalar/string; for arrays: (elem_type, count)


@dataclass
class TensorInfo:
    name: str
    ne: tuple[int, ...]  # ggml order: ne[0] is the row length
    ggml_type: int
    offset: int  # relative to the data section
    nbytes: int

    @property
    def np_shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.ne))

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.ne:
            n *= d
        return n


def _type_sizes(ggml_type: int) -> tuple[int, int]:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        return GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError) as e:
        raise GgufError(f"unknown ggml tensor type {ggml_type}") from e


class GgufFile:
    """Read-only view of a GGUF file (v2/v3, little-endian)."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._f = open(path, "rb")
            self._mm = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as e:
            raise GgufError(f"{path}: cannot open ({e})") from e
        try:
            self._parse()
        except GgufError:
            self.close()
            raise
        except (struct.error, IndexError, UnicodeDecodeError, OverflowError, MemoryError) as e:
            self.close()
            raise GgufError(f"{path}: not a valid GGUF file ({type(e).__name__}: {e})") from e

    # -- parsing
    def _parse(self) -> None:
        mm = self._mm
        if len(mm) < 24 or mm[:4] != GGUF_MAGIC:
            raise GgufError(f"{self.path}: not a GGUF file (bad magic)")
        version, n_tensors, n_kv = struct.unpack_from("<IQQ", mm, 4)
        if version not in (2, 3):
            raise GgufError(f"{self.path}: unsupported GGUF version {version}")
        if n_kv > 1_000_000 or n_tensors > 1_000_000:
            raise GgufError(f"{self.path}: implausible header (n_kv={n_kv}, n_tensors={n_tensors})")
        self.version = version
        pos = 24
        self.kv: dict[str, KV] = {}
        for _ in range(n_kv):
            key, pos = self._str(pos)
            (vtype,) = struct.unpack_from("<I", mm, pos)
            pos += 4
            start = pos
            value, pos = self._value(vtype, pos)
            self.kv[key] = KV(vtype, bytes(mm[start:pos]), value)
        self.tensors: list[TensorInfo] = []
        for _ in range(n_tensors):
            name, pos = self._str(pos)
            (n_dims,) = struct.unpack_from("<I", mm, pos)
            pos += 4
            if n_dims > 8:
                raise GgufError(f"{self.path}: tensor {name} has {n_dims} dimensions")
            ne = struct.unpack_from(f"<{n_dims}Q", mm, pos)
            pos += 8 * n_dims
            ggml_type, offset = struct.unpack_from("<IQ", mm, pos)
            pos += 12
            block, tsize = _type_sizes(ggml_type)
            n = 1
            for d in ne:
                n *= d
            if ne and ne[0] % block:
                raise GgufError(f"{self.path}: tensor {name} row length {ne[0]} is not a multiple of {block}")
            self.tensors.append(TensorInfo(name, tuple(int(x) for x in ne), ggml_type, offset, n // block * tsize))
        align = self.kv.get("general.alignment")
        self.alignment = int(align.value) if align and isinstance(align.value, int) and align.value > 0 else DEFAULT_ALIGNMENT
        self.data_start = -(-pos // self.alignment) * self.alignment
        for t in self.tensors:
            if self.data_start + t.offset + t.nbytes > len(mm):
                raise GgufError(f"{self.path}: truncated (tensor {t.name} lies beyond the end of the file)")
        self.by_name = {t.name: t for t in self.tensors}

    def _str(self, pos: int) -> tuple[str, int]:
        (n,) = struct.unpack_from("<Q", self._mm, pos)
        pos += 8
        if pos + n > len(self._mm):
            raise GgufError(f"{self.path}: truncated string")
        return self._mm[pos : pos + n].decode("utf-8"), pos + n

    def _skip_str(self, pos: int) -> int:
        (n,) = struct.unpack_from("<Q", self._mm, pos)
        return pos + 8 + n

    def _value(self, vtype: int, pos: int):
        if vtype in _SCALAR:
            (v,) = struct.unpack_from(_SCALAR[vtype], self._mm, pos)
            return v, pos + _SCALAR_SIZE[vtype]
        if vtype == T_STRING:
            return self._str(pos)
        if vtype == T_ARRAY:
            etype, count = struct.unpack_from("<IQ", self._mm, pos)
            pos += 12
            if etype in _SCALAR:
                pos += _SCALAR_SIZE[etype] * count
            elif etype == T_STRING:
                for _ in range(count):
                    pos = self._skip_str(pos)
            elif etype == T_ARRAY:
                for _ in range(count):
                    _, pos = self._value(T_ARRAY, pos)
            else:
                raise GgufError(f"{self.path}: unknown array element type {etype}")
            if pos > len(self._mm):
                raise GgufError(f"{self.path}: truncated array")
            return (etype, count), pos
        raise GgufError(f"{self.path}: unknown metadata value type {vtype}")

    # -- accessors
    def get(self, key: str, default=None):
        kv = self.kv.get(key)
        if kv is None or kv.vtype == T_ARRAY:
            return default
        return kv.value

    def string_array(self, key: str) -> list[str] | None:
        kv = self.kv.get(key)
        if kv is None or kv.vtype != T_ARRAY or kv.value[0] != T_STRING:
            return None
        raw, pos, out = kv.raw, 12, []
        for _ in range(kv.value[1]):
            (n,) = struct.unpack_from("<Q", raw, pos)
            out.append(raw[pos + 8 : pos + 8 + n].decode("utf-8", "replace"))
            pos += 8 + n
        return out

    def raw_tensor(self, t: TensorInfo) -> np.ndarray:
        """The tensor's bytes as a read-only uint8 view."""
        start = self.data_start + t.offset
        return np.frombuffer(self._mm, dtype=np.uint8, count=t.nbytes, offset=start)

    def tensor_f32(self, t: TensorInfo) -> np.ndarray:
        """The tensor as float32 in numpy shape (dequantized if needed)."""
        raw = self.raw_tensor(t)
        shape = t.np_shape
        if t.ggml_type == GGML_TYPE_F32:
            return raw.view(np.float32).reshape(shape)
        if t.ggml_type == GGML_TYPE_F16:
            return raw.view(np.float16).astype(np.float32).reshape(shape)
        from gguf import quants
        from gguf.constants import GGMLQuantizationType

        block, tsize = _type_sizes(t.ggml_type)
        rows = t.n_elements // t.ne[0] if t.ne else 1
        data = raw.reshape(rows, (t.ne[0] // block) * tsize)
        try:
            arr = quants.dequantize(data, GGMLQuantizationType(t.ggml_type))
        except NotImplementedError as e:
            raise GgufError(f"tensor {t.name}: cannot dequantize type {GGMLQuantizationType(t.ggml_type).name}") from e
        return np.ascontiguousarray(arr, dtype=np.float32).reshape(shape)

    @property
    def all_f32(self) -> bool:
        return all(t.ggml_type == GGML_TYPE_F32 for t in self.tensors)

    def close(self) -> None:
        try:
            self._mm.close()
        except Exception:
            pass
        try:
            self._f.close()
        except Exception:
            pass


@dataclass
class ModelInfo:
    path: str
    architecture: str
    block_count: int
    context_length: int
    embedding_length: int
    chat_template: str | None
    bos_token: str
    eos_token: str
    vocab_size: int
    all_f32: bool
    n_tensors: int
    kv: dict


def inspect(path: str, g: GgufFile | None = None) -> ModelInfo:
    own = g is None
    g = g or GgufFile(path)
    try:
        arch = g.get("general.architecture")
        if not isinstance(arch, str):
            raise GgufError(f"{path}: no general.architecture")
        blocks = g.get(f"{arch}.block_count")
        if not isinstance(blocks, int) or blocks <= 0:
            raise GgufError(f"{path}: no {arch}.block_count")
        tokens = g.string_array("tokenizer.ggml.tokens") or []

        def tok(key):
            i = g.get(key)
            return tokens[i] if isinstance(i, int) and 0 <= i < len(tokens) else ""

        tpl = g.get("tokenizer.chat_template")
        return ModelInfo(
            path=path,
            architecture=arch,
            block_count=int(blocks),
            context_length=int(g.get(f"{arch}.context_length", 0) or 0),
            embedding_length=int(g.get(f"{arch}.embedding_length", 0) or 0),
            chat_template=tpl if isinstance(tpl, str) and tpl.strip() else None,
            bos_token=tok("tokenizer.ggml.bos_token_id"),
            eos_token=tok("tokenizer.ggml.eos_token_id"),
            vocab_size=len(tokens),
            all_f32=g.all_f32,
            n_tensors=len(g.tensors),
            kv={k: v.value for k, v in g.kv.items() if v.vtype != T_ARRAY},
        )
    finally:
        if own:
            g.close()


def file_sha256(path: str, chunk: int = 8 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# ------------------------------------------------------------------ writing


def _enc_str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def encode_kv(value, vtype: int) -> bytes:
    """Encode a scalar or string metadata value."""
    if vtype == T_STRING:
        return _enc_str(str(value))
    if vtype in _SCALAR:
        return struct.pack(_SCALAR[vtype], value)
    raise GgufError(f"cannot encode metadata type {vtype}")


def _write_f32(
    dst: str,
    ref: GgufFile,
    get_data: Callable[[TensorInfo], np.ndarray],
    extra_kv: dict[str, tuple[object, int]] | None,
    should_stop: Callable[[], bool] | None,
) -> None:
    extra = dict(extra_kv or {})
    extra["general.file_type"] = (0, T_UINT32)  # LLAMA_FTYPE_ALL_F32
    kvs = [(k, v.vtype, v.raw) for k, v in ref.kv.items() if k not in _DROP_KEYS and k not in extra]
    kvs += [(k, vt, encode_kv(val, vt)) for k, (val, vt) in extra.items()]

    align = DEFAULT_ALIGNMENT
    infos = bytearray()
    offset = 0
    layout = []
    for t in ref.tensors:
        nbytes = t.n_elements * 4
        infos += _enc_str(t.name) + struct.pack("<I", len(t.ne)) + struct.pack(f"<{len(t.ne)}Q", *t.ne)
        infos += struct.pack("<IQ", GGML_TYPE_F32, offset)
        layout.append((t, offset, nbytes))
        offset += -(-nbytes // align) * align

    tmp = f"{dst}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(GGUF_MAGIC + struct.pack("<IQQ", 3, len(ref.tensors), len(kvs)))
            for k, vt, raw in kvs:
                f.write(_enc_str(k) + struct.pack("<I", vt) + raw)
            f.write(infos)
            pad = -f.tell() % align
            f.write(b"\0" * pad)
            data_start = f.tell()
            for t, off, nbytes in layout:
                if should_stop is not None and should_stop():
                    raise InterruptedError("stopped")
                arr = get_data(t)
                if arr.dtype != np.float32 or arr.nbytes != nbytes:
                    raise GgufError(f"tensor {t.name}: got {arr.dtype}{arr.shape}, expected float32{t.np_shape}")
                f.write(b"\0" * (data_start + off - f.tell()))
                f.write(memoryview(np.ascontiguousarray(arr)).cast("B"))
            f.write(b"\0" * (-f.tell() % align))
            f.flush()
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def dequantize_to_f32(src: str, dst: str, should_stop: Callable[[], bool] | None = None) -> None:
    """Write an all-F32 copy of `src` at `dst` (atomically: tmp + rename)."""
    g = GgufFile(src)
    try:
        _write_f32(dst, g, g.tensor_f32, None, should_stop)
    finally:
        g.close()


def write_f32_gguf(
    dst: str,
    ref: GgufFile,
    override: Callable[[TensorInfo], np.ndarray | None],
    extra_kv: dict[str, tuple[object, int]] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """An all-F32 GGUF with `ref`'s metadata (copied byte for byte, plus
    `extra_kv`) and tensor list; data from `override(tensor)` or, where that
    returns None, from `ref`.  Atomic (tmp + rename)."""

    def get(t: TensorInfo):
        arr = override(t)
        return ref.tensor_f32(t) if arr is None else arr

    _write_f32(dst, ref, get, extra_kv, should_stop)
