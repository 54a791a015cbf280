# mpyml.app: the on-device super-loop and its postprocessing.
#
#   app = App(sensor, buf, model=m, pre=fill_input, post=Threshold(1, 0.6, m), act=led_on,
#             period_ms=200, wdt_ms=5000)
#   app.run()                 # read -> preprocess -> invoke -> postprocess -> act, every period_ms
#   app.print_stats()         # from the REPL (after Ctrl-C, or while run(cycles=...) is not running)
#
# One cycle: sensor.read_into(buf); for each task: ok = pre(buf, model) (False skips the model this
# cycle), model.invoke(), event = post(model); act(event, app) for an event that is not None.
# Tasks after the first form a cascade: each runs only when the task before it produced an event
# (a small always-on model gates a bigger one).
# The watchdog is fed only after a successful cycle. Sensor errors (OSError, SensorError) are
# counted and the read retried next cycle (after retry_ms; sensor.reinit() after reinit_after
# errors in a row); EndOfData from a replay ends the loop; Ctrl-C stops it cleanly.
# Nothing is allocated per cycle by the loop itself (timings are small ints kept in preallocated
# objects), so with allocation-free sensors/pre/post the heap stays flat: tests check it with
# micropython.heap_lock().
import gc
import time

from mpyml.sensors import EndOfData

try:
    import machine
except ImportError:                                 # CPython (host tests) has no machine module
    machine = None

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_READ = const(0)
_PRE = const(1)
_INVOKE = const(2)
_POST = const(3)
_ACT = const(4)
_CYCLE = const(5)
STAGES = ("read", "pre", "invoke", "post", "act", "cycle")


def _ticks_us():
    return time.ticks_us()


# ------------------------------------------------------------------ watchdog


class SoftWDT:
    """Stand-in for machine.WDT where the port has none (unix): counts feeds, never resets."""

    def __init__(self, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        self.last = time.ticks_ms()

    def feed(self):
        self.feeds += 1
        self.last = time.ticks_ms()

    def starved(self):
        """True when not fed for longer than timeout ms (a real WDT would have reset the board)."""
        return time.ticks_diff(time.ticks_ms(), self.last) > self.timeout


def make_wdt(timeout_ms):
    """machine.WDT(timeout=timeout_ms) when the port has one, else a SoftWDT (a started hardware
    watchdog cannot be stopped: the loop must keep feeding it)."""
    if machine is not None and hasattr(machine, "WDT"):
        try:
            return machine.WDT(timeout=timeout_ms)
        except (TypeError, ValueError):
            return machine.WDT(0, timeout_ms)
    return SoftWDT(timeout_ms)


# ------------------------------------------------------------------ statistics


class StageStats:
    """Latency of one stage in microseconds: count, last, min, max, moving average, total."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.n = 0
        self.last = 0
        self.min = 0
        self.max = 0
        self.avg16 = 0          # exponential moving average x16 (weight 1/16), integer
        self.tot_ms = 0         # total = tot_ms * 1000 + tot_us (kept small-int on 32-bit boards)
        self.tot_us = 0

    def add(self, us):
        self.last = us
        if self.n == 0:
            self.min = self.max = us
            self.avg16 = us << 4
        else:
            if us < self.min:
                self.min = us
            if us > self.max:
                self.max = us
            self.avg16 += us - (self.avg16 >> 4)
        self.n += 1
        t = self.tot_us + us
        if t >= 1000:
            self.tot_ms += t // 1000
            t %= 1000
        self.tot_us = t

    def mean_us(self):
        return (self.tot_ms * 1000 + self.tot_us) / self.n if self.n else 0


# ------------------------------------------------------------------ postprocessing


def _s8(b):
    return b - 256 if b > 127 else b


def _raw_threshold(t, scale, zero_point):
    """Raw int8 value corresponding to the real value t (rounded up: raw > it means real > t)."""
    r = t / scale + zero_point
    q = int(r)
    if q < r:
        q += 1
    return -129 if q < -128 else (128 if q > 127 else q)


class Average:
    """Moving average of the raw int8 scores of an output tensor over the last `window` results.

    update(model) adds model.output; then sums[i] / count is the averaged raw score of class i.
    """

    def __init__(self, n_classes, window):
        import array
        self.n_classes = n_classes
        self.window = window
        self.hist = bytearray(n_classes * window)         # raw int8 scores, ring of `window` results
        self.sums = array.array("i", [0] * n_classes)
        self.count = 0
        self.pos = 0

    def reset(self):
        for i in range(len(self.hist)):
            self.hist[i] = 0
        for i in range(self.n_classes):
            self.sums[i] = 0
        self.count = 0
        self.pos = 0

    def update_raw(self, buf):
        nc = self.n_classes
        h, s = self.hist, self.sums
        o = self.pos * nc
        full = self.count == self.window
        for i in range(nc):
            if full:
                s[i] -= _s8(h[o + i])
            b = buf[i]
            h[o + i] = b
            s[i] += _s8(b)
        self.pos = (self.pos + 1) % self.window
        if not full:
            self.count += 1

    def update(self, model):
        self.update_raw(model.output.buffer)

    def top(self):
        """Index of the best class (its summed raw score is sums[index], over `count` results)."""
        s = self.sums
        best = 0
        for i in range(1, self.n_classes):
            if s[i] > s[best]:
                best = i
        return best


class RecognizeCommands:
    """Streaming command recognition like TFLM's micro_speech RecognizeCommands.

    Averages the last `window` results; an event (the class index) is reported when the averaged
    top class scores above `threshold` (a probability, 0..1 of the softmax output) and it differs
    from the previous detection or `suppression` results have passed since it. Results before
    `minimum_count` are ignored. Classes in `ignore` (e.g. silence, unknown) never fire.
    repeat=False: a detected class fires again only after the top class has changed in between
    (one event per gesture however long it lasts), not merely after `suppression` results.
    State after update: top, score (raw int8 average), is_new.
    """

    def __init__(self, model_or_output, window=3, threshold=0.7, suppression=10, minimum_count=3,
                 ignore=(), repeat=True):
        out = model_or_output.output if hasattr(model_or_output, "output") else model_or_output
        self.output = out
        n = out.size
        self.avg = Average(n, window)
        self.window = window
        self.raw_threshold = _raw_threshold(threshold, out.scale, out.zero_point)
        self.suppression = suppression
        self.minimum_count = min(minimum_count, window)
        self.ignore = tuple(ignore)
        self.repeat = repeat
        self.reset()

    def reset(self):
        self.avg.reset()
        self.top = -1
        self.score = -128
        self.is_new = False
        self.previous = -1
        self.since = 1 << 30
        self.detections = 0

    def __call__(self, model):
        avg = self.avg
        avg.update_raw(self.output.buffer)
        self.since += 1
        self.is_new = False
        if avg.count < self.minimum_count:
            return None
        top = avg.top()
        score = avg.sums[top] // avg.count
        self.top = top
        self.score = score
        if not self.repeat and top != self.previous and self.since > self.suppression:
            self.previous = -1                # the detected class has ended: it may fire again
        if score > self.raw_threshold and top not in self.ignore:
            if top != self.previous or (self.repeat and self.since > self.suppression):
                self.previous = top
                self.since = 0
                self.is_new = True
                self.detections += 1
                return top
        return None


class Threshold:
    """Event (the class index) when the raw score of class `index` exceeds `threshold` (a real value
    in the output tensor's units). Optional averaging over `window` results and suppression of
    repeats for `suppression` results after a detection."""

    def __init__(self, model_or_output, index, threshold, window=1, suppression=0):
        out = model_or_output.output if hasattr(model_or_output, "output") else model_or_output
        self.output = out
        self.index = index
        self.raw_threshold = _raw_threshold(threshold, out.scale, out.zero_point)
        self.avg = Average(out.size, window) if window > 1 else None
        self.suppression = suppression
        self.since = 1 << 30
        self.score = -128
        self.detections = 0

    def __call__(self, model):
        buf = self.output.buffer
        if self.avg is not None:
            self.avg.update_raw(buf)
            s = self.avg.sums[self.index] // self.avg.count
        else:
            s = _s8(buf[self.index])
        self.score = s
        self.since += 1
        if s > self.raw_threshold and self.since > self.suppression:
            self.since = 0
            self.detections += 1
            return self.index
        return None


class TopK:
    """The k best classes of the output: indices in .index[0:k], raw scores in .score[0:k].

    Returns index[0] as an event when its raw score exceeds threshold (real units; None = always).
    """

    def __init__(self, model_or_output, k=3, threshold=None):
        import array
        out = model_or_output.output if hasattr(model_or_output, "output") else model_or_output
        self.output = out
        self.k = k
        self.index = array.array("i", [0] * k)
        self.score = array.array("i", [0] * k)
        self.raw_threshold = -129 if threshold is None else _raw_threshold(threshold, out.scale, out.zero_point)

    def __call__(self, model):
        buf = self.output.buffer
        k = self.k
        idx, sc = self.index, self.score
        for j in range(k):
            sc[j] = -129
            idx[j] = -1
        for i in range(len(buf)):
            v = _s8(buf[i])
            if v > sc[k - 1]:
                j = k - 1
                while j > 0 and v > sc[j - 1]:
                    sc[j] = sc[j - 1]
                    idx[j] = idx[j - 1]
                    j -= 1
                sc[j] = v
                idx[j] = i
        return idx[0] if sc[0] > self.raw_threshold else None

    def dequantized(self, j=0):
        o = self.output
        return (self.score[j] - o.zero_point) * o.scale


class Reconstruction:
    """Anomaly score of an autoencoder: mean squared error between the model's input and output.

    The input is copied by before_invoke() (the App calls it between pre and invoke): the engine
    may reuse the input tensor's arena bytes for later tensors, so it is gone after invoke.
    Integer arithmetic only (nothing allocated per cycle): the input is rescaled to the output's
    quantization with a fixed multiplier, .sumsq = 16 * sum((out - in)^2) in output raw units,
    averaged over `window` results. Event (True) when the MSE in real units exceeds threshold;
    suppression: results to stay quiet after an event. .mse() gives the last MSE as a float.
    """

    def __init__(self, model, threshold=None, window=1, suppression=0):
        i, o = model.input, model.output
        if i.size != o.size:
            raise ValueError("autoencoder input and output sizes differ (%d, %d)" % (i.size, o.size))
        self.model_in, self.out = i.buffer, o.buffer
        self.inp = bytearray(i.size)                     # copy of the input, taken before invoke
        self._inp_mv = memoryview(self.inp)
        self.n = o.size
        self.in_zp, self.out_zp = i.zero_point, o.zero_point
        self.out_scale = o.scale
        self.m = int(i.scale / o.scale * 4096 + 0.5)      # input raw -> output raw units, x 2^12
        self.limit = -1
        if threshold is not None:
            self.set_threshold(threshold)
        self.sumsq = 0
        self.window = window
        self.suppression = suppression
        self.since = 1 << 30
        self.detections = 0
        self._hist = [0] * window
        self._pos = 0
        self._acc = 0
        self._count = 0

    def before_invoke(self, model):
        self._inp_mv[:] = self.model_in

    def set_threshold(self, threshold):
        self.threshold = threshold
        self.limit = int(threshold * 16 * self.n / (self.out_scale * self.out_scale))

    def _sumsq(self):
        inp, out = self.inp, self.out
        izp, ozp, m = self.in_zp, self.out_zp, self.m
        acc = 0
        for j in range(self.n):
            x = inp[j]
            y = out[j]
            # difference in output raw units x 64
            d = ((((x - 256 if x > 127 else x) - izp) * m) >> 6) - (((y - 256 if y > 127 else y) - ozp) << 6)
            acc += (d * d) >> 8                          # diff^2 * 16
        return acc

    def __call__(self, model):
        s = self._sumsq()
        if self.window > 1:
            self._acc += s - self._hist[self._pos]
            self._hist[self._pos] = s
            self._pos = (self._pos + 1) % self.window
            if self._count < self.window:
                self._count += 1
            s = self._acc // self._count
        self.sumsq = s
        self.since += 1
        if self.limit >= 0 and s > self.limit and self.since > self.suppression:
            self.since = 0
            self.detections += 1
            return True
        return None

    def mse(self):
        """Last mean squared reconstruction error in real (output) units."""
        return self.sumsq / 16 / self.n * self.out_scale * self.out_scale


# ------------------------------------------------------------------ the loop


class Task:
    """A model with its preprocessing and postprocessing.

    pre(raw, model) fills model.input.buffer from the raw sensor buffer; returning False skips the
    model this cycle (e.g. not enough new audio yet). post(model) returns an event or None; if post
    has a before_invoke(model) method it runs between pre and invoke.
    """

    def __init__(self, model, pre=None, post=None, name="model"):
        self.model = model
        self.pre = pre
        self.post = post
        # a postprocessor that needs the model input after invoke copies it here (Reconstruction)
        self.before_invoke = getattr(post, "before_invoke", None)
        self.name = name
        self.runs = 0
        self.events = 0
        self.invoke_us = StageStats()


class App:
    """The super-loop. See the module comment for what one cycle does."""

    def __init__(self, sensor, buf, model=None, pre=None, post=None, act=None, tasks=None,
                 period_ms=0, wdt=None, wdt_ms=0, sleep="auto", retry_ms=10, reinit_after=5,
                 strict=False, heap_every=64, name="app"):
        if tasks is None:
            tasks = [Task(model, pre, post)] if model is not None else []
        self.sensor = sensor
        self.buf = buf
        self.tasks = tuple(tasks)
        self.act = act
        self.period_ms = period_ms
        if wdt is None and wdt_ms:
            wdt = make_wdt(wdt_ms)
        self.wdt = wdt
        self.retry_ms = retry_ms
        self.reinit_after = reinit_after
        self.strict = strict
        self.heap_every = heap_every
        self.name = name
        self._sleep = self._pick_sleep(sleep)
        self.stage = tuple(StageStats() for _ in STAGES)
        self.running = False
        self.last_event = None
        self.last_error = None        # class of the last exception (not the object: see _note_error)
        self.last_errno = None
        self.reset_stats()

    @staticmethod
    def _pick_sleep(mode):
        light = getattr(machine, "lightsleep", None) if machine is not None else None
        if mode == "light" or (mode == "auto" and light is not None):
            if light is None:
                return time.sleep_ms
            return light
        if mode in ("auto", "ms"):
            return time.sleep_ms
        if mode == "none":
            return None
        raise ValueError("sleep must be 'auto', 'light', 'ms' or 'none'")

    def reset_stats(self):
        for s in self.stage:
            s.reset()
        for t in self.tasks:
            t.runs = 0
            t.events = 0
            t.invoke_us.reset()
        self.cycles = 0
        self.ok_cycles = 0
        self.detections = 0
        self.read_errors = 0
        self.stage_errors = 0
        self.consecutive_errors = 0
        self.reinits = 0
        self.overruns = 0
        self.slept_ms = 0
        self.t_start = time.ticks_ms()
        self.t_last = self.t_start
        gc.collect()
        self.heap_start = gc.mem_free()
        self.heap_min = self.heap_start

    # one cycle -----------------------------------------------------------------------------
    def step(self):
        """Run one cycle. Returns True when it completed (the watchdog was fed)."""
        st = self.stage
        t0 = time.ticks_us()
        self.cycles += 1
        try:
            self.sensor.read_into(self.buf)
        except EndOfData:
            self.running = False
            return False
        except OSError as e:              # SensorError is an OSError
            self._read_failed(e)
            return False
        t1 = time.ticks_us()
        st[_READ].add(time.ticks_diff(t1, t0))
        event = None
        try:
            first = True
            for task in self.tasks:
                if not first and event is None:
                    break                 # cascade: the previous task did not fire
                first = False
                event = None
                model = task.model
                ok = task.pre(self.buf, model) if task.pre is not None else True
                t2 = time.ticks_us()
                st[_PRE].add(time.ticks_diff(t2, t1))
                if ok is False:
                    t1 = t2
                    break
                if task.before_invoke is not None:
                    task.before_invoke(model)
                model.invoke()
                t3 = time.ticks_us()
                d = time.ticks_diff(t3, t2)
                st[_INVOKE].add(d)
                task.invoke_us.add(d)
                task.runs += 1
                if task.post is not None:
                    event = task.post(model)
                t1 = time.ticks_us()
                st[_POST].add(time.ticks_diff(t1, t3))
                if event is not None:
                    task.events += 1
            if event is not None:
                self.detections += 1
                self.last_event = event
                if self.act is not None:
                    self.act(event, self)
                t4 = time.ticks_us()
                st[_ACT].add(time.ticks_diff(t4, t1))
        except KeyboardInterrupt:
            raise
        except Exception as e:
            self.stage_errors += 1
            self._note_error(e)
            if self.strict:
                raise
            return False
        self.consecutive_errors = 0
        self.ok_cycles += 1
        if self.wdt is not None:
            self.wdt.feed()
        st[_CYCLE].add(time.ticks_diff(time.ticks_us(), t0))
        if self.heap_every and self.ok_cycles % self.heap_every == 0:
            f = gc.mem_free()
            if f < self.heap_min:
                self.heap_min = f
        return True

    def _note_error(self, e):
        # keep the class and errno only: holding the exception object (and its traceback) would
        # keep heap blocks alive and break the flat-heap guarantee
        a = e.args
        self.last_error = type(e)
        self.last_errno = a[0] if a and isinstance(a[0], int) else None

    def _read_failed(self, e):
        self.read_errors += 1
        self.consecutive_errors += 1
        self._note_error(e)
        if self.reinit_after and self.consecutive_errors % self.reinit_after == 0:
            re = getattr(self.sensor, "reinit", None)
            if re is not None:
                self.reinits += 1
                try:
                    re()
                except Exception as e2:
                    self._note_error(e2)
        if self.retry_ms and self._sleep is not None:
            time.sleep_ms(self.retry_ms)

    # the loop ------------------------------------------------------------------------------
    def run(self, cycles=0, duration_ms=0, print_every_ms=0):
        """Run cycles (0 = until EndOfData / Ctrl-C / stop()), keeping period_ms per cycle.

        Returns the stats dict. Ctrl-C stops the loop cleanly (the sensor stays open: call
        close() when done)."""
        self.running = True
        period = self.period_ms
        sleep = self._sleep
        t_end = time.ticks_add(time.ticks_ms(), duration_ms) if duration_ms else 0
        t_print = time.ticks_add(time.ticks_ms(), print_every_ms) if print_every_ms else 0
        n = 0
        try:
            while self.running:
                t0 = time.ticks_ms()
                self.step()
                n += 1
                if cycles and n >= cycles:
                    break
                now = time.ticks_ms()
                if duration_ms and time.ticks_diff(now, t_end) >= 0:
                    break
                if print_every_ms and time.ticks_diff(now, t_print) >= 0:
                    self.print_stats()
                    t_print = time.ticks_add(now, print_every_ms)
                if period:
                    rest = period - time.ticks_diff(now, t0)
                    if rest > 0:
                        if sleep is not None:
                            sleep(rest)
                            self.slept_ms += rest
                    else:
                        self.overruns += 1
        except KeyboardInterrupt:
            print("mpyml.app: stopped (Ctrl-C) after %d cycles" % n)
        finally:
            self.running = False
            self.t_last = time.ticks_ms()
        return self.stats()

    def stop(self):
        self.running = False

    def close(self):
        self.running = False
        c = getattr(self.sensor, "close", None)
        if c is not None:
            c()

    # statistics ----------------------------------------------------------------------------
    def stats(self):
        """Dict of counters and per-stage latencies (ms: last/min/max/avg), cycles per second, heap."""
        now = time.ticks_ms() if self.running else self.t_last
        el = time.ticks_diff(now, self.t_start)
        d = {
            "name": self.name,
            "cycles": self.cycles,
            "ok_cycles": self.ok_cycles,
            "cycles_per_s": (self.ok_cycles * 1000 / el) if el > 0 else 0.0,
            "elapsed_ms": el,
            "detections": self.detections,
            "read_errors": self.read_errors,
            "stage_errors": self.stage_errors,
            "reinits": self.reinits,
            "overruns": self.overruns,
            "duty": (1 - self.slept_ms / el) if el > 0 else 1.0,
            "wdt_feeds": getattr(self.wdt, "feeds", None),
            "heap_free": gc.mem_free(),
            "heap_start": self.heap_start,
            "heap_min": self.heap_min,
            "last_event": self.last_event,
            "last_error": ("%s(%s)" % (self.last_error.__name__, self.last_errno)
                           if self.last_error is not None else None),
            "tasks": [(t.name, t.runs, t.events) for t in self.tasks],
        }
        lat = {}
        for name, s in zip(STAGES, self.stage):
            if s.n:
                lat[name] = {"n": s.n, "last_ms": s.last / 1000, "min_ms": s.min / 1000,
                             "max_ms": s.max / 1000, "avg_ms": s.mean_us() / 1000}
        d["latency"] = lat
        return d

    def print_stats(self):
        s = self.stats()
        print("%s: %d cycles (%d ok) %.2f/s, %d detections, %d read errors, %d stage errors, heap free %d "
              "(start %d, min %d)" % (s["name"], s["cycles"], s["ok_cycles"], s["cycles_per_s"],
                                      s["detections"], s["read_errors"], s["stage_errors"], s["heap_free"],
                                      s["heap_start"], s["heap_min"]))
        for name in STAGES:
            v = s["latency"].get(name)
            if v:
                print("  %-7s avg %8.3f ms  min %8.3f  max %8.3f  last %8.3f  (n=%d)" % (
                    name, v["avg_ms"], v["min_ms"], v["max_ms"], v["last_ms"], v["n"]))
        for name, runs, events in s["tasks"]:
            print("  task %s: %d runs, %d events" % (name, runs, events))
