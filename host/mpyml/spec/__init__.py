"""The one spec of the packed format and its ops: everything else is generated from it or checked against it.

Owns: format constants (header, tensor and op records), tensor types and storage kinds, engine status codes,
check codes (with the message a user can act on), and the op table (codes, operands, params with the loader's
value ranges). `tools/gen_spec.py` writes from it the C header `native_modules/engine/mpyml_spec.h`, the C op
table `native_modules/engine/ops/op_table.c`, the device constants `device/mpyml/_spec.py` and the tables of
docs/FORMAT.md; `make test` runs `tools/gen_spec.py --check`. The packer applies every range here
(`check_params`), so it never writes a file the loader refuses.

Ops are declared by family in ops_*.py beside this file (one family per file, codes in the family's range).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# ---------------------------------------------------------------- format constants
MAGIC = 0x4D59504D            # bytes 'M','P','Y','M'
VERSION = 3                   # the version the packer writes for a model with sparse weights
VERSION_MIN = 2               # loaders also accept version 2 (no sparse section: sparse_size must be 0)
HEADER_SIZE = 64
TENSOR_SIZE = 32
OP_HDR_SIZE = 8
ALIGN_DATA = 16
ALIGN_ARENA = 16
MAX_DIMS = 4
NO_TENSOR = 0xFFFF
MAX_OPERANDS = 32             # inputs + outputs of one op record
MAX_PARAMS = 64               # int32 params of one op record
MAX_IO = 16                   # model inputs, model outputs

HEADER_FMT = "<IHHIIIHHHHIIIIIIIII"     # ... macs, sparse_size (v2: flags, 0), trusted_size
TENSOR_FMT = "<BBBB4HIIiII"
OP_HDR_FMT = "<BBBBHH"

# tensor element types: name -> (code, element bytes, numpy dtype string)
TYPES: dict[str, tuple[int, int, str]] = {
    "int8": (1, 1, "<i1"),
    "int32": (2, 4, "<i4"),
    "float32": (3, 4, "<f4"),
    "uint8": (4, 1, "<u1"),
    "int16": (5, 2, "<i2"),
    "int64": (6, 8, "<i8"),
}
TYPE_CODE = {k: v[0] for k, v in TYPES.items()}
TYPE_NAME = {v[0]: k for k, v in TYPES.items()}
TYPE_SIZE = {v[0]: v[1] for v in TYPES.values()}

# where a tensor's bytes live
STORAGE = {"arena": 0, "const": 1}

# tensor record flags
TENSOR_FLAGS = {
    "STATE": 1,   # arena tensor that persists across invokes (RNN state); zeroed at load and by reset
}

# op record flags (the record's u16 after `size`; every other bit must be 0)
OP_FLAGS = {
    "IN_PLACE": 1,  # the output exactly aliases an input (same offset and byte count); only ops with in_place_ok
}

# engine status codes (mpyml_status_t): name -> (code, text)
STATUS: list[tuple[str, str]] = [
    ("OK", "ok"),
    ("TRUNCATED", "file truncated"),
    ("MAGIC", "not an mpyml model (bad magic)"),
    ("VERSION", "unsupported format version"),
    ("SIZE", "file size field does not match the buffer"),
    ("CRC", "CRC mismatch (file corrupted)"),
    ("HEADER", "invalid header field"),
    ("ALIGN", "buffer not 4-byte aligned"),
    ("TENSOR", "invalid tensor record"),
    ("OPCODE", "unsupported op code"),
    ("OP", "invalid op record"),
    ("IO", "invalid input/output table"),
    ("ARENA", "arena too small"),
    ("CTX", "model not prepared"),
    ("INDEX", "an index input is out of range (GATHER): invoke stopped"),
]
STATUS_CODE = {name: i for i, (name, _) in enumerate(STATUS)}


# ---------------------------------------------------------------- check codes
@dataclass(frozen=True)
class Check:
    name: str
    code: int
    message: str


# Op-record check codes (the detail of an MPYML_E_OP error). 1..29 core ops; 30..39 elementwise;
# 40..49 shape/data movement; 50..59 reduce/transpose-conv; 60..69 recurrent; 70..79 format-generic;
# 80..87 sparse weights.
# PARAM_BASE + i: param i outside its range (message from the op's Param); OPERAND_BASE + k: operand k
# (inputs then outputs) absent, of the wrong type or storage.
PARAM_BASE = 100
OPERAND_BASE = 200
OVERLAP_BASE = 20  # 20 + k: operand k shares arena bytes with the output

CHECKS: list[Check] = [
    Check("INPUT", 1, "input must be an int8 tensor"),
    Check("OUTPUT", 2, "output must be an int8 arena tensor"),
    Check("RANK", 3, "input and output must be 4-D NHWC"),
    Check("FILTER", 4, "filter / second operand must be a constant int8 tensor with zero point 0"),
    Check("BATCH", 5, "input and output batch sizes differ"),
    Check("SHAPE", 6, "operand shapes do not agree (output shape, channels or broadcast)"),
    Check("DEPTH", 7, "accumulation depth too large (conv KH*KW*C, depthwise KH*KW, FC K must be <= 65536)"),
    Check("BIAS", 8, "bias must be a constant int32 tensor with one value per output channel"),
    Check("REQUANT", 9, "requantization multipliers must be 0..2^31-1 and shifts -31..30, one per channel"),
    Check("STRIDE", 10, "stride (or first param group) out of range"),
    Check("DILATION", 11, "dilation / filter size out of range"),
    Check("PADDING", 12, "padding out of range (0..1024)"),
    Check("ZERO_POINT", 13, "zero-point offsets out of range (input offset -127..128, output -128..127)"),
    Check("ACTIVATION", 14, "activation range invalid (-128 <= min <= max <= 127)"),
    Check("DEPTH_MULTIPLIER", 15, "depth multiplier invalid (conv: 1, depthwise: O / C, 1..1024)"),
    Check("SHIFT", 16, "a shift parameter is out of range"),
    Check("TABLE", 17, "lookup table operand has the wrong length or type"),
    Check("TYPES", 18, "operand types do not match what the op computes"),
    Check("AXIS", 19, "axis out of range for the tensor's rank"),
    Check("COUNT", 70, "wrong number of operands or params for this op code"),
    Check("INDEX", 71, "operand index names no tensor"),
    Check("PADDING_SLOT", 72, "padding slot of the operand list must be 0xFFFF"),
    Check("ALIAS", 73, "an output shares arena bytes with an input (allowed only as an exact alias on an op "
                       "record flagged IN_PLACE whose kernel runs in place)"),
    Check("FLAGS", 74, "invalid op record flags (only IN_PLACE, on a one-output op whose kernel runs in place): "
                       "repack the model with this mpyml"),
]


def check_codes() -> dict[int, Check]:
    """Every check code, core and per family (ops_*.py add theirs through Op.checks)."""
    out = {c.code: c for c in CHECKS}
    for op in ops():
        for c in op.checks:
            prev = out.get(c.code)
            if prev is not None and prev != c:
                raise AssertionError(f"check code {c.code} defined twice: {prev.name} and {c.name}")
            out[c.code] = c
    return dict(sorted(out.items()))


def check_message(code: int, opcode: int | None = None) -> str:
    """The user-facing text for an op-record check code (detail of MPYML_E_OP)."""
    op = OPS_BY_CODE.get(opcode) if opcode is not None else None
    if code >= OPERAND_BASE and op is not None:
        k = code - OPERAND_BASE
        name = op.operand_name(k)
        return f"operand {k} ({name}) is absent or has the wrong type or storage"
    if code >= PARAM_BASE and op is not None:
        i = code - PARAM_BASE
        if i < len(op.params):
            p = op.params[i]
            return f"param {p.name} outside {p.lo}..{p.hi}"
    if OVERLAP_BASE <= code < OVERLAP_BASE + 10:
        return (f"operand {code - OVERLAP_BASE} shares arena bytes with the output (allowed only as an exact alias "
                "on a record flagged IN_PLACE)")
    c = check_codes().get(code)
    return c.message if c else f"check {code}"


# ---------------------------------------------------------------- ops
@dataclass(frozen=True)
class Operand:
    name: str
    types: tuple[str, ...] = ("int8",)
    storage: str = "any"            # "arena", "const" or "any"
    optional: bool = False
    doc: str = ""
    trusted: bool = False           # const whose values the kernel relies on: must lie in the trusted region
                                    # (copied by the engine at load), see docs/FORMAT.md


@dataclass(frozen=True)
class Param:
    name: str
    lo: int
    hi: int
    doc: str = ""


@dataclass(frozen=True)
class Op:
    """One engine op. `tflite` lists the TFLite builtin ops the packer lowers to it."""

    name: str
    code: int
    inputs: tuple[Operand, ...]
    outputs: tuple[Operand, ...]
    params: tuple[Param, ...] = ()
    tflite: tuple[str, ...] = ()
    doc: str = ""
    kernel: str = ""                # C prefix: <kernel>_check(view), <kernel>_eval(view); "" for core ops
    params_struct: str = ""         # C struct name; default mpyml_<name>_params_t
    variadic_in: bool = False       # the last input operand may repeat (up to MAX_OPERANDS)
    variadic_out: bool = False      # the last output operand may repeat
    min_in: int = -1                # defaults: len(inputs) (minus trailing optionals)
    checks: tuple[Check, ...] = ()
    core: bool = False              # legacy op validated in mpyml_engine.c (no generic operand checks)
    family: str = ""                # set from the ops_<family>.py that declares it
    in_place_ok: bool = False       # the kernel reads element i of each same-shape input before writing element i
                                    # of the output: a record flagged IN_PLACE may alias output onto such an input
    fails: bool = False             # <kernel>_eval returns an mpyml_status_t (0 = ok): it validates input VALUES
                                    # (GATHER indices) at invoke and stops with that status

    @property
    def n_in_range(self) -> tuple[int, int]:
        lo = self.min_in if self.min_in >= 0 else len(self.inputs)
        hi = MAX_OPERANDS - 1 if self.variadic_in else len(self.inputs)
        return lo, hi

    @property
    def n_out_range(self) -> tuple[int, int]:
        lo = len(self.outputs)
        hi = MAX_OPERANDS - 1 if self.variadic_out else len(self.outputs)
        return lo, hi

    @property
    def struct_name(self) -> str:
        return self.params_struct or f"mpyml_{self.name.lower()}_params_t"

    def operand(self, k: int, n_in: int) -> Operand:
        """Spec of operand k of a record with n_in inputs (variadic operands repeat the last one)."""
        if k < n_in:
            return self.inputs[min(k, len(self.inputs) - 1)]
        j = k - n_in
        return self.outputs[min(j, len(self.outputs) - 1)]

    def operand_name(self, k: int) -> str:
        names = [o.name for o in self.inputs] + [o.name for o in self.outputs]
        return names[k] if k < len(names) else f"#{k}"


def _collect() -> list[Op]:
    out: list[Op] = []
    for mod in (ops_core, ops_elementwise, ops_shape, ops_reduce, ops_recurrent, ops_inplace, ops_sparse, ops_gather):
        fam = mod.__name__.rsplit(".ops_", 1)[1]
        out.extend(replace(o, family=fam) for o in mod.OPS)
    codes = [o.code for o in out]
    if len(set(codes)) != len(codes):
        raise AssertionError(f"duplicate op codes in the spec: {sorted(codes)}")
    if any(not 1 <= c <= 255 for c in codes):
        raise AssertionError("op codes are 1..255")
    return sorted(out, key=lambda o: o.code)


def ops() -> list[Op]:
    return OPS


class SpecRangeError(ValueError):
    """A value the loader would refuse: raised by the packer before it writes a file."""


def check_params(opname: str, params: list[int]) -> None:
    """Raise SpecRangeError naming the first param outside the loader's range."""
    op = OPS_BY_NAME[opname]
    if len(params) != len(op.params):
        raise SpecRangeError(f"{opname}: {len(params)} params, the format has {len(op.params)}")
    for p, v in zip(op.params, params, strict=True):
        if not p.lo <= int(v) <= p.hi:
            raise SpecRangeError(f"{opname}: {p.name} = {v} is outside {p.lo}..{p.hi}"
                                 + (f" ({p.doc})" if p.doc else ""))


# the op families (imported last: they use Op, Operand, Param, Check from above)
from . import ops_core, ops_elementwise, ops_gather, ops_inplace, ops_recurrent, ops_reduce, ops_shape, ops_sparse  # noqa: E402,I001

OPS: list[Op] = _collect()
OPS_BY_NAME: dict[str, Op] = {o.name: o for o in OPS}
OPS_BY_CODE: dict[int, Op] = {o.code: o for o in OPS}
OPCODES: dict[str, int] = {o.name: o.code for o in OPS}
OP_NAMES: dict[int, str] = {o.code: o.name for o in OPS}
FAMILIES: tuple[str, ...] = ("core", "elementwise", "shape", "reduce", "recurrent", "inplace", "sparse", "gather")
