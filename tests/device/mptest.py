# Minimal test runner for device-side tests (run by pytest under the MicroPython unix port).
#
# A device test file defines test_* functions and ends with `mptest.main(globals())`. The host
# passes parameters as JSON in the environment variable MPYML_TEST_ARGS (paths of data files,
# expected values computed with NumPy). Output: "PASS name" / "FAIL name" lines, then
# "RESULT <passed> <failed>"; the exit status is 1 when anything failed.
import json
import os
import sys

ARGS = json.loads(os.getenv("MPYML_TEST_ARGS") or "{}")


def arg(name, default=None):
    return ARGS.get(name, default)


def eq(a, b, what=""):
    if a != b:
        raise AssertionError("%s: %r != %r" % (what, a, b))


def near(a, b, tol, what=""):
    if abs(a - b) > tol:
        raise AssertionError("%s: %r differs from %r by more than %r" % (what, a, b, tol))


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc:
        return
    raise AssertionError("%s not raised" % exc.__name__)


def report(key, value):
    """A value for the host side to check or record: printed as 'VALUE key <json>'."""
    print("VALUE", key, json.dumps(value))


def main(globs):
    only = arg("only")
    names = sorted(k for k in globs if k.startswith("test_") and callable(globs[k]) and (not only or k in only))
    if only:
        unknown = [k for k in only if k not in globs or not k.startswith("test_")]
        if unknown:
            print("FAIL unknown test name(s)", unknown)
            print("RESULT 0 1")
            sys.exit(1)
    if not names:
        print("FAIL no test selected")
        print("RESULT 0 1")
        sys.exit(1)
    failed = 0
    for n in names:
        try:
            globs[n]()
            print("PASS", n)
        except Exception as e:
            failed += 1
            print("FAIL", n, repr(e))
            sys.print_exception(e)
    print("RESULT", len(names) - failed, failed)
    sys.exit(1 if failed else 0)
