"""Judging harness, run by the sandbox as the program's own Python process.

It reads its job from ``job.json`` in the working directory (and deletes it), compiles the
candidate, runs the tests in order and stops at the first failure. Every event is one JSON
line carrying the job's nonce, written to the file descriptor named by the first argument:

    {"ev": "ready"}
    {"ev": "compiled", "candidate": k} | {"ev": "compile_error", "message": ...}
    {"ev": "start", "i": i}
    {"ev": "pass", "i": i, "cpu": s}
    {"ev": "fail", "i": i, "why": ..., "actual": ..., "expected": ..., "error": ..., "cpu": s}
    {"ev": "bad_test", "i": i, "message": ...}
    {"ev": "done"}

``why`` is one of wrong_answer, runtime_error, time_limit, memory_limit, output_limit.
The standard-output comparison mirrors ``compare.rs``; keep the two in step.
"""

import builtins
import errno
import json
import math
import os
import re
import resource
import signal
import sys

# `ast`, `linecache` and `traceback` are imported when first needed: start-up time counts
# for every candidate.

WHITESPACE = " \t\n\r\x0b\x0c"
SPLIT_RE = re.compile("[ \t\n\r\x0b\x0c]+")
INT_RE = re.compile(r"[+-]?[0-9]+\Z")
FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
RTOL = 1e-5
ATOL = 1e-8
DETAIL_CHARS = 4000

# Modules LiveCodeBench makes available to stdin and functional programs.
IMPORT_PREAMBLE = """
import sys, os, io, math, re, string, heapq, bisect, itertools, functools, collections
import copy, random, operator, statistics, fractions, decimal, json, datetime
from typing import *
from collections import *
from heapq import *
from bisect import *
from itertools import *
from functools import *
from math import *
from copy import *
from builtins import *
"""


def stdout_matches(actual, expected):
    a = actual.strip(WHITESPACE)
    e = expected.strip(WHITESPACE)
    if a == e:
        return True
    if [x.strip(WHITESPACE) for x in a.split("\n")] == [
        y.strip(WHITESPACE) for y in e.split("\n")
    ]:
        return True
    at = [t for t in SPLIT_RE.split(a) if t]
    et = [t for t in SPLIT_RE.split(e) if t]
    if at == et:
        return True
    if len(at) != len(et):
        return False
    for x, y in zip(at, et):
        if x == y:
            continue
        if INT_RE.match(x) and INT_RE.match(y):
            return False
        if not (FLOAT_RE.match(x) and FLOAT_RE.match(y)):
            return False
        fx, fy = float(x), float(y)
        if not (abs(fx - fy) <= ATOL + RTOL * abs(fy)):
            return False
    return True


def as_lists(value):
    """Tuples compare as lists, as in LiveCodeBench."""
    if isinstance(value, (list, tuple)):
        return [as_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: as_lists(v) for k, v in value.items()}
    return value


SOURCES = {}


def remember_source(filename, source):
    """Lets tracebacks quote lines of code that exists only in memory."""
    SOURCES[filename] = source


def publish_sources():
    import linecache

    for filename, source in SOURCES.items():
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


def clip(text):
    if len(text) > DETAIL_CHARS:
        return text[:DETAIL_CHARS]
    return text


def safe_repr(value):
    try:
        return clip(repr(value))
    except BaseException:
        return "<unprintable value>"


def shown_value(value):
    try:
        return clip(json.dumps(value))
    except BaseException:
        return safe_repr(value)


class TimeLimitExceeded(BaseException):
    pass


class BadTest(Exception):
    pass


def main():
    result_fd = int(sys.argv[1])
    harness_file = main.__code__.co_filename
    main_pid = os.getpid()
    with open("job.json", "rb") as f:
        job = json.loads(f.read())
    os.unlink("job.json")
    nonce = job["nonce"]

    def emit(event):
        if os.getpid() != main_pid:
            os._exit(0)
        event["nonce"] = nonce
        data = (json.dumps(event) + "\n").encode()
        while data:
            data = data[os.write(result_fd, data):]

    def leave_if_forked():
        # A program that forks runs harness code in its children: they must not report.
        if os.getpid() != main_pid:
            os._exit(0)

    emit({"ev": "ready"})

    # ---- time limits: a CPU timer, a wall timer and a CPU rlimit as the last resort ----
    armed = [False]

    def on_timer(signum, frame):
        if armed[0]:
            raise TimeLimitExceeded("cpu" if signum == signal.SIGPROF else "wall")

    signal.signal(signal.SIGPROF, on_timer)
    signal.signal(signal.SIGALRM, on_timer)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    cpu_limit = float(job["cpu_limit"])
    wall_limit = float(job["wall_limit"])

    def cpu_used():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def arm():
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        soft = int(math.ceil(cpu_used() + cpu_limit)) + 1
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        signal.setitimer(signal.ITIMER_PROF, cpu_limit, 0.05)
        signal.setitimer(signal.ITIMER_REAL, wall_limit, 0.05)
        armed[0] = True

    def disarm():
        armed[0] = False
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)

    # ---- describing failures ----
    def user_traceback(exc):
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == harness_file:
            tb = tb.tb_next
        return tb

    def describe(exc):
        import traceback

        if isinstance(exc, MemoryError):
            if exc.__traceback__ is not None:
                traceback.clear_frames(exc.__traceback__)
            return "MemoryError: memory limit exceeded"
        if isinstance(exc, TimeLimitExceeded):
            kind = "CPU" if str(exc) == "cpu" else "wall-clock"
            return "time limit exceeded (%s, %g s CPU per test)" % (kind, cpu_limit)
        if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
            return "output limit exceeded"
        try:
            publish_sources()
            lines = traceback.format_exception(type(exc), exc, user_traceback(exc), limit=-6)
            text = "".join(lines).rstrip("\n").split("\n")
            return clip("\n".join(text[-8:]))
        except BaseException:
            return "%s (traceback unavailable)" % type(exc).__name__

    def classify(exc, test_files=()):
        if isinstance(exc, TimeLimitExceeded):
            return "time_limit"
        if isinstance(exc, MemoryError):
            return "memory_limit"
        if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
            return "output_limit"
        if isinstance(exc, AssertionError) and test_files:
            tb = exc.__traceback__
            last = None
            while tb is not None:
                last = tb
                tb = tb.tb_next
            if last is not None and last.tb_frame.f_code.co_filename in test_files:
                return "wrong_answer"
        return "runtime_error"

    def system_exit_error(exc):
        if exc.code is None or exc.code == 0:
            return None
        return RuntimeError("program exited with status %r" % (exc.code,))

    # ---- the program ----
    candidates = job["candidates"]
    code = None
    chosen = None
    last_error = None
    for index in reversed(range(len(candidates))):
        try:
            code = compile(candidates[index], "solution.py", "exec")
            chosen = index
            remember_source("solution.py", candidates[index])
            break
        except BaseException as exc:  # SyntaxError, ValueError (NUL bytes), MemoryError...
            if last_error is None:
                last_error = exc
    if code is None:
        message = "no candidate"
        if last_error is not None:
            import traceback

            message = clip("".join(traceback.format_exception_only(type(last_error), last_error)))
        emit({"ev": "compile_error", "message": message})
        os._exit(0)
    emit({"ev": "compiled", "candidate": chosen})

    base_globals = {"__builtins__": builtins}
    if job.get("preamble"):
        exec(compile(IMPORT_PREAMBLE, "preamble.py", "exec"), base_globals)

    def fresh_globals(name):
        g = dict(base_globals)
        g["__name__"] = name
        return g

    def run_user(fn, *args):
        """Runs fn under the per-test limits; returns (value, exception)."""
        value, error = None, None
        try:
            try:
                arm()
                value = fn(*args)
            except SystemExit as exc:
                error = system_exit_error(exc)
            finally:
                disarm()
        except BaseException as exc:
            disarm()
            error = exc
        leave_if_forked()
        return value, error

    # ---- one test per kind ----
    def run_stdin(test):
        with open("stdin.txt", "wb") as f:
            f.write(test["input"].encode("utf-8"))
        fd = os.open("stdin.txt", os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
        fd = os.open("stdout.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.close(fd)
        sys.stdin = open(0, "r", encoding="utf-8", errors="replace", closefd=False)
        out = open(1, "w", encoding="utf-8", closefd=False)
        sys.stdout = out
        g = fresh_globals("__main__")

        def body():
            try:
                exec(code, g)
            finally:
                try:
                    sys.stdout.flush()
                finally:
                    out.flush()

        _, error = run_user(body)
        with open("stdout.txt", "rb") as f:
            actual = f.read().decode("utf-8", "replace")
        if error is not None:
            return {
                "ev": "fail",
                "why": classify(error),
                "error": describe(error),
                "actual": clip(actual),
            }
        if stdout_matches(actual, test["output"]):
            return {"ev": "pass"}
        return {"ev": "fail", "why": "wrong_answer", "actual": clip(actual)}

    program = {}

    def run_functional(test):
        try:
            args = [json.loads(line) for line in test["input"].split("\n") if line.strip()]
            expected = json.loads(test["output"])
        except ValueError as exc:
            raise BadTest("test data is not JSON: %s" % exc)
        name = test["function"]

        def body():
            if "g" not in program:
                g = fresh_globals("solution")
                exec(code, g)
                program["g"] = g
            g = program["g"]
            cls = g.get("Solution")
            if isinstance(cls, type) and hasattr(cls, name):
                target = getattr(cls(), name)
            elif callable(g.get(name)):
                target = g[name]
            else:
                raise NameError("the program defines neither Solution.%s nor %s" % (name, name))
            result = as_lists(target(*args))
            return result, bool(result == expected)

        value, error = run_user(body)
        if error is not None:
            return {"ev": "fail", "why": classify(error), "error": describe(error)}
        result, same = value
        if same:
            return {"ev": "pass"}
        return {"ev": "fail", "why": "wrong_answer", "actual": shown_value(result)}

    def compared_sides(source):
        """For an `assert a == b` test, code that evaluates (a, b); otherwise None."""
        import ast

        try:
            tree = ast.parse(source, "test.py")
        except SyntaxError:
            return None
        stmt = tree.body[0] if len(tree.body) == 1 else None
        if not (
            isinstance(stmt, ast.Assert)
            and isinstance(stmt.test, ast.Compare)
            and len(stmt.test.ops) == 1
            and isinstance(stmt.test.ops[0], ast.Eq)
        ):
            return None
        pair = ast.Tuple([stmt.test.left, stmt.test.comparators[0]], ast.Load())
        expression = ast.Expression(ast.copy_location(pair, stmt))
        ast.fix_missing_locations(expression)
        return compile(expression, "test.py", "eval")

    def run_assert(test):
        try:
            setup = compile(test["setup"], "test_setup.py", "exec")
            check = compile(test["assertion"], "test.py", "exec")
        except SyntaxError as exc:
            raise BadTest("test does not parse: %s" % exc)
        remember_source("test_setup.py", test["setup"])
        remember_source("test.py", test["assertion"])
        g = fresh_globals("solution")

        def body():
            exec(code, g)
            exec(setup, g)
            exec(check, g)

        _, error = run_user(body)
        if error is None:
            return {"ev": "pass"}
        why = classify(error, ("test.py", "test_setup.py"))
        event = {"ev": "fail", "why": why, "error": describe(error)}
        if why == "wrong_answer":
            # Only on failure: evaluate both sides again to show them (ast is slow to import).
            sides = compared_sides(test["assertion"])
            if sides is not None:
                value, again = run_user(eval, sides, g)
                if again is None and isinstance(value, tuple):
                    event["actual"] = safe_repr(value[0])
                    event["expected"] = safe_repr(value[1])
        return event

    runners = {"stdin": run_stdin, "functional": run_functional, "assert": run_assert}
    for i, test in enumerate(job["tests"]):
        emit({"ev": "start", "i": i})
        before = cpu_used()
        try:
            event = runners[test["kind"]](test)
        except BadTest as exc:
            event = {"ev": "bad_test", "message": str(exc)}
        event["i"] = i
        event["cpu"] = round(cpu_used() - before, 4)
        emit(event)
        if event["ev"] != "pass":
            break
    emit({"ev": "done"})
    os._exit(0)


main()
