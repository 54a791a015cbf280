# Soak run on the MicroPython unix port (tools/soak.py, `make soak`; a short run in tests/test_soak.py):
#   1. N invokes of a real packed model through the C engine, input rewritten each time, output checked
#      bit-exact every 1000 invokes, settled heap measured after each tenth of the run;
#   2. the mpyml.app super-loop for S seconds on the same model: a replay sensor reading straight into the
#      model's input, injected sensor faults (every 97th read, plus bursts of 6 at reads 1000, 3000, 30000,
#      300000 and 1000000 that trigger sensor.reinit()),
#      Threshold postprocessing, a watchdog; counts and heap reported.
# Parameters (MPYML_TEST_ARGS JSON): model, invokes, seconds, expect_hex (output for the all-zero input;
# default: the first invoke's).
# Output: VALUE lines (mptest.report) and "SOAK OK" at the end; any check failing raises (exit 1).
import gc
import time

from heapcheck import settled_free
from mptest import arg, eq, report

import mpyml
from mpyml.app import App, SoftWDT, Threshold
from mpyml.sensors.replay import Faulty, ReplaySeries

HEAP_NOISE = 512   # bytes the GC's conservative stack scan may keep alive at one measurement


class ReinitReplay(ReplaySeries):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.reinit_calls = 0                  # set here: a new attribute later would be heap "growth"

    def reinit(self):
        self.reinit_calls += 1


def invokes(m, n, zero_out):
    inp = m.input.buffer
    zero = bytes(len(inp))
    step = max(1, n // 10)
    windows = [0] * 10
    mismatches = 0
    for _ in range(min(n, 1000)):              # warm-up: first-call caches are not growth
        inp[:] = zero
        m.invoke()
    out = bytearray(len(zero_out))
    out[:] = m.output.buffer
    free0 = settled_free()
    t0 = time.ticks_ms()
    i = 0
    while i < n:
        inp[:] = zero
        m.invoke()
        i += 1
        if i % 1000 == 0:
            out[:] = m.output.buffer           # into a preallocated copy: no 4 KB garbage block per check
            if out != zero_out:
                mismatches += 1
        if i % step == 0 and i // step <= 10:
            windows[i // step - 1] = free0 - settled_free()
    dt = time.ticks_diff(time.ticks_ms(), t0)
    report("invokes", n)
    report("invoke_seconds", dt / 1000)
    report("invokes_per_s", n * 1000 / dt if dt else 0)
    report("invoke_heap_loss_per_window", windows)
    report("invoke_output_mismatches", mismatches)
    eq(mismatches, 0, "outputs differ from the first run's")
    if windows and max(windows) > HEAP_NOISE:
        raise AssertionError("heap lost during invokes: %r bytes per window" % (windows,))


def super_loop(m, seconds):
    n_in = m.input.size
    rows = 64
    data = bytearray(rows * n_in)
    for r in range(rows):                      # row 9, 19, ... is bright: the threshold fires on those
        v = 100 if r % 10 == 9 else 3
        for j in range(n_in):
            data[r * n_in + j] = (v + 7 * j) & 0x7F
    bursts = tuple(range(1000, 1006)) + tuple(range(3000, 3006)) + tuple(range(30000, 30006)) + tuple(range(300000, 300006)) \
        + tuple(range(1000000, 1000006))
    replay = ReinitReplay(data, "B", loop=True, cols=n_in)
    sensor = Faulty(replay, fail_at=bursts, fail_every=97)
    wdt = SoftWDT(5000)
    post = Threshold(m, 0, 0.5)
    app = App(sensor, m.input.buffer, model=m, post=post, wdt=wdt, retry_ms=0, sleep="none", heap_every=64)
    app.run(cycles=1200)                       # warm-up past the first fault burst: first-call caches, reinit
    app.reset_stats()
    chunk_ms = max(200, min(10000, int(seconds * 100)))
    samples = [0] * (int(seconds * 1000) // chunk_ms + 2)   # allocated before the baseline, never grown
    k = 0
    f0 = sensor.failures
    feeds0 = wdt.feeds
    free0 = settled_free()
    t_end = time.ticks_add(time.ticks_ms(), int(seconds * 1000))
    while time.ticks_diff(t_end, time.ticks_ms()) > 0:
        left = time.ticks_diff(t_end, time.ticks_ms())
        app.run(duration_ms=max(1, min(chunk_ms, left)))
        if k < len(samples):
            samples[k] = free0 - settled_free()
            k += 1
    free1 = settled_free()
    s = app.stats()
    faults = sensor.failures - f0
    report("loop_seconds", s["elapsed_ms"] / 1000)
    report("loop_cycles", s["cycles"])
    report("loop_ok_cycles", s["ok_cycles"])
    report("loop_cycles_per_s", s["cycles_per_s"])
    report("loop_read_errors", s["read_errors"])
    report("loop_injected_faults", faults)
    report("loop_reinits", s["reinits"])
    report("loop_detections", s["detections"])
    report("loop_stage_errors", s["stage_errors"])
    report("loop_wdt_feeds", wdt.feeds - feeds0)
    report("loop_wdt_starved", wdt.starved())
    report("loop_heap_start", free0)
    report("loop_heap_end", free1)
    report("loop_heap_min_unsettled", s["heap_min"])
    report("loop_heap_loss_samples_max", max(samples) if samples else 0)
    report("loop_invoke_max_ms", s["latency"]["invoke"]["max_ms"])
    report("loop_cycle_avg_ms", s["latency"]["cycle"]["avg_ms"])
    eq(s["read_errors"], faults, "every injected fault counted")
    eq(s["ok_cycles"] + s["read_errors"], s["cycles"], "every cycle either completed or counted a fault")
    eq(wdt.feeds - feeds0, s["ok_cycles"], "watchdog fed once per completed cycle")
    eq(s["stage_errors"], 0, "stage errors")
    eq(s["reinits"], replay.reinit_calls - 1, "reinit calls (one during the warm-up)")
    report("loop_heap_loss_samples", samples[:k])
    if samples and max(samples) > HEAP_NOISE:
        raise AssertionError("heap lost during the loop: up to %d bytes" % max(samples))


def main():
    m = mpyml.load(arg("model"), engine="c")
    eq(m.engine, "mpyml_engine", "engine")
    if arg("expect_hex"):
        zero_out = bytes.fromhex(arg("expect_hex"))
    else:                                      # reference: the first run's output
        m.input.buffer[:] = bytes(m.input.size)
        m.invoke()
        zero_out = bytes(m.output.buffer)
    gc.collect()
    invokes(m, int(arg("invokes", 100000)), zero_out)
    super_loop(m, float(arg("seconds", 600)))
    print("SOAK OK")


main()
