"""What the training recipes under infra/recipes/ share: the stdout protocol
writer, exit codes and the errors that carry them, the stop flag, spec.json
loading and field helpers, and the OpenAI chat-format JSONL reader.

Standard library only, so that every recipe (and `torch-peft --check-spec`,
which must not import torch) can use it.  A recipe puts this folder on
sys.path before importing it:

    HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(HERE, "..", "common"))
    from recipe_common import ...

What each recipe accepts (roles, content forms, spec fields and their ranges)
stays in the recipe; the helpers here only do what the recipes do alike, with
the same messages.
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass

# ---------------------------------------------------------------- exit codes

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2  # bad spec, data or combination: retrying cannot help
EXIT_RETRY = 75  # EX_TEMPFAIL: memory, I/O, a lost peer; another attempt may succeed
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class JobError(Exception):
    """Ends the job with `code` after an error message on the protocol."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidInput(JobError):
    """The job's input is wrong (exit 2)."""

    def __init__(self, message: str):
        super().__init__(EXIT_INVALID, message)


class RetryableError(JobError):
    """A failure another attempt may not meet (exit 75)."""

    def __init__(self, message: str):
        super().__init__(EXIT_RETRY, message)


def invalid(message: str) -> InvalidInput:
    return InvalidInput(message)


class DataError(Exception):
    """A training or validation file, or the chat template, refuses a chat
    (the recipe turns it into invalid input, exit 2)."""


class Terminated(Exception):
    """Raised at a step boundary after SIGTERM/SIGINT."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_exit_code(signum: int) -> int:
    return EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM


# The exceptions every recipe maps to an exit code the same way; see exit_code_for.
HANDLED_ERRORS = (JobError, Terminated, MemoryError)


def exit_code_for(ev: "Events", e: BaseException, *, stopped_note: str, memory_message: str) -> int:
    """Reports one of HANDLED_ERRORS on the protocol and returns its exit code:
    a JobError its own code, Terminated 143/130 ("stopped by SIGTERM at a step
    boundary" + stopped_note), MemoryError 75 (memory_message)."""
    if isinstance(e, JobError):
        ev.message("error", e.message)
        return e.code
    if isinstance(e, Terminated):
        ev.message("warn", f"stopped by {signal.Signals(e.signum).name} at a step boundary{stopped_note}")
        return signal_exit_code(e.signum)
    if isinstance(e, MemoryError):
        ev.message("error", memory_message)
        return EXIT_RETRY
    raise TypeError(f"exit_code_for does not handle {type(e).__name__}")


# ---------------------------------------------------------------- protocol


def clean(x):
    """JSON-safe copy: NaN/inf become null, tuples become lists."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    return x


def round_or_none(x, nd: int = 6):
    """x rounded to nd digits; None for None, non-numbers, NaN and inf."""
    if x is None:
        return None
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return round(x, nd) if math.isfinite(x) else None


class Events:
    """The protocol writer: one JSON object per line on the original stdout.
    fd 1 is pointed at stderr for the whole process, so that nothing else (C
    and C++ libraries, NCCL, stray prints) can reach the protocol stream.
    With enabled=False (the ranks other than global rank 0) nothing is
    written, but fd 1 is redirected all the same."""

    def __init__(self, enabled: bool = True):
        sys.stdout.flush()
        fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        if enabled:
            self._f = os.fdopen(fd, "w", encoding="utf-8", buffering=1)
        else:
            os.close(fd)
            self._f = None

    @property
    def enabled(self) -> bool:
        return self._f is not None

    def emit(self, obj: dict) -> None:
        if self._f is None:
            return
        try:
            self._f.write(json.dumps(clean(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n")
            self._f.flush()
        except BrokenPipeError:
            pass

    def message(self, level: str, text: str) -> None:
        """A `message` event, also written to stderr as `[level] text`."""
        sys.stderr.write(f"[{level}] {text}\n")
        sys.stderr.flush()
        self.emit({"type": "message", "level": level, "message": text})


class StopFlag:
    """SIGTERM/SIGINT only set a flag; the recipe stops at its next step
    boundary (check() raises Terminated).  Calling the flag tells whether a
    stop was asked for, so it can be passed as a `should_stop` callback.
    With announce=True the signal is also noted on stderr when it arrives."""

    def __init__(self, announce: bool = False):
        self.signum: int | None = None
        self._announce = announce

    def install(self) -> None:
        def handler(signum, _frame):
            if self.signum is None:
                self.signum = signum
                if self._announce:
                    sys.stderr.write(f"[warn] {signal.Signals(signum).name} received: stopping at the next step boundary\n")

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def requested(self) -> bool:
        return self.signum is not None

    __call__ = requested

    def check(self) -> None:
        if self.signum is not None:
            raise Terminated(self.signum)


# ---------------------------------------------------------------- spec.json


@dataclass
class JobSpec:
    """The fields every recipe's parsed spec has; each recipe's Spec dataclass
    extends it (construct it with keywords: the field order is the base's first)."""

    job_id: str
    attempt: int
    base_model: str
    training_file: str
    validation_file: str | None
    n_epochs: int
    learning_rate: float
    lr_scheduler: str
    weight_decay: float
    seed: int
    checkpoint_dir: str
    output_dir: str
    resume_from: dict | None


def is_int(v) -> bool:
    """An int that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def load_spec(path: str, kind: str = "fine_tune") -> dict:
    """spec.json as a dict: the file must exist, be JSON, be an object and
    have `kind` (default "fine_tune" when absent).  Anything else: exit 2."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            spec = json.load(f)
    except FileNotFoundError:
        raise invalid(f"spec file not found: {path}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise invalid(f"spec file {path} is not valid JSON: {e}")
    if not isinstance(spec, dict):
        raise invalid("spec must be a JSON object")
    got = spec.get("kind", kind)
    if got != kind:
        raise invalid(f"spec: unsupported kind {got!r} (only \"{kind}\")")
    return spec


def abs_path(obj: dict, key: str, required: bool, where: str = "spec", show_value: bool = False) -> str | None:
    """obj[key] as an absolute path; None when absent/null and not required.
    show_value adds `(got ...)` to the message about a non-string or empty value."""
    v = obj.get(key)
    if v is None:
        if required:
            raise invalid(f"{where}: \"{key}\" is required")
        return None
    if not isinstance(v, str) or not v.strip():
        raise invalid(f"{where}: \"{key}\" must be a non-empty path string" + (f" (got {v!r})" if show_value else ""))
    return os.path.abspath(v)


def existing_file(obj: dict, key: str, required: bool, where: str = "spec", show_value: bool = False) -> str | None:
    """abs_path of a file that must exist (`KEY not found: PATH` otherwise)."""
    path = abs_path(obj, key, required, where, show_value)
    if path is not None and not os.path.isfile(path):
        raise invalid(f"{key} not found: {path}")
    return path


def object_field(obj: dict, key: str, where: str = "spec") -> dict:
    """obj[key] as a dict; absent, null or empty means {}."""
    v = obj.get(key) or {}
    if not isinstance(v, dict):
        raise invalid(f"{where}: \"{key}\" must be an object")
    return v


def parse_n_epochs(hp: dict, default: int) -> int:
    """hyperparameters.n_epochs: 1..1000, "auto"/null/absent = default."""
    n = hp.get("n_epochs", "auto")
    if n in (None, "auto"):
        n = default
    if not is_int(n) or not 1 <= n <= 1000:
        raise invalid(f"hyperparameters.n_epochs must be an integer 1..1000 or \"auto\" (got {n!r})")
    return n


def parse_learning_rate(hp: dict, default: float, max_multiplier: float | None = None) -> float:
    """hyperparameters.learning_rate in (0, 1] ("auto"/null/absent = default)
    times hyperparameters.learning_rate_multiplier (> 0, at most
    max_multiplier when given; "auto"/null/absent = 1)."""
    lr = hp.get("learning_rate", "auto")
    if lr in (None, "auto"):
        lr = default
    if not is_num(lr) or not 0 < float(lr) <= 1.0:
        raise invalid(f"hyperparameters.learning_rate must be a number in (0, 1] or \"auto\" (got {lr!r})")
    lr = float(lr)
    mult = hp.get("learning_rate_multiplier")
    if mult not in (None, "auto"):
        if not is_num(mult) or float(mult) <= 0 or (max_multiplier is not None and float(mult) > max_multiplier):
            raise invalid(f"hyperparameters.learning_rate_multiplier must be a positive number (got {mult!r})")
        lr *= float(mult)
    return lr


# ---------------------------------------------------------------- chat JSONL

CHAT_ROLES = ("system", "user", "assistant")


def line_where(label: str, path: str, lineno: int) -> str:
    """How errors name a line: `training file /abs/train.jsonl line 3`."""
    return f"{label} file {path} line {lineno}"


def read_chat_lines(
    path: str,
    label: str,
    *,
    max_bytes: int | None = None,
    strip_bom: bool = True,
    open_errors_are_data_errors: bool = False,
) -> Iterator[tuple[int, dict]]:
    """Yields (line number, JSON object) for every non-blank line of an
    OpenAI chat-format JSONL file (line numbers 1-based, blank lines count).
    Raises DataError, naming the file (`label` file PATH) and the line, for:
    a missing file; a line that is not UTF-8 or not valid JSON or not a JSON
    object; a file over max_bytes; a file with no non-blank line ("holds no
    chats").  strip_bom drops a UTF-8 byte order mark at the start of line 1.
    open_errors_are_data_errors also turns other OSErrors on open
    (permissions, ...) into a DataError; otherwise they propagate."""
    try:
        f = open(path, "rb")
    except FileNotFoundError as e:
        raise DataError(f"{label} file not found: {path}") from e
    except OSError as e:
        if not open_errors_are_data_errors:
            raise
        raise DataError(f"{label} file cannot be opened: {path}: {e}") from e
    total = 0
    found = False
    with f:
        for lineno, raw in enumerate(f, start=1):
            total += len(raw)
            if max_bytes is not None and total > max_bytes:
                raise DataError(f"{label} file {path} is larger than {max_bytes} bytes")
            where = line_where(label, path, lineno)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{where}: not UTF-8 ({e})") from e
            if strip_bom and lineno == 1:
                line = line.lstrip("\ufeff")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from e
            if not isinstance(obj, dict):
                raise DataError(f"{where}: expected a JSON object with \"messages\"")
            found = True
            yield lineno, obj
    if not found:
        raise DataError(f"{label} file {path} holds no chats")


def chat_messages(obj: dict, where: str) -> Iterator[tuple[str, dict]]:
    """Yields (`WHERE: messages[i]`, message) for a chat object's "messages",
    which must be a non-empty array of objects."""
    msgs = obj.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f"{where}: \"messages\" must be a non-empty array")
    for i, m in enumerate(msgs):
        mw = f"{where}: messages[{i}]"
        if not isinstance(m, dict):
            raise DataError(f"{mw} is not an object")
        yield mw, m


def content_text(content, where: str, expected: str = "a string") -> str:
    """A message's content as text: a string, or OpenAI content parts of type
    "text" joined.  `expected` completes the message `"content" must be ...`
    for anything else."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: only text is usable
        parts = []
        for i, p in enumerate(content):
            if not isinstance(p, dict) or p.get("type") != "text" or not isinstance(p.get("text"), str):
                raise DataError(f"{where}: content part {i} is not a {{\"type\":\"text\",\"text\":...}} object")
            parts.append(p["text"])
        return "".join(parts)
    raise DataError(f"{where}: \"content\" must be {expected}")


def message_content(m: dict, where: str, expected: str = "a string") -> str:
    """content_text of message m; a missing or null "content" is an error."""
    if m.get("content") is None:
        raise DataError(f"{where}: missing \"content\"")
    return content_text(m["content"], where, expected)


# ---------------------------------------------------------------- entry point

RETRYABLE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EIO, errno.ENOMEM, errno.EDQUOT, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT}
)


def recipe_main(run, description: str, argv=None, *, stopped_note: str = "", memory_message: str = "out of memory",
                missing_hint: str = "") -> int:
    """The whole life of a recipe process: the protocol writer, the stop
    flag, `--spec SPEC.json`, then `run(ev, stop, spec_path, t_start)`, with
    every failure turned into its message and exit code (a JobError its own,
    2 for a bad command line, 75 for a retryable I/O error or MemoryError,
    143/130 after SIGTERM/SIGINT, 1 otherwise)."""
    import argparse
    import time
    import traceback

    t_start = time.monotonic()
    ev = Events()
    stop = StopFlag()
    stop.install()
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--spec", required=True, help="path of the job spec JSON")
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:
        return EXIT_INVALID if e.code else EXIT_OK
    try:
        return run(ev, stop, args.spec, t_start)
    except HANDLED_ERRORS as e:
        return exit_code_for(ev, e, stopped_note=stopped_note, memory_message=memory_message)
    except ImportError as e:
        ev.message("error", f"missing dependency: {e}{missing_hint}")
        return EXIT_FAILED
    except OSError as e:
        traceback.print_exc()
        ev.message("error", f"I/O error: {e}")
        return EXIT_RETRY if e.errno in RETRYABLE_ERRNOS or e.errno is None else EXIT_FAILED
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        ev.message("error", f"internal error: {type(e).__name__}: {e}")
        return EXIT_FAILED
