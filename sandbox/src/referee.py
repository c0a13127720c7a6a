"""Referee: the trusted half of the judge. It holds the tests, asks the program's process (the
harness, ``harness.py``) for data one test at a time, and decides every verdict itself. It never
runs candidate code: the program's functions and objects are reached only through requests whose
answers are data, compared here with the builtin types' own equality.

It serves many judgements in turn. The descriptor named by the first argument is a Unix socket
to the sandbox; for each judgement the sandbox sends one byte with the two ends of the
program's pipes attached (requests out, answers in), then the job as an 8-byte little-endian
length and JSON. The referee reports on the same socket, one JSON line per event:

    {"ev": "ready"}
    {"ev": "compiled", "candidate": k} | {"ev": "compile_error", "message": ...}
    {"ev": "start", "i": i}
    {"ev": "pass", "i": i}
    {"ev": "fail", "i": i, "why": ..., "actual": ..., "expected": ..., "error": ...}
    {"ev": "bad_test", "i": i, "message": ...}
    {"ev": "lost", "i": i | null}      the program's process stopped answering
    {"ev": "done"}
    {"ev": "end"}                      last event of every judgement

``why`` is one of wrong_answer, runtime_error, time_limit, memory_limit, output_limit. The
standard-output comparison mirrors ``compare.rs``; keep the two in step.
"""

import builtins
import json
import math
import os
import re
import signal
import socket
import struct
import sys

WHITESPACE = " \t\n\r\x0b\x0c"
SPLIT_RE = re.compile("[ \t\n\r\x0b\x0c]+")
INT_RE = re.compile(r"[+-]?[0-9]+\Z")
FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
HEX_RE = re.compile(r"-?[0-9a-f]+\Z")
RTOL = 1e-5
ATOL = 1e-8
DETAIL_CHARS = 4000
MAX_DEPTH = 200
WHY = ("runtime_error", "time_limit", "memory_limit", "output_limit")
TEST_FILES = ("test.py", "test_setup.py")


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


def clip(text):
    return text[:DETAIL_CHARS] if len(text) > DETAIL_CHARS else text


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


# ---- what can go wrong, as exceptions ----


class TestTimeLimit(BaseException):
    """The referee's own wall-clock limit of a test ran out."""


class ProgramLost(BaseException):
    """The program's process ended or closed its channel."""


class ProgramGarbled(Exception):
    """The program's answer is not a well-formed answer."""


class ProgramLimit(BaseException):
    """The program hit a resource limit; test code cannot catch it as an Exception."""

    def __init__(self, why, text):
        BaseException.__init__(self, text)
        self.why = why
        self.text = text


class ProgramRaised(Exception):
    """Mixed into the exception a call into the program raised, so that test code catching
    the builtin type still can, and an uncaught one is the program's runtime error."""

    why = "runtime_error"
    text = ""


class BadTest(Exception):
    pass


RAISED_CLASSES = {}


def raised(error):
    """The exception to raise here for an error the program reported."""
    why = error.get("why")
    text = error.get("text")
    name = error.get("type")
    if why not in WHY or not isinstance(text, str) or not isinstance(name, str):
        raise ProgramGarbled("malformed error report")
    text = clip(text)
    if why != "runtime_error":
        return ProgramLimit(why, text)
    base = getattr(builtins, name, None)
    if not (isinstance(base, type) and issubclass(base, Exception)):
        base = Exception
    try:
        cls = RAISED_CLASSES.get(base)
        if cls is None:
            cls = type(base.__name__, (base, ProgramRaised), {})
            RAISED_CLASSES[base] = cls
        exc = cls(text)
    except BaseException:  # a builtin type that cannot be mixed or built from one message
        exc = GenericRaised(text)
    exc.text = text
    return exc


class GenericRaised(ProgramRaised):
    pass


# ---- the program's channel ----


class Program:
    """Requests to the harness and its answers, read with a cap on their size."""

    def __init__(self, request_fd, answer_fd, cap):
        self.request_fd = request_fd
        self.answer_fd = answer_fd
        self.cap = cap
        self.buffer = bytearray()
        self.generation = 0

    def send(self, message):
        data = (json.dumps(message) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.request_fd, data):]
        except OSError:
            raise ProgramLost()

    def receive(self):
        while True:
            newline = self.buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self.buffer[:newline])
                del self.buffer[: newline + 1]
                try:
                    message = json.loads(line)
                except (ValueError, RecursionError):
                    raise ProgramGarbled("an answer that is not JSON")
                if not isinstance(message, dict):
                    raise ProgramGarbled("an answer that is not a JSON object")
                return message
            if len(self.buffer) > self.cap:
                raise ProgramLimit("output_limit", "output limit exceeded (answer too large)")
            try:
                chunk = os.read(self.answer_fd, 1 << 16)
            except OSError:
                raise ProgramLost()
            if not chunk:
                raise ProgramLost()
            self.buffer += chunk

    def ask(self, message):
        self.send(message)
        return self.receive()

    # Values the program returns.
    def value(self, answer):
        if "value" in answer:
            return self.decode(answer["value"])
        if answer.get("stop") is True:
            raise StopIteration
        error = answer.get("error")
        if isinstance(error, dict):
            raise raised(error)
        raise ProgramGarbled("an answer with neither value nor error")

    def decode(self, data, depth=0):
        if depth > MAX_DEPTH:
            raise ProgramGarbled("a value nested too deeply")
        if data is None or isinstance(data, (bool, str, int, float)):
            return data
        if isinstance(data, list):
            return [self.decode(v, depth + 1) for v in data]
        if not (isinstance(data, dict) and len(data) == 1):
            raise ProgramGarbled("a malformed value")
        ((tag, body),) = data.items()
        try:
            if tag == "$int" and isinstance(body, str) and HEX_RE.match(body):
                return int(body, 16)
            if tag == "$float" and body in ("nan", "inf", "-inf"):
                return float(body)
            if tag == "$bytes" and isinstance(body, str):
                return bytes.fromhex(body)
            if tag == "$ref" and type(body) is int and body >= 0:
                return Handle(self, body, self.generation)
            if isinstance(body, list):
                if tag == "$tuple":
                    return tuple(self.decode(v, depth + 1) for v in body)
                if tag == "$set":
                    return set(self.decode(v, depth + 1) for v in body)
                if tag == "$frozenset":
                    return frozenset(self.decode(v, depth + 1) for v in body)
                if tag == "$complex" and len(body) == 2:
                    re_, im = (self.decode(v, depth + 1) for v in body)
                    if type(re_) in (int, float) and type(im) in (int, float):
                        return complex(re_, im)
                if tag == "$dict":
                    pairs = [self.decode(p, depth + 1) for p in body]
                    if all(type(p) is list and len(p) == 2 for p in pairs):
                        return {k: v for k, v in pairs}
        except (TypeError, ValueError, RecursionError):
            pass
        raise ProgramGarbled("a malformed value")

    # Values sent to the program (the test's own, so trusted).
    def encode(self, value, depth=0):
        if depth > MAX_DEPTH:
            raise BadTest("the test passes a value nested too deeply")
        t = type(value)
        if value is None or t in (bool, str):
            return value
        if t is int:
            return value if -(1 << 53) <= value <= 1 << 53 else {"$int": format(value, "x")}
        if t is float:
            if math.isfinite(value):
                return value
            return {"$float": "nan" if value != value else ("inf" if value > 0 else "-inf")}
        if t is list:
            return [self.encode(v, depth + 1) for v in value]
        if t is tuple:
            return {"$tuple": [self.encode(v, depth + 1) for v in value]}
        if t is dict:
            return {"$dict": [[self.encode(k, depth + 1), self.encode(v, depth + 1)]
                              for k, v in value.items()]}
        if t is set:
            return {"$set": [self.encode(v, depth + 1) for v in value]}
        if t is frozenset:
            return {"$frozenset": [self.encode(v, depth + 1) for v in value]}
        if t in (bytes, bytearray):
            return {"$bytes": bytes(value).hex()}
        if t is complex:
            return {"$complex": [self.encode(value.real), self.encode(value.imag)]}
        if t is Handle and value._program is self and value._generation == self.generation:
            return {"$ref": value._ref}
        origin = importable_name(value)
        if origin is not None:
            return {"$object": origin}
        raise BadTest("the test passes the program a %s, which cannot be sent" % t.__name__)

    def call(self, ref, args, kwargs):
        return self.value(self.ask({
            "op": "call", "ref": ref,
            "args": [self.encode(a) for a in args],
            "kwargs": {k: self.encode(v) for k, v in kwargs.items()},
        }))

    def apply(self, fn, ref, *args):
        return self.value(self.ask({
            "op": "apply", "fn": fn, "ref": ref, "args": [self.encode(a) for a in args],
        }))


def importable_name(value):
    """[module, qualname] when `value` is what importing that name gives (a builtin type or
    function, a standard library object), else None."""
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not (isinstance(module, str) and isinstance(qualname, str)) or "<" in qualname:
        return None
    if trusted_object(module, qualname) is not value:
        return None
    return [module, qualname]


def checked(value, kind, what):
    if type(value) is not kind:
        raise TypeError("the program's %s gave a %s, not a %s"
                        % (what, type(value).__name__, kind.__name__))
    return value


class Handle:
    """An object that stays in the program's process. Calls, attribute reads, iteration and
    conversions are answered by the program as data; equality and hashing are identity here,
    so no object of the program decides a comparison."""

    __slots__ = ("_program", "_ref", "_generation")

    def __init__(self, program, ref, generation):
        self._program = program
        self._ref = ref
        self._generation = generation

    def __call__(self, *args, **kwargs):
        return self._program.call(self._ref, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._program.value(
            self._program.ask({"op": "getattr", "ref": self._ref, "name": name}))

    def __setattr__(self, name, value):
        if name in Handle.__slots__:
            object.__setattr__(self, name, value)
            return
        program = self._program
        program.value(program.ask({"op": "setattr", "ref": self._ref, "name": name,
                                   "value": program.encode(value)}))

    def __iter__(self):
        it = self._program.apply("iter", self._ref)
        return it if type(it) is Handle else iter(it)

    def __next__(self):
        return self._program.apply("next", self._ref)

    def __len__(self):
        n = checked(self._program.apply("len", self._ref), int, "len()")
        if n < 0:
            raise ValueError("__len__() should return >= 0")
        return n

    def __bool__(self):
        return checked(self._program.apply("bool", self._ref), bool, "bool()")

    def __str__(self):
        return checked(self._program.apply("str", self._ref), str, "str()")

    def __repr__(self):
        return checked(self._program.apply("repr", self._ref), str, "repr()")

    def __int__(self):
        return checked(self._program.apply("int", self._ref), int, "int()")

    __index__ = __int__

    def __float__(self):
        return checked(self._program.apply("float", self._ref), float, "float()")

    def __getitem__(self, key):
        return self._program.apply("getitem", self._ref, key)

    def __contains__(self, item):
        return checked(self._program.apply("contains", self._ref, item), bool, "in")


# ---- one judgement ----


def run_job(job, program, emit):
    """Judges one program on job["tests"], reporting through `emit`. Returns when done."""
    wall_limit = float(job["wall_limit"]) + 1.0
    startup = float(job["startup"])
    timer = {"armed": False}

    def on_alarm(signum, frame):
        if timer["armed"]:
            raise TestTimeLimit()

    signal.signal(signal.SIGALRM, on_alarm)

    def arm(seconds):
        timer["armed"] = True
        signal.setitimer(signal.ITIMER_REAL, seconds)

    def disarm():
        timer["armed"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)

    current = {"i": None}

    def startup_message():
        arm(startup)
        try:
            return program.receive()
        finally:
            disarm()

    try:
        try:
            first = startup_message()
        except (TestTimeLimit, ProgramGarbled):
            first = None
        if first is None or first.get("started") is not True:
            emit({"ev": "lost", "i": None})
            return
        emit({"ev": "ready"})
        try:
            compiled = startup_message()
        except TestTimeLimit:
            emit({"ev": "compile_error", "message": "compilation did not finish in time"})
            return
        except ProgramGarbled as exc:
            emit({"ev": "compile_error", "message": "the program's process misbehaved: %s" % exc})
            return
        if "compile_error" in compiled:
            message = compiled["compile_error"]
            emit({"ev": "compile_error", "message": clip(message if isinstance(message, str)
                                                         else "compile error")})
            return
        if type(compiled.get("compiled")) is not int:
            emit({"ev": "compile_error", "message": "the program's process misbehaved"})
            return
        emit({"ev": "compiled", "candidate": compiled["compiled"]})
        runners = {"stdin": run_stdin, "functional": run_functional, "assert": run_assert}
        for i, test in enumerate(job["tests"]):
            current["i"] = i
            emit({"ev": "start", "i": i})
            try:
                arm(wall_limit)
                try:
                    event = runners[test["kind"]](test, program, job)
                finally:
                    disarm()
            except BadTest as exc:
                event = {"ev": "bad_test", "message": str(exc)}
            except TestTimeLimit:
                event = {"ev": "fail", "why": "time_limit",
                         "error": "time limit exceeded (wall-clock, judged by the referee)"}
            except ProgramLimit as exc:
                event = {"ev": "fail", "why": exc.why, "error": exc.text}
            except ProgramGarbled as exc:
                event = {"ev": "fail", "why": "runtime_error",
                         "error": "the program's answer could not be read: %s" % exc}
            event["i"] = i
            emit(event)
            if event["ev"] != "pass":
                return
        emit({"ev": "done"})
    except ProgramLost:
        disarm()
        emit({"ev": "lost", "i": current["i"]})


def program_error(answer):
    error = answer.get("error")
    if error is None:
        return None
    if not isinstance(error, dict):
        raise ProgramGarbled("malformed error report")
    exc = raised(error)
    return exc.why, exc.text


def run_stdin(test, program, job):
    program.ask({"op": "begin"})
    answer = program.ask({"op": "stdin", "input": test["input"]})
    stdout = answer.get("stdout")
    if not isinstance(stdout, str):
        raise ProgramGarbled("no standard output in the answer")
    error = program_error(answer)
    if error is not None:
        return {"ev": "fail", "why": error[0], "error": error[1], "actual": clip(stdout)}
    if stdout_matches(stdout, test["output"]):
        return {"ev": "pass"}
    return {"ev": "fail", "why": "wrong_answer", "actual": clip(stdout)}


def run_functional(test, program, job):
    try:
        args = [json.loads(line) for line in test["input"].split("\n") if line.strip()]
        expected = json.loads(test["output"])
    except ValueError as exc:
        raise BadTest("test data is not JSON: %s" % exc)
    program.ask({"op": "begin"})
    answer = program.ask({"op": "functional", "name": test["function"],
                          "args": [program.encode(a) for a in args]})
    try:
        result = as_lists(program.value(answer))
    except ProgramRaised as exc:
        return {"ev": "fail", "why": exc.why, "error": exc.text}
    except StopIteration:
        raise ProgramGarbled("an answer with neither value nor error")
    if result == expected:
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


def trusted_object(module, qualname):
    """`module.qualname` imported here, or None."""
    import importlib

    try:
        value = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
        return value
    except BaseException:
        return None


def namespace(test, program, job, names):
    """The test's namespace: builtins, the dataset's own definitions (`prelude`, as HumanEval's
    prompt), then the program's names. The function under test always comes from the program;
    any other name of the program that shadows a builtin, a standard module or a definition of
    the prelude is left out, so the test's helpers stay the trusted ones."""
    ns = {"__builtins__": builtins, "__name__": "solution"}
    prelude = job.get("prelude")
    if prelude:
        try:
            exec(compile(prelude, "prelude.py", "exec"), ns)
        except (TestTimeLimit, ProgramLost):
            raise
        except BaseException as exc:
            raise BadTest("the problem's own code does not run: %s: %s" % (type(exc).__name__, exc))
    entry = job.get("entry_point")
    only_entry = bool(prelude) and entry is not None
    standard_modules = getattr(sys, "stdlib_module_names", ())
    for name, info in names.items():
        if not isinstance(name, str) or not isinstance(info, dict) or len(info) != 1:
            raise ProgramGarbled("a malformed name")
        if name != entry and (only_entry or name in ns or hasattr(builtins, name)):
            continue
        if name != entry and name in standard_modules:
            # The test may use the module the program imported; it gets the real one.
            import importlib

            try:
                ns[name] = importlib.import_module(name)
            except BaseException:
                pass
            continue
        ((kind, body),) = info.items()
        if kind == "module" and isinstance(body, str):
            import importlib

            try:
                value = importlib.import_module(body)
            except BaseException:
                continue
        elif kind == "object" and isinstance(body, list) and len(body) == 2 and all(
                isinstance(b, str) for b in body):
            value = trusted_object(body[0], body[1])
            if value is None:
                continue
        elif kind == "value":
            value = program.decode(body)
        else:
            raise ProgramGarbled("a malformed name")
        ns[name] = value
    return ns


def run_assert(test, program, job):
    try:
        setup = compile(test["setup"], "test_setup.py", "exec")
        check = compile(test["assertion"], "test.py", "exec")
    except SyntaxError as exc:
        raise BadTest("test does not parse: %s" % exc)
    SOURCES.clear()
    SOURCES.update({"test_setup.py": test["setup"], "test.py": test["assertion"],
                    "prelude.py": job.get("prelude") or ""})
    program.ask({"op": "begin"})
    program.generation += 1
    answer = program.ask({"op": "load"})
    if "names" not in answer:
        error = program_error(answer)
        if error is None:
            raise ProgramGarbled("an answer with neither names nor error")
        return {"ev": "fail", "why": error[0], "error": error[1]}
    if not isinstance(answer["names"], dict):
        raise ProgramGarbled("a malformed list of names")
    ns = namespace(test, program, job, answer["names"])
    try:
        exec(setup, ns)
        exec(check, ns)
        return {"ev": "pass"}
    except (TestTimeLimit, ProgramLost, ProgramLimit, ProgramGarbled, BadTest):
        raise
    except ProgramRaised as exc:
        return {"ev": "fail", "why": "runtime_error", "error": exc.text}
    except BaseException as exc:
        why = "wrong_answer" if isinstance(exc, AssertionError) and raised_in_test(exc) \
            else "runtime_error"
        event = {"ev": "fail", "why": why, "error": describe(exc)}
        if why == "wrong_answer":
            sides = compared_sides(test["assertion"])
            if sides is not None:
                try:
                    value = eval(sides, ns)
                except (TestTimeLimit, ProgramLost, ProgramLimit):
                    raise
                except BaseException:
                    value = None
                if isinstance(value, tuple) and len(value) == 2:
                    event["actual"] = safe_repr(value[0])
                    event["expected"] = safe_repr(value[1])
        return event


def raised_in_test(exc):
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    return last is not None and last.tb_frame.f_code.co_filename in TEST_FILES


SOURCES = {}


def describe(exc):
    """The last lines of a traceback through the test's own code."""
    import linecache
    import traceback

    try:
        for filename, source in SOURCES.items():
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename not in TEST_FILES + ("prelude.py",):
            tb = tb.tb_next
        lines = traceback.format_exception(type(exc), exc, tb, limit=-6)
        text = "".join(lines).rstrip("\n").split("\n")
        return clip("\n".join(text[-8:]))
    except BaseException:
        return "%s (traceback unavailable)" % type(exc).__name__


# ---- serving the sandbox ----


def read_exactly(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return bytes(data)


def make_undumpable():
    """Keeps processes of the same user from reading this one's memory through /proc."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except BaseException:
        pass


def main():
    sock = socket.socket(fileno=int(sys.argv[1]))
    make_undumpable()
    sys.setrecursionlimit(10000)
    while True:
        try:
            marker, fds, _, _ = socket.recv_fds(sock, 1, 2)
        except OSError:
            return
        if not marker:
            return
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            sock.sendall(b'{"ev": "end", "error": "no program channel"}\n')
            continue
        request_fd, answer_fd = fds
        try:
            (length,) = struct.unpack("<Q", read_exactly(sock, 8))
            job = json.loads(read_exactly(sock, length))

            def emit(event):
                sock.sendall((json.dumps(event) + "\n").encode())

            program = Program(request_fd, answer_fd, int(job["answer_cap"]))
            run_job(job, program, emit)
        finally:
            os.close(request_fd)
            os.close(answer_fd)
        sock.sendall(b'{"ev": "end"}\n')


if __name__ == "__main__":
    main()
