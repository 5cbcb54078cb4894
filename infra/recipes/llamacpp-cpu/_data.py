"""Training data: JSONL validation, chat-template rendering, window packing."""

from __future__ import annotations

import json
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROLES = ("system", "user", "assistant")


class DataError(Exception):
    """Invalid training/validation data (the job fails with exit code 2)."""


def _content_text(content, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: only text is usable here
        parts = []
        for i, p in enumerate(content):
            if not isinstance(p, dict) or p.get("type") != "text" or not isinstance(p.get("text"), str):
                raise DataError(f"{where}: content part {i} is not a {{\"type\":\"text\",\"text\":...}} object")
            parts.append(p["text"])
        return "".join(parts)
    raise DataError(f"{where}: \"content\" must be a string")


def load_chats(path: str, label: str, max_bytes: int = 1 << 30) -> list[tuple[int, list[dict]]]:
    """Read an OpenAI chat-format JSONL file into (line number, messages)
    pairs; every problem names the line."""
    chats: list[tuple[int, list[dict]]] = []
    try:
        f = open(path, "rb")
    except FileNotFoundError as e:
        raise DataError(f"{label} file not found: {path}") from e
    except OSError as e:
        raise DataError(f"{label} file cannot be opened: {path}: {e}") from e
    total = 0
    with f:
        for lineno, raw in enumerate(f, start=1):
            total += len(raw)
            if total > max_bytes:
                raise DataError(f"{label} file {path} is larger than {max_bytes} bytes")
            where = f"{label} file {path} line {lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{where}: not UTF-8 ({e})") from e
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from e
            if not isinstance(obj, dict):
                raise DataError(f"{where}: expected a JSON object with \"messages\"")
            msgs = obj.get("messages")
            if not isinstance(msgs, list) or not msgs:
                raise DataError(f"{where}: \"messages\" must be a non-empty array")
            out = []
            for i, m in enumerate(msgs):
                mw = f"{where}: messages[{i}]"
                if not isinstance(m, dict):
                    raise DataError(f"{mw} is not an object")
                role = m.get("role")
                if role not in ROLES:
                    raise DataError(f"{mw}: role must be one of {', '.join(ROLES)} (got {role!r})")
                if "content" not in m or m["content"] is None:
                    raise DataError(f"{mw}: missing \"content\"")
                text = _content_text(m["content"], mw)
                out.append({"role": role, "content": text})
            if not any(m["role"] == "assistant" for m in out):
                raise DataError(f"{where}: a chat needs at least one assistant message")
            chats.append((lineno, out))
    if not chats:
        raise DataError(f"{label} file {path} holds no chats")
    return chats


class _IgnoreGenerationTags(jinja2.ext.Extension):
    """Pass-through for Hugging Face's {% generation %} tag (as llama-cpp-python does)."""

    tags = {"generation"}

    def parse(self, parser):
        parser.stream.skip(1)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


class ChatRenderer:
    """Renders chats exactly as llama-cpp-python's Jinja2ChatFormatter does at
    serving time (same environment options and template variables), so the
    model is trained on the prompt format it will be served with."""

    def __init__(self, template: str, bos_token: str, eos_token: str):
        env = ImmutableSandboxedEnvironment(
            loader=jinja2.BaseLoader(),
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[_IgnoreGenerationTags, jinja2.ext.loopcontrols],
        )
        env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )
        try:
            self._tpl = env.from_string(template)
        except jinja2.TemplateError as e:
            raise DataError(f"the model's chat template does not parse: {e}") from e
        self.bos = bos_token
        self.eos = eos_token

    def render(self, messages: list[dict], where: str) -> str:
        def raise_exception(msg):
            raise DataError(f"{where}: chat template refused the chat: {msg}")

        try:
            return self._tpl.render(
                messages=messages,
                bos_token=self.bos,
                eos_token=self.eos,
                add_generation_prompt=False,
                raise_exception=raise_exception,
                strftime_now=lambda fmt: datetime.now().strftime(fmt),
            )
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"{where}: chat template failed: {type(e).__name__}: {e}") from e


def pack_windows(token_lists: list[list[int]], n_ctx: int) -> list[tuple[list[int], list[int]]]:
    """Concatenate the chats and cut the stream into windows of n_ctx inputs
    with next-token labels.  The tail is completed by wrapping around to the
    start of the stream so that no chat is dropped; a stream shorter than one
    window is repeated."""
    stream = [t for ts in token_lists for t in ts]
    if len(stream) < 2:
        return []
    n_windows = max(1, -(-(len(stream) - 1) // n_ctx))  # ceil((len-1)/n_ctx)
    need = n_windows * n_ctx + 1
    ext = list(stream)
    while len(ext) < need:
        ext.extend(stream[: need - len(ext)])
    out = []
    for w in range(n_windows):
        s = w * n_ctx
        out.append((ext[s : s + n_ctx], ext[s + 1 : s + n_ctx + 1]))
    return out
