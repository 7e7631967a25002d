"""The audited sandbox and the integrity snapshot: each vector a learner file attempts, refused
or detected, on the cold path and the warm one."""

from __future__ import annotations

import textwrap

import pytest
from test_cheats_outcomes import double_does, message_of

from checker.catalog import PACKAGE_DIR

CHECKS_FILE = PACKAGE_DIR / "checks" / "test_strides.py"

# (what the file tries, the body of its `double`, words the learner must read)
AUDITED = [
    ("caller's frame", "return sys._getframe(1).f_locals['expected']", "frame introspection"),
    ("frame via inspect", "import inspect\n    return inspect.currentframe().f_back.f_locals['x']",
     "frame introspection"),
    ("frame via a traceback",
     "try:\n        raise ValueError\n    except ValueError as e:\n        e.__traceback__.tb_frame",
     "frame"),
    ("frame of a generator", "(i for i in ()).gi_frame", "frame"),
    ("every thread's frames", "sys._current_frames()", "frames"),
    ("gc objects", "import gc\n    gc.get_objects()", "garbage collector"),
    ("gc referrers", "import gc\n    gc.get_referrers(x)", "garbage collector"),
    ("file outside the scratch folder", "open('/tmp/kata-cheat-out.txt', 'w').write('x')",
     "writing /tmp/kata-cheat-out.txt"),
    ("rename outside the scratch folder", "import os\n    os.rename('/tmp/a-kata', '/tmp/b-kata')",
     "scratch folder"),
    ("reading the checks", f"open({str(CHECKS_FILE)!r}).read()", "checker's own files"),
    ("importing a judge module", "import importlib\n    importlib.import_module('_pytest.pytester')",
     "judge's own packages"),
    ("ctypes", "import ctypes\n    ctypes.CDLL(None).getpid()", "ctypes"),
    ("subprocess", "import subprocess\n    subprocess.run(['true'])", "processes"),
    ("os.system", "import os\n    os.system('true')", "processes"),
    ("os.execv", "import os\n    os.execv('/bin/true', ['true'])", "processes"),
    ("os.posix_spawn", "import os\n    os.posix_spawn('/bin/true', ['true'], {})", "processes"),
    ("os.kill", "import os, signal\n    os.kill(os.getpid(), signal.SIGKILL)", "signals"),
    ("os.killpg", "import os, signal\n    os.killpg(os.getpgid(0), signal.SIGKILL)", "signals"),
    ("setrlimit", "import resource\n    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))",
     "resource limits"),
    ("settrace", "sys.settrace(lambda *a: None)", "tracing"),
    ("setprofile", "sys.setprofile(lambda *a: None)", "tracing"),
    ("addaudithook", "seen = []\n    sys.addaudithook(lambda e, a: seen.append(e))\n    "
     "sys.audit('kata.test')\n    assert seen, 'the hook was not added'", "was not added"),
    ("chdir", "import os\n    os.chdir('/')", "working directory"),
    ("a code object under another file name",
     "double.__code__.replace(co_filename='/torch/x.py')", "code objects"),
]


@pytest.mark.parametrize(("body", "words"), [(b, w) for _, b, w in AUDITED],
                         ids=[name for name, _, _ in AUDITED])
def test_the_audit_hook_refuses(judge_file, body, words):
    message = message_of(judge_file("gamma", double_does(body)))
    assert words in message, message


TAMPERING = [
    ("pytest's runtest", "pytest.Function.runtest = lambda self: None", "runtest"),
    ("TestReport.from_item_and_call",
     "R = sys.modules['_pytest.reports'].TestReport\n    f = R.from_item_and_call\n    "
     "def forged(item, call):\n        report = f(item, call)\n        report.outcome = 'passed'\n"
     "        return report\n    R.from_item_and_call = staticmethod(forged)", "from_item_and_call"),
    ("checker.plugin.write_json", "sys.modules['checker.plugin'].write_json = print", "write_json"),
    ("numpy.any", "import numpy\n    numpy.any = lambda *a, **k: False", "numpy.any"),
    ("a private helper", "sys.modules['checker.helpers']._plain = lambda v, w: 0", "_plain"),
    ("the check module's own names",
     "sys.modules['test_gamma'].assert_close = lambda *a, **k: None", "assert_close"),
    ("a helper's code",
     "sys.modules['checker.helpers'].assert_close.__code__ = (lambda *a, **k: None).__code__",
     "off-limits"),
    ("a helper's defaults", "f = sys.modules['checker.helpers'].assert_close\n    "
     "f.__kwdefaults__ = dict(f.__kwdefaults__ or {}, rtol=1e9)", "off-limits"),
]


@pytest.mark.parametrize(("body", "words"), [(b, w) for _, b, w in TAMPERING],
                         ids=[name for name, _, _ in TAMPERING])
@pytest.mark.parametrize("when", ["call", "import"])
def test_tampering_with_the_judge_fails_the_run(judge_file, body, words, when):
    if when == "call":
        source = double_does(body)
    else:
        head = "import sys\npytest = sys.modules['pytest']\n" + body.replace("\n    ", "\n") + "\n"
        source = double_does("pass", head=head)
    message = message_of(judge_file("gamma", source))
    assert words in message, message


# What the judge's own defences use, rebound so that they would see nothing, together with a
# check's comparison: the hook and the snapshot hold what they were made with.
BLINDING = [
    ("a builtin the audit hook calls",
     "import builtins\n    g = builtins.getattr\n    "
     "builtins.getattr = lambda o, n, *d: True if n == 'on' else g(o, n, *d)", "builtins.getattr"),
    ("the snapshot's comparison", "sys.modules['checker.sandbox.integrity'].Snapshot.changes = "
     "property(lambda self: lambda near_only=False: [])", "test_gamma.assert_close"),
]


@pytest.mark.parametrize(("body", "words"), [(b, w) for _, b, w in BLINDING],
                         ids=[name for name, _, _ in BLINDING])
def test_blinding_the_judge_is_seen_all_the_same(judge_file, body, words):
    body += "\n    sys.modules['test_gamma'].assert_close = lambda *a, **k: None"
    message = message_of(judge_file("gamma", double_does(body)))
    assert words in message, message


def test_silencing_the_calls_to_the_hook_fails_the_run(judge_file):
    """With the judge's calls to the hook gone, the hook still sees the report being written:
    the change is named there, or (the window's close having gone unsaid, so the hook holds
    every later write to be the learner's) the report is refused and the run fails closed."""
    body = ("sys.modules['checker.sandbox.audit']._audit = lambda *a: None\n    "
            "sys.modules['test_gamma'].assert_close = lambda *a, **k: None")
    message = message_of(judge_file("gamma", double_does(body)))
    assert "audit._audit" in message or "before it could report" in message, message


def test_a_thread_left_running_fails_the_call(judge_file):
    body = ("import threading, time\n    "
            "threading.Thread(target=time.sleep, args=(5,), daemon=True).start()")
    message = message_of(judge_file("gamma", double_does(body)))
    assert "still running" in message, message


def test_a_thread_that_patches_after_the_call_is_caught(judge_file):
    body = ("import threading, time, numpy\n    "
            "def later():\n        time.sleep(0.05)\n        numpy.allclose = lambda *a, **k: True\n    "
            "threading.Thread(target=later).start()")
    message = message_of(judge_file("gamma", double_does(body)))
    assert "numpy.allclose" in message or "values differ" in message, message


def test_a_thread_started_at_import_that_outlives_it_fails_the_file(judge_file):
    head = "import threading, time\nthreading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
    result = judge_file("gamma", double_does("pass", head=head))
    assert result.status == "load_error" and "still running" in result.message, result.message


def test_a_correct_file_that_uses_its_scratch_folder_and_threads_passes(judge_file):
    source = textwrap.dedent("""
        import os, tempfile, threading
        import torch

        def double(x):
            with open("notes.txt", "w") as fh:  # the working directory is the scratch folder
                fh.write("ok")
            with tempfile.NamedTemporaryFile() as fh:
                torch.save(x, fh.name)
            out = []
            t = threading.Thread(target=lambda: out.append(2 * x))
            t.start()
            t.join()
            print("printing is fine")
            return out[0]
    """)
    from test_cheats import SOLUTION_REST

    assert judge_file("gamma", source + SOLUTION_REST).passed


# A learner's permute_meta that validates nothing: on the first bad `dims` it rebinds the check
# module's `expect_raises` to a stand-in that checks nothing and puts the original back after
# the check's last use, and only then raises. The judge compares its own modules as every
# call into learner code ends, whether the call returned or raised.
RAISE_AFTER_PATCHING = '''
import sys

_patched = []


def permute_meta(shape, strides, dims):
    n = len(shape)
    if sorted(d % n if n else d for d in dims) != list(range(n)) and not _patched:
        module = sys.modules["checker.checks.test_strides"]
        real, uses = module.expect_raises, []

        def nothing_checked(*args, **kwargs):
            uses.append(1)
            if len(uses) == 7:  # the check's last use: the original is back before it ends
                module.expect_raises = real

        module.expect_raises = nothing_checked
        _patched.append(1)
        raise ValueError("not a permutation")
    dims = [d % n for d in dims]
    return tuple(shape[d] for d in dims), tuple(strides[d] for d in dims)
'''


@pytest.mark.parametrize("path", ["cold", "warm"])
def test_a_patch_made_by_a_call_that_raises_is_caught(request, tmp_path, path):
    from checker.catalog import load_catalog
    from checker.runner import run_checks

    kata = load_catalog().get("strides")
    solution = kata.solution_path.read_text()
    source = solution.replace("def permute_meta(", "def _reference_permute_meta(", 1)
    learner = tmp_path / "strides.py"
    learner.write_text(source + RAISE_AFTER_PATCHING)
    run = run_checks if path == "cold" else request.getfixturevalue("warm")
    result = run(kata, learner, seed=11, diagnose=False, only="permute_meta")
    assert not result.passed, result
    message = next(e for e in result.exercises if e.name == "permute_meta").message
    assert "test_strides.expect_raises" in message, message
