# Allocation checks for device-side tests: run a function with the heap locked.
import gc

import micropython


def allocates(fn, *args):
    """True when fn(*args) allocates on the heap (it is run once with the heap locked)."""
    gc.collect()
    micropython.heap_lock()
    try:
        fn(*args)
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
