#!/usr/bin/env python3
"""Tests of recipe_common (standard library only).

    python3 -m unittest discover -s infra/recipes/common -v
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import recipe_common as rc  # noqa: E402

CHAT = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}


def _write(path: str, data, mode: str = "w") -> str:
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        f.write(data)
    return path


class ErrorsTest(unittest.TestCase):
    def test_codes(self):
        self.assertEqual((rc.EXIT_OK, rc.EXIT_FAILED, rc.EXIT_INVALID, rc.EXIT_RETRY, rc.EXIT_SIGINT, rc.EXIT_SIGTERM),
                         (0, 1, 2, 75, 130, 143))
        e = rc.invalid("bad")
        self.assertIsInstance(e, rc.JobError)
        self.assertEqual((e.code, e.message, str(e)), (2, "bad", "bad"))
        r = rc.RetryableError("later")
        self.assertIsInstance(r, rc.JobError)
        self.assertEqual(r.code, 75)
        self.assertEqual(rc.signal_exit_code(signal.SIGTERM), 143)
        self.assertEqual(rc.signal_exit_code(signal.SIGINT), 130)

    def test_stop_flag(self):
        stop = rc.StopFlag()
        self.assertFalse(stop())
        stop.check()
        stop.signum = signal.SIGTERM
        self.assertTrue(stop() and stop.requested())
        with self.assertRaises(rc.Terminated) as cm:
            stop.check()
        self.assertEqual(cm.exception.signum, signal.SIGTERM)

    def test_helpers(self):
        self.assertTrue(rc.is_int(3))
        self.assertFalse(rc.is_int(True))
        self.assertFalse(rc.is_int(3.0))
        self.assertTrue(rc.is_num(0.5))
        self.assertFalse(rc.is_num(float("nan")))
        self.assertFalse(rc.is_num(False))
        self.assertEqual(rc.round_or_none(1.23456789), 1.234568)
        self.assertIsNone(rc.round_or_none(float("inf")))
        self.assertIsNone(rc.round_or_none("x"))
        self.assertEqual(rc.clean({"a": (1.0, float("nan")), 2: {"b": float("-inf")}}), {"a": [1.0, None], "2": {"b": None}})


class EventsTest(unittest.TestCase):
    """Events redirects fd 1, so it runs in a child process."""

    def run_child(self, body: str):
        code = "import sys\nsys.path.insert(0, %r)\nimport recipe_common as rc\n" % HERE + textwrap.dedent(body)
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    def test_protocol_lines_only_on_stdout(self):
        p = self.run_child("""
            ev = rc.Events()
            print("stray print")
            ev.message("info", "hello")
            ev.emit({"type": "metrics", "step": 1, "data": {"loss": float("nan"), "t": (1, 2)}})
            try:
                raise rc.Terminated(15)
            except rc.HANDLED_ERRORS as e:
                sys.exit(rc.exit_code_for(ev, e, stopped_note="; bye", memory_message="oom"))
        """)
        self.assertEqual(p.returncode, 143, p.stderr)
        lines = [json.loads(x) for x in p.stdout.splitlines()]
        self.assertEqual(lines, [
            {"type": "message", "level": "info", "message": "hello"},
            {"type": "metrics", "step": 1, "data": {"loss": None, "t": [1, 2]}},
            {"type": "message", "level": "warn", "message": "stopped by SIGTERM at a step boundary; bye"},
        ])
        self.assertIn("stray print", p.stderr)
        self.assertIn("[info] hello", p.stderr)

    def test_disabled_and_exit_codes(self):
        p = self.run_child("""
            ev = rc.Events(enabled=False)
            codes = [rc.exit_code_for(ev, e, stopped_note="", memory_message="oom")
                     for e in (rc.invalid("x"), rc.RetryableError("y"), MemoryError(), rc.Terminated(2))]
            sys.stderr.write(repr(codes) + "\\n")
        """)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "")
        self.assertIn("[2, 75, 75, 130]", p.stderr)
        self.assertIn("[error] oom", p.stderr)


class SpecTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def refused(self, fn, *args, **kw) -> str:
        with self.assertRaises(rc.JobError) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.code, rc.EXIT_INVALID)
        return cm.exception.message

    def test_load_spec(self):
        p = os.path.join(self.tmp, "spec.json")
        self.assertEqual(self.refused(rc.load_spec, p), f"spec file not found: {p}")
        _write(p, "{nope")
        self.assertTrue(self.refused(rc.load_spec, p).startswith(f"spec file {p} is not valid JSON: "))
        _write(p, b"\xff\xfe", "wb")
        self.assertIn("is not valid JSON", self.refused(rc.load_spec, p))
        _write(p, "[1]")
        self.assertEqual(self.refused(rc.load_spec, p), "spec must be a JSON object")
        _write(p, '{"kind": "embedding"}')
        self.assertEqual(self.refused(rc.load_spec, p), "spec: unsupported kind 'embedding' (only \"fine_tune\")")
        _write(p, '{"job_id": "j"}')
        self.assertEqual(rc.load_spec(p), {"job_id": "j"})

    def test_fields(self):
        s = {"a": "rel/x", "e": "  ", "n": 3, "hp": [1]}
        self.assertEqual(rc.abs_path(s, "a", True), os.path.abspath("rel/x"))
        self.assertIsNone(rc.abs_path(s, "missing", False))
        self.assertEqual(self.refused(rc.abs_path, s, "missing", True), 'spec: "missing" is required')
        self.assertEqual(self.refused(rc.abs_path, s, "e", True), 'spec: "e" must be a non-empty path string')
        self.assertEqual(self.refused(rc.abs_path, s, "n", True, "resume_from", show_value=True),
                         'resume_from: "n" must be a non-empty path string (got 3)')
        self.assertEqual(rc.object_field(s, "absent"), {})
        self.assertEqual(self.refused(rc.object_field, s, "hp"), 'spec: "hp" must be an object')

    def test_hyperparameters(self):
        self.assertEqual(rc.parse_n_epochs({}, 3), 3)
        self.assertEqual(rc.parse_n_epochs({"n_epochs": "auto"}, 3), 3)
        self.assertEqual(rc.parse_n_epochs({"n_epochs": 7}, 3), 7)
        for bad in (0, 1001, 2.0, True, "x"):
            self.assertIn("hyperparameters.n_epochs must be an integer 1..1000",
                          self.refused(rc.parse_n_epochs, {"n_epochs": bad}, 3))
        self.assertEqual(rc.parse_learning_rate({}, 2e-4), 2e-4)
        self.assertEqual(rc.parse_learning_rate({"learning_rate": 1e-3, "learning_rate_multiplier": 2}, 2e-4), 2e-3)
        self.assertEqual(rc.parse_learning_rate({"learning_rate_multiplier": "auto"}, 2e-4), 2e-4)
        self.assertIn("(0, 1]", self.refused(rc.parse_learning_rate, {"learning_rate": 2}, 2e-4))
        self.assertIn("positive number", self.refused(rc.parse_learning_rate, {"learning_rate_multiplier": 0}, 2e-4))
        self.assertEqual(rc.parse_learning_rate({"learning_rate": 1e-4, "learning_rate_multiplier": 200}, 2e-4), 2e-2)
        self.refused(rc.parse_learning_rate, {"learning_rate_multiplier": 200}, 2e-4, max_multiplier=100)


class ChatLinesTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self._tmp.name, "t.jsonl")

    def tearDown(self):
        self._tmp.cleanup()

    def read(self, **kw):
        return list(rc.read_chat_lines(self.path, "training", **kw))

    def error(self, **kw) -> str:
        with self.assertRaises(rc.DataError) as cm:
            self.read(**kw)
        return str(cm.exception)

    def test_lines_are_numbered_with_blanks(self):
        _write(self.path, json.dumps(CHAT) + "\n\n  \n" + json.dumps(CHAT) + "\n")
        self.assertEqual([n for n, _ in self.read()], [1, 4])
        self.assertEqual(self.read()[0][1], CHAT)

    def test_errors_name_file_and_line(self):
        w = f"training file {self.path} line"
        self.assertEqual(self.error(), f"training file not found: {self.path}")
        _write(self.path, json.dumps(CHAT) + "\n{oops\n")
        self.assertEqual(self.error(), f"{w} 2: invalid JSON (Expecting property name enclosed in double quotes at column 2)")
        _write(self.path, "[1, 2]\n")
        self.assertEqual(self.error(), f"{w} 1: expected a JSON object with \"messages\"")
        _write(self.path, b'{"messages": []}\n\xff\n', "wb")
        self.assertTrue(self.error().startswith(f"{w} 2: not UTF-8 ("))
        _write(self.path, "\n\n")
        self.assertEqual(self.error(), f"training file {self.path} holds no chats")
        _write(self.path, json.dumps(CHAT) + "\n" + json.dumps(CHAT) + "\n")
        self.assertEqual(self.error(max_bytes=10), f"training file {self.path} is larger than 10 bytes")

    def test_bom_on_line_1(self):
        _write(self.path, "\ufeff" + json.dumps(CHAT) + "\n")
        self.assertEqual(self.read()[0][0], 1)
        self.assertIn("line 1: invalid JSON (Unexpected UTF-8 BOM", self.error(strip_bom=False))

    def test_unopenable_file(self):
        os.mkdir(self.path)  # opening a directory fails with an OSError other than FileNotFoundError
        with self.assertRaises(OSError):
            self.read()
        self.assertTrue(self.error(open_errors_are_data_errors=True).startswith(f"training file cannot be opened: {self.path}: "))

    def test_messages_and_content(self):
        where = "training file t.jsonl line 3"
        self.assertEqual([mw for mw, _ in rc.chat_messages(CHAT, where)], [f"{where}: messages[0]", f"{where}: messages[1]"])
        for bad in ({}, {"messages": []}, {"messages": "hi"}):
            with self.assertRaisesRegex(rc.DataError, f'^{where}: "messages" must be a non-empty array$'):
                list(rc.chat_messages(bad, where))
        with self.assertRaisesRegex(rc.DataError, r"messages\[1\] is not an object$"):
            list(rc.chat_messages({"messages": [{}, "x"]}, where))
        self.assertEqual(rc.message_content({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, "m"), "ab")
        with self.assertRaisesRegex(rc.DataError, '^m: missing "content"$'):
            rc.message_content({"role": "user", "content": None}, "m")
        with self.assertRaisesRegex(rc.DataError, r'^m: content part 0 is not a \{"type":"text","text":...\} object$'):
            rc.message_content({"content": [{"type": "image_url"}]}, "m")
        with self.assertRaisesRegex(rc.DataError, '^m: "content" must be a string$'):
            rc.message_content({"content": 5}, "m")
        with self.assertRaisesRegex(rc.DataError, '^m: "content" must be a string or a list of text parts$'):
            rc.message_content({"content": 5}, "m", expected="a string or a list of text parts")


if __name__ == "__main__":
    unittest.main()
