# Allocation checks for device-side tests: run a function with the heap locked.
import gc

import micropython


def allocates(fn, arg=None, arg2=None, nargs=1):
    """True when fn(arg[, arg2]) allocates on the heap (run once with the heap locked).

    (Fixed arity on purpose: a call with *args allocates by itself.)"""
    gc.collect()
    micropython.heap_lock()
    try:
        if nargs == 0:
            fn()
        elif nargs == 1:
            fn(arg)
        else:
            fn(arg, arg2)
        return False
    except MemoryError:
        return True
    finally:
        micropython.heap_unlock()


def flat(fn, n, *args):
    """(free before, free after) n calls of fn, each measured after gc.collect()."""
    gc.collect()
    before = gc.mem_free()
    for _ in range(n):
        fn(*args)
    gc.collect()
    return before, gc.mem_free()


def _scrub(n=64):
    # overwrite stale stack slots (the GC scans the C stack conservatively: a dead pointer left
    # there would keep a garbage block alive and show up as "growth")
    a = b = c = d = e = f = g = h = 0
    if n:
        _scrub(n - 1)
    return a + b + c + d + e + f + g + h


def settled_free():
    """gc.mem_free() after scrubbing the stack and collecting twice."""
    _scrub()
    gc.collect()
    gc.collect()
    return gc.mem_free()
