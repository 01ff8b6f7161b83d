# ruff: noqa: UP031  (MicroPython code: % formatting is its cheapest)
"""Runs the test_* functions of one module under MicroPython: `micropython runner.py unit_x`.

Prints `PASS name` or `FAIL name: error` per test and `DONE passed failed` last.
"""

import sys

name = sys.argv[1]
module = __import__(name)
passed = failed = 0
for attr in sorted(dir(module)):
    if not attr.startswith("test_"):
        continue
    try:
        getattr(module, attr)()
    except Exception as err:  # report every failure, keep running the others
        failed += 1
        print("FAIL %s: %s %r" % (attr, type(err).__name__, err))
        sys.print_exception(err)
    else:
        passed += 1
        print("PASS " + attr)
print("DONE %d %d" % (passed, failed))
