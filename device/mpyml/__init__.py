# mpyml device package: load a packed model (.mpk), run it, quantize/dequantize its tensors.
#
# Plain MicroPython: runs unchanged on boards and on the unix port. The engine is the native
# module `mpyml_engine` (C, per architecture). The model buffer is used in place (zero copy);
# the arena is allocated once at load; invoke() allocates nothing on the heap.
import struct
import sys

__version__ = "0.1.0"

_HDR = "<IHHIIIHHHHIIIIIIIII"
_TENSOR = "<BBBB4HIIifI"
_MAGIC = 0x4D59504D
_ARCHS = ("none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
          "xtensa", "xtensawin", "rv32imc", "rv64imc")


def board_arch():
    """(native arch name, 'mpy major.minor') of this MicroPython, e.g. ('xtensawin', '6.3')."""
    v = getattr(sys.implementation, "_mpy", 0)
    a = v >> 10
    return (_ARCHS[a] if a < len(_ARCHS) else "arch%d" % a), "%d.%d" % (v & 0xFF, (v >> 8) & 3)


def _engine(name=None):
    if name in (None, "c", "native"):
        try:
            import mpyml_engine
            return mpyml_engine
        except ImportError as e:
            if name is not None:
                raise _no_engine(e)
    if name in (None, "viper"):
        try:
            from mpyml import viper_engine
            return viper_engine
        except ImportError as e:
            raise _no_engine(e)
    raise ValueError("unknown engine %r (use 'c' or 'viper')" % (name,))


def _no_engine(e):
    arch, abi = board_arch()
    return ImportError(
        "mpyml: no engine for this board: the native module mpyml_engine.mpy for arch %s, "
        ".mpy ABI %s is not installed (%s). Install it with `mpyml deploy`, which picks the build "
        "for this arch." % (arch, abi, e))


def _load_buffer(src):
    if isinstance(src, str):
        f = open(src, "rb")
        try:
            try:
                return memoryview(f)  # memory-mapped file (ROMFS): zero copy
            except TypeError:
                pass
            try:
                return f.read()
            except MemoryError:
                try:
                    import os
                    n = os.stat(src)[6]
                except Exception:
                    n = -1
                raise _oom("the model file %s (put it on a ROMFS partition to use it in place)" % src, n)
        finally:
            f.close()
    if not isinstance(src, (bytes, bytearray, memoryview)):
        raise TypeError("mpyml.load: expected a path (str), bytes, bytearray or memoryview, got %s"
                        % type(src).__name__)
    return src


def _writable(arena):
    if not isinstance(arena, (bytearray, memoryview)):
        raise TypeError("mpyml.load: arena must be a writable buffer (bytearray), got %s" % type(arena).__name__)
    mv = memoryview(arena)
    if len(mv):
        try:
            mv[0:1] = mv[0:1]
        except TypeError:
            raise TypeError("mpyml.load: arena must be writable (a memoryview of bytes is read-only)")


def _oom(what, n):
    import gc
    gc.collect()
    return MemoryError(
        "mpyml: model needs %d bytes for %s, only %d bytes of heap free; free RAM, use a smaller model "
        "or pass arena= (e.g. from PSRAM)" % (n, what, gc.mem_free()))


def _error(res):
    from mpyml import _spec
    st, idx, detail, line = res
    msg = _spec.STATUS[st] if 0 <= st < len(_spec.STATUS) else "error %d" % st
    if st == 9:  # unsupported op code
        msg = "op #%d has op code %d, which this engine does not run (it runs %s); " \
              "update mpyml_engine.mpy or repack the model" % (
                  idx, detail, ", ".join(n for n in _spec.OP_NAMES[1:] if n != "?"))
    elif st == 10:
        msg = "op #%d: invalid op record: %s (check %d)" % (idx, _check_text(_spec, detail, res), detail)
    elif st == 8:
        msg = "tensor #%d: invalid tensor record" % idx
    elif st == 11:
        msg = "invalid input/output table (entry %d = tensor %d)" % (idx, detail)
    elif st == 7:
        msg += "; pass bytes/bytearray (not an odd memoryview slice)"
    elif st == 3:
        msg = "format version %d, this engine reads versions %d..%d: repack the model with this mpyml" % (
            detail, _spec.VERSION_MIN, _spec.VERSION)
    return ValueError("mpyml: invalid model: %s [engine check line %d]" % (msg, line))


def _check_text(_spec, code, res):
    if code >= _spec.OPERAND_BASE:
        return "operand %d is absent or has the wrong type or storage" % (code - _spec.OPERAND_BASE)
    if code >= _spec.PARAM_BASE:
        return "param %d outside its range" % (code - _spec.PARAM_BASE)
    if 20 <= code < 30:
        return "operand %d shares arena bytes with the output" % (code - 20)
    return _spec.CHECKS.get(code, "check failed")


_DTYPES = {1: "int8", 2: "int32", 3: "float32", 4: "uint8", 5: "int16", 6: "int64"}
_QRANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


class Tensor:
    """A model input or output: shape, dtype ('int8', 'uint8', 'float32', or 'int32' for integer inputs such as Embedding token ids), quantization and a zero-copy
    view of its arena bytes (`buffer`, raw little-endian bytes of the dtype; `size` = its byte count)."""

    def __init__(self, index, shape, scale, zero_point, buffer, ttype=1):
        self.index = index
        self.shape = shape
        self.dtype = _DTYPES.get(ttype, "type%d" % ttype)
        self.scale = scale
        self.zero_point = zero_point
        self.buffer = buffer          # memoryview into the arena (raw bytes of dtype)
        self.size = len(buffer)
        self.elements = len(buffer) // (4 if self.dtype in ("float32", "int32") else (2 if self.dtype == "int16" else 1))

    def quantize(self, values):
        """Write float values (any iterable) into the tensor: quantized (int8 / uint8, clamped) or, for a
        float32 tensor, as float32. +-inf and out-of-range values clamp; NaN gives what TFLite's QUANTIZE
        gives on x86 (the lowest value for a zero point >= 0). Wrong count: ValueError; non-numbers: TypeError."""
        buf, s, zp = self.buffer, self.scale, self.zero_point
        i = 0
        if self.dtype == "float32":
            for v in values:
                if i < self.elements:
                    struct.pack_into("<f", buf, 4 * i, v)
                i += 1
        elif self.dtype == "int32":
            # integer inputs (token ids of an Embedding / GATHER): stored as given, not quantized
            for v in values:
                if i < self.elements:
                    struct.pack_into("<i", buf, 4 * i, int(v))
                i += 1
        else:
            lo, hi = _QRANGE.get(self.dtype, (-128, 127))
            try:
                it = iter(values)
            except TypeError:
                raise TypeError("expected %d numbers (or the raw bytes of the input), got %s"
                                % (self.elements, type(values).__name__))
            for v in it:
                try:
                    x = v / s
                except TypeError:
                    raise TypeError("value %d is %s, expected a number" % (i, type(v).__name__))
                if x != x:
                    # NaN: as TFLite's QUANTIZE computes it on x86 (INT32_MIN + zero point, then clamped)
                    q = lo if zp >= 0 else hi
                elif x > 2147483647:
                    q = hi                        # +inf and huge values clamp, as TFLite's QUANTIZE
                elif x < -2147483648:
                    q = lo
                else:
                    q = int(round(x)) + zp
                q = lo if q < lo else (hi if q > hi else q)
                if i < self.size:
                    buf[i] = q & 0xFF
                i += 1
        if i != self.elements:
            raise ValueError("expected %d values, got %d" % (self.elements, i))

    def raw(self):
        """The tensor's stored values as a list: ints (int8 -128..127, uint8 0..255) or floats (float32)."""
        if self.dtype == "float32":
            return list(struct.unpack_from("<%df" % self.elements, self.buffer, 0))
        if self.dtype == "uint8":
            return list(self.buffer)
        if self.dtype == "int32":
            return list(struct.unpack_from("<%di" % self.elements, self.buffer, 0))
        return [b - 256 if b > 127 else b for b in self.buffer]

    def dequantize(self):
        """The tensor's values as a list of floats (a float32 tensor: its values)."""
        if self.dtype == "float32" or (self.dtype == "int32" and not self.scale):
            return self.raw()
        s, zp = self.scale, self.zero_point
        return [(q - zp) * s for q in self.raw()]

    def __repr__(self):
        if self.dtype == "float32":
            return "<Tensor float32%s>" % (self.shape,)
        return "<Tensor %s%s scale=%g zero_point=%d>" % (self.dtype, self.shape, self.scale, self.zero_point)


class Model:
    """A loaded model. Use mpyml.load() to create one."""

    def __init__(self, buf, engine=None, arena=None):
        eng = _engine(engine)
        if len(buf) < 64 or struct.unpack_from("<I", buf, 0)[0] != _MAGIC:
            raise ValueError("mpyml: not an mpyml model (bad magic); pack .tflite files with `mpyml pack`")
        try:
            ctx = bytearray(eng.ctx_size(buf))
        except MemoryError:
            raise _oom("its engine context (the copy of its validated records)", eng.ctx_size(buf))
        self.ctx_bytes = len(ctx)
        res = eng.prepare(buf, ctx)
        if res is not None:
            raise _error(res)
        h = struct.unpack_from(_HDR, buf, 0)
        (self.file_size, self.arena_size, n_tensors, self.n_ops, n_in, n_out,
         tensors_off, io_off, self.macs) = h[3], h[5], h[6], h[7], h[8], h[9], h[10], h[13], h[16]
        if arena is None:
            try:
                arena = bytearray(self.arena_size)
            except MemoryError:
                raise _oom("arena", self.arena_size)
        else:
            _writable(arena)
        if len(arena) < self.arena_size:
            raise ValueError("mpyml: arena has %d bytes, model needs %d" % (len(arena), self.arena_size))
        self.engine = eng.__name__ if hasattr(eng, "__name__") else "engine"
        self._eng_invoke = eng.invoke
        self._buf = buf
        self._arena = arena
        self._ctx = ctx
        # only models with STATE tensors (RNN state) have anything to reset: others skip the call
        has_state = False
        for i in range(n_tensors):
            if buf[tensors_off + 32 * i + 3] & 1:
                has_state = True
                break
        self._eng_reset = getattr(eng, "reset", None) if has_state else None
        self.reset()
        mv = memoryview(arena)
        idx = struct.unpack_from("<%dH" % (n_in + n_out), buf, io_off)

        def tensor(i):
            t = struct.unpack_from(_TENSOR, buf, tensors_off + 32 * i)
            shape = tuple(t[4:4 + t[1]])
            return Tensor(i, shape, t[11], t[10], mv[t[8]:t[8] + t[9]], t[0])

        self.inputs = tuple(tensor(i) for i in idx[:n_in])
        self.outputs = tuple(tensor(i) for i in idx[n_in:])
        self.input = self.inputs[0]
        self.output = self.outputs[0]
        self.n_tensors = n_tensors

    def reset(self):
        """Zero the model's recurrent state (RNN/SVDF models): start a new sequence."""
        if self._eng_reset is not None:
            self._eng_reset(self._buf, self._arena, self._ctx)

    def invoke(self):
        """Run one inference on the current input buffer(s). Allocates nothing."""
        self._eng_invoke(self._buf, self._arena, self._ctx)

    def predict(self, x):
        """Run on x and return the output.

        bytes/bytearray/memoryview x: raw bytes of the input's dtype in, raw bytes of the output out.
        Anything else (list/tuple/array of numbers): quantized in (float32 inputs: stored as float32,
        uint8 inputs clamped to 0..255), dequantized floats out (float32 outputs: their values).
        For a model with several inputs pass a list with one item per input.
        """
        xs = x if (len(self.inputs) > 1 and isinstance(x, (list, tuple))) else (x,)
        if len(xs) != len(self.inputs):
            raise ValueError("model has %d inputs, got %d" % (len(self.inputs), len(xs)))
        raw = False
        for t, v in zip(self.inputs, xs):
            if isinstance(v, (bytes, bytearray, memoryview)):
                if len(v) != t.size:
                    raise ValueError("input needs %d bytes (%s), got %d" % (t.size, t.dtype, len(v)))
                t.buffer[:] = v
                raw = True
            else:
                t.quantize(v)
        self.invoke()
        if raw:
            res = [bytes(t.buffer) for t in self.outputs]
        else:
            res = [t.dequantize() for t in self.outputs]
        return res[0] if len(res) == 1 else res

    def info(self):
        def td(t):
            return {"shape": t.shape, "dtype": t.dtype, "scale": t.scale, "zero_point": t.zero_point}
        return {
            "engine": self.engine,
            "ops": self.n_ops,
            "tensors": self.n_tensors,
            "macs": self.macs,
            "arena_bytes": self.arena_size,
            "ctx_bytes": self.ctx_bytes,
            "model_bytes": self.file_size,
            "inputs": [td(t) for t in self.inputs],
            "outputs": [td(t) for t in self.outputs],
        }

    def __repr__(self):
        i, o = self.input, self.output
        q = "" if i.dtype == "float32" else " s=%g zp=%d" % (i.scale, i.zero_point)
        return "<mpyml.Model %d ops, %d MACs, arena %d B, model %d B, in %s%s%s -> out %s%s>" % (
            self.n_ops, self.macs, self.arena_size, self.file_size, i.dtype, i.shape, q, o.dtype, o.shape)


def load(src, engine=None, arena=None, key=None):
    """Load a packed model from a path, bytes, bytearray or memoryview (used in place, never copied).

    engine: None (native module, else the pure-MicroPython fallback if installed), 'c' or 'viper'.
    arena: optional caller-owned bytearray of at least the model's arena_size bytes.
    key: Ed25519 public key (32 bytes, 64 hex digits or a KEY.pub path) the model must be signed with;
    None: the board's /mpyml_key.pub if installed (`mpyml deploy --key`), else signatures are not required.
    """
    from mpyml import _sign
    return Model(_sign.check(_load_buffer(src), key), engine, arena)


def load_ab(path, selftest=None, engine=None, arena=None, key=None):
    """load(path), falling back to path + '.prev' (kept by `mpyml deploy --ab`) if the new model fails
    to load or selftest(model) raises or returns False; see mpyml._ab."""
    from mpyml import _ab
    return _ab.load_ab(path, selftest, engine, arena, key)
