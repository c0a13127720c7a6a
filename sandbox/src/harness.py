"""Program side of the judge: runs the candidate program in this sandboxed process and answers
the referee's requests with data. It holds no expected output of any test and decides no
verdict: whatever the program does to this process, all it can change is the data sent back.

The candidate sources and limits come from ``job.json`` (deleted once read). Requests arrive on
the descriptor named by the first argument, answers leave on the second; one JSON line each.

    startup:  {"compiled": k} | {"compile_error": message}
    {"op": "begin"}                                  -> {"ok": null}   a test starts: limits reset
    {"op": "stdin", "input": s}                      -> {"stdout": s, "error": null | E}
    {"op": "load"}                                   -> {"names": {name: N}} | {"error": E}
    {"op": "functional", "name": f, "args": [V...]}  -> {"value": V} | {"error": E}
    {"op": "call", "ref": r, "args": [V...], "kwargs": {k: V}}  -> {"value": V} | {"error": E}
    {"op": "getattr", "ref": r, "name": a}           -> {"value": V} | {"error": E}
    {"op": "setattr", "ref": r, "name": a, "value": V}  -> {"value": null} | {"error": E}
    {"op": "apply", "fn": len|bool|str|repr|iter|next|int|float|getitem|contains,
     "ref": r, "args": [V...]}                       -> {"value": V} | {"stop": true} | {"error": E}

E is {"why": runtime_error|time_limit|memory_limit|output_limit, "type": exception class name,
"text": the last lines of the traceback}. V is a value: JSON null, booleans, strings, numbers
(integers within 2**53, finite floats) and lists as they are; other values tagged:
{"$int": hex}, {"$float": "nan"|"inf"|"-inf"}, {"$tuple": [V...]}, {"$dict": [[V, V]...]},
{"$set": [V...]}, {"$frozenset": [V...]}, {"$bytes": hex}, {"$complex": [re, im]},
{"$object": [module, qualname]} for a builtin or standard object the referee passes, and
{"$ref": r} for any other object, which stays here (the referee can call it, read its
attributes, iterate it; never compare it). N describes a global name of the program:
{"module": name} for a module, {"object": [module, qualname]} for an object imported from
another module, {"value": V} for data, {"ref": r} for the program's own functions and classes.
"""

import builtins
import errno
import json
import math
import numbers
import operator
import os
import resource
import signal
import sys
import time

# `linecache` and `traceback` are imported when first needed: start-up time counts for every
# candidate.

DETAIL_CHARS = 4000
MAX_DEPTH = 200

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

APPLIED = {
    "len": len,
    "bool": bool,
    "str": str,
    "repr": repr,
    "iter": iter,
    "next": next,
    "int": int,
    "float": float,
    "getitem": operator.getitem,
    "contains": operator.contains,
}


class TimeLimitExceeded(BaseException):
    pass


class Unencodable(Exception):
    pass


SOURCES = {}


def clip(text):
    return text[:DETAIL_CHARS] if len(text) > DETAIL_CHARS else text


def main():
    request_fd = int(sys.argv[1])
    answer_fd = int(sys.argv[2])
    harness_file = main.__code__.co_filename
    main_pid = os.getpid()
    with open("job.json", "rb") as f:
        job = json.loads(f.read())
    os.unlink("job.json")
    requests = os.fdopen(request_fd, "rb", buffering=1 << 16)

    def leave_if_forked():
        # A program that forks runs harness code in its children: they must not answer.
        if os.getpid() != main_pid:
            os._exit(0)

    def answer(message):
        leave_if_forked()
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(answer_fd, data):]

    # ---- time limits: a CPU timer and a wall timer per test, a CPU rlimit as the last resort ----
    armed = [False]
    cpu_limit = float(job["cpu_limit"])
    wall_limit = float(job["wall_limit"])
    test_start = [0.0, 0.0]  # CPU seconds and wall-clock time when the current test began

    def on_timer(signum, frame):
        if armed[0]:
            raise TimeLimitExceeded("cpu" if signum == signal.SIGPROF else "wall")

    signal.signal(signal.SIGPROF, on_timer)
    signal.signal(signal.SIGALRM, on_timer)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def cpu_used():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def begin_test():
        test_start[0] = cpu_used()
        test_start[1] = time.monotonic()
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        soft = int(math.ceil(test_start[0] + cpu_limit)) + 1
        if hard != resource.RLIM_INFINITY:
            soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))

    def arm():
        cpu_left = max(cpu_limit - (cpu_used() - test_start[0]), 0.001)
        wall_left = max(wall_limit - (time.monotonic() - test_start[1]), 0.001)
        signal.setitimer(signal.ITIMER_PROF, cpu_left, 0.05)
        signal.setitimer(signal.ITIMER_REAL, wall_left, 0.05)
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
            import linecache

            for filename, source in SOURCES.items():
                linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
            lines = traceback.format_exception(type(exc), exc, user_traceback(exc), limit=-6)
            text = "".join(lines).rstrip("\n").split("\n")
            return clip("\n".join(text[-8:]))
        except BaseException:
            return "%s (traceback unavailable)" % type(exc).__name__

    def why(exc):
        if isinstance(exc, TimeLimitExceeded):
            return "time_limit"
        if isinstance(exc, MemoryError):
            return "memory_limit"
        if isinstance(exc, OSError) and exc.errno == errno.EFBIG:
            return "output_limit"
        return "runtime_error"

    def error_of(exc):
        try:
            name = type(exc).__name__
            if not isinstance(name, str):
                name = "Exception"
        except BaseException:
            name = "Exception"
        return {"why": why(exc), "type": name, "text": describe(exc)}

    def exit_error(exc):
        if exc.code is None or exc.code == 0:
            return None
        return RuntimeError("program exited with status %r" % (exc.code,))

    def run_user(fn, *args):
        """Runs fn under the test's limits; returns (value, exception)."""
        value, error = None, None
        try:
            try:
                arm()
                value = fn(*args)
            except SystemExit as exc:
                error = exit_error(exc)
            finally:
                disarm()
        except BaseException as exc:
            disarm()
            error = exc
        leave_if_forked()
        return value, error

    # ---- values as data ----
    refs = []

    def keep(value):
        refs.append(value)
        return {"$ref": len(refs) - 1}

    def encode(value, depth=0):
        """The value as data, read through the builtin types' own methods (a subclass cannot
        change what is sent); any other object stays here as a reference."""
        if depth > MAX_DEPTH:
            raise Unencodable("value nested too deeply")
        if value is None or value is True or value is False:
            return value
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, (int, numbers.Integral)):
            n = int.__index__(value if isinstance(value, int) else operator.index(value))
            if -(1 << 53) <= n <= 1 << 53:
                return n
            return {"$int": format(n, "x")}
        if isinstance(value, (float, numbers.Real)):
            x = float.__float__(value if isinstance(value, float) else float(value))
            if math.isfinite(x):
                return x
            return {"$float": "nan" if x != x else ("inf" if x > 0 else "-inf")}
        if isinstance(value, list):
            return [encode(v, depth + 1) for v in list.__iter__(value)]
        if isinstance(value, tuple):
            return {"$tuple": [encode(v, depth + 1) for v in tuple.__iter__(value)]}
        if isinstance(value, dict):
            return {"$dict": [[encode(k, depth + 1), encode(v, depth + 1)]
                              for k, v in dict.items(value)]}
        if isinstance(value, frozenset):
            return {"$frozenset": [encode(v, depth + 1) for v in frozenset.__iter__(value)]}
        if isinstance(value, set):
            return {"$set": [encode(v, depth + 1) for v in set.__iter__(value)]}
        if isinstance(value, (bytes, bytearray)):
            return {"$bytes": bytes(value).hex()}
        if isinstance(value, complex):
            z = complex.__complex__(value) if type(value) is complex else complex(value)
            return {"$complex": [encode(z.real, depth + 1), encode(z.imag, depth + 1)]}
        return keep(value)

    def decode(data, depth=0):
        if depth > MAX_DEPTH:
            raise ValueError("value nested too deeply")
        if isinstance(data, list):
            return [decode(v, depth + 1) for v in data]
        if not isinstance(data, dict):
            return data
        ((tag, body),) = data.items()
        if tag == "$ref":
            return refs[body]
        if tag == "$int":
            return int(body, 16)
        if tag == "$float":
            return float(body)
        if tag == "$bytes":
            return bytes.fromhex(body)
        if tag == "$object":
            import importlib

            value = importlib.import_module(body[0])
            for part in body[1].split("."):
                value = getattr(value, part)
            return value
        items = [decode(v, depth + 1) for v in body]
        if tag == "$tuple":
            return tuple(items)
        if tag == "$dict":
            return {k: v for k, v in items}
        if tag == "$set":
            return set(items)
        if tag == "$frozenset":
            return frozenset(items)
        if tag == "$complex":
            return complex(*items)
        raise ValueError("unknown tag %r" % tag)

    def value_answer(fn, *args):
        """Runs fn, encodes what it returns (under the same limits: encoding may run program code)."""
        value, error = run_user(lambda: encode(fn(*args)))
        if error is not None:
            if isinstance(error, StopIteration):
                return {"stop": True}
            if isinstance(error, Unencodable):
                return {"error": {"why": "runtime_error", "type": "ValueError",
                                  "text": "the program returned a value that cannot be judged: %s" % error}}
            return {"error": error_of(error)}
        return {"value": value}

    answer({"started": True})

    # ---- the program ----
    candidates = job["candidates"]
    code = None
    last_error = None
    for index in reversed(range(len(candidates))):
        try:
            code = compile(candidates[index], "solution.py", "exec")
            SOURCES["solution.py"] = candidates[index]
            answer({"compiled": index})
            break
        except BaseException as exc:  # SyntaxError, ValueError (NUL bytes), MemoryError...
            if last_error is None:
                last_error = exc
    if code is None:
        message = "no candidate"
        if last_error is not None:
            import traceback

            message = clip("".join(traceback.format_exception_only(type(last_error), last_error)))
        answer({"compile_error": message})
        os._exit(0)

    base_globals = {"__builtins__": builtins}
    if job.get("preamble"):
        exec(compile(IMPORT_PREAMBLE, "preamble.py", "exec"), base_globals)

    def fresh_globals(name):
        g = dict(base_globals)
        g["__name__"] = name
        return g

    def run_stdin(request):
        with open("stdin.txt", "wb") as f:
            f.write(request["input"].encode("utf-8"))
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
            stdout = f.read().decode("utf-8", "replace")
        return {"stdout": stdout, "error": None if error is None else error_of(error)}

    program = {}

    def describe_name(value):
        if type(value).__name__ == "module" and isinstance(getattr(value, "__name__", None), str):
            return {"module": value.__name__}
        module = getattr(value, "__module__", None)
        qualname = getattr(value, "__qualname__", None)
        if isinstance(module, str) and isinstance(qualname, str) and module not in (
                "solution", "__main__", "builtins"):
            return {"object": [module, qualname]}
        try:
            return {"value": encode(value)}
        except Exception:
            pass
        return {"ref": keep(value)["$ref"]}

    def load():
        g = fresh_globals("solution")
        exec(code, g)
        program["g"] = g
        names = {}
        for name, value in list(g.items()):
            if isinstance(name, str) and not name.startswith("__") and value is not builtins:
                names[name] = describe_name(value)
        return names

    def functional(request):
        name = request["name"]
        args = [decode(a) for a in request["args"]]

        def call():
            if "functional" not in program:
                g = fresh_globals("solution")
                exec(code, g)
                program["functional"] = g
            g = program["functional"]
            cls = g.get("Solution")
            if isinstance(cls, type) and hasattr(cls, name):
                target = getattr(cls(), name)
            elif callable(g.get(name)):
                target = g[name]
            else:
                raise NameError("the program defines neither Solution.%s nor %s" % (name, name))
            return target(*args)

        return value_answer(call)

    def serve(request):
        op = request.get("op")
        if op == "begin":
            begin_test()
            return {"ok": None}
        if op == "stdin":
            return run_stdin(request)
        if op == "functional":
            return functional(request)
        if op == "load":
            del refs[:]
            names, error = run_user(load)
            if error is not None:
                return {"error": error_of(error)}
            return {"names": names}
        if op == "call":
            target = refs[request["ref"]]
            args = [decode(a) for a in request["args"]]
            kwargs = {k: decode(v) for k, v in request["kwargs"].items()}
            return value_answer(lambda: target(*args, **kwargs))
        if op == "getattr":
            return value_answer(getattr, refs[request["ref"]], request["name"])
        if op == "setattr":
            target, value = refs[request["ref"]], decode(request["value"])
            return value_answer(setattr, target, request["name"], value)
        if op == "apply":
            fn = APPLIED[request["fn"]]
            args = [decode(a) for a in request.get("args", [])]
            return value_answer(fn, refs[request["ref"]], *args)
        return {"error": {"why": "runtime_error", "type": "ValueError",
                          "text": "unknown request %r" % (op,)}}

    while True:
        line = requests.readline()
        leave_if_forked()
        if not line:
            os._exit(0)
        try:
            reply = serve(json.loads(line))
        except Exception as exc:  # a reference the program's code has made unusable, say
            reply = {"error": {"why": "runtime_error", "type": type(exc).__name__,
                               "text": clip("%s: %s" % (type(exc).__name__, exc))}}
        answer(reply)


main()
