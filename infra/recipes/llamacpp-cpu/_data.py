"""Training data: JSONL validation, chat-template rendering, window packing."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

_COMMON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common")
if _COMMON not in sys.path:
    sys.path.insert(0, _COMMON)

from recipe_common import CHAT_ROLES as ROLES, DataError, chat_messages, line_where, message_content  # noqa: E402
from recipe_common import read_chat_lines  # noqa: E402


def load_chats(path: str, label: str, max_bytes: int = 1 << 30) -> list[tuple[int, list[dict]]]:
    """Read an OpenAI chat-format JSONL file into (line number, messages)
    pairs; every problem names the line.  A byte order mark is not accepted
    (line 1 is then invalid JSON); a file that cannot be opened is invalid data."""
    chats: list[tuple[int, list[dict]]] = []
    for lineno, obj in read_chat_lines(path, label, max_bytes=max_bytes, strip_bom=False,
                                       open_errors_are_data_errors=True):
        where = line_where(label, path, lineno)
        out = []
        for mw, m in chat_messages(obj, where):
            role = m.get("role")
            if role not in ROLES:
                raise DataError(f"{mw}: role must be one of {', '.join(ROLES)} (got {role!r})")
            out.append({"role": role, "content": message_content(m, mw)})
        if not any(m["role"] == "assistant" for m in out):
            raise DataError(f"{where}: a chat needs at least one assistant message")
        chats.append((lineno, out))
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

    def render(self, messages: list[dict], where: str, add_generation_prompt: bool = False) -> str:
        def raise_exception(msg):
            raise DataError(f"{where}: chat template refused the chat: {msg}")

        try:
            return self._tpl.render(
                messages=messages,
                bos_token=self.bos,
                eos_token=self.eos,
                add_generation_prompt=add_generation_prompt,
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
