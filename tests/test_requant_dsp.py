"""The Cortex-M4/M7 exact SMMULR requantization (mpyml_dw_requant_dsp and mpyml_dw_requant4_dsp in
native_modules/engine/ops/depthwise_dm1.h over simd_dsp.h, with its rare path mpyml_dw_requant4_any in
depthwise_dm1_dsp.c) equals mpyml_requant (fixedpoint.h, TFLite's MultiplyByQuantizedMultiplier + offset +
clamp) for every input class: every shift -31..30, edge accumulators and multipliers, random accumulators
of every magnitude, exact rounding ties of the final shift, and four-at-once calls with mixed shifts,
out-of-range accumulators (fallback) and narrow activation ranges.

One C program (CHECK_SRC) is built twice: on the host with -DMPYML_EMULATE_DSP under UBSan (the C models of
the DSP instructions; many cases), and for Cortex-M4 and M7 (the real SMMULR / SSAT / SSUB8 / SEL code),
linked with the bare-metal harness's startup and semihosting objects (native_modules/baremetal, built by
mpyml.baremetal.build_lib) and run under QEMU (mps2-an386 / an500) with fewer cases. The program prints the
case count and the mismatches and exits non-zero on any mismatch.
Skipped when a compiler / the ARM toolchain or QEMU is missing (fails under CI=true).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import skip_or_fail
from mpyml import baremetal as bm

ROOT = Path(__file__).resolve().parents[1]
OPS_DIR = ROOT / "native_modules" / "engine" / "ops"
BM_DIR = ROOT / "native_modules" / "baremetal"
CC = os.environ.get("CC", "cc")

# cases: 62 shifts x (1664 edges + R random + 2 T ties) + 4 F (four at once)
HOST_COUNTS = {"R": 200000, "T": 60000, "F": 2000000}
TARGET_COUNTS = {"R": 50000, "T": 16000, "F": 400000}
TARGET_CPUS = {
    "m4": (["-mthumb", "-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"], "mps2-an386"),
    "m7": (["-mthumb", "-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"], "mps2-an500"),
}

CHECK_SRC = r"""
#include <stdint.h>
#include "simd.h"
#include "depthwise_dm1.h"
#if defined(RQ_TARGET)
#include "semihost.h"
#define OUT_S(s) sh_puts(s)
#define OUT_I(v) sh_put_i32(v)
#define OUT_END() sh_flush()
#else
#include <stdio.h>
#define OUT_S(s) fputs(s, stdout)
#define OUT_I(v) printf("%ld", (long)(v))
#define OUT_END() fflush(stdout)
#endif
#if !defined(MPYML_SIMD_DSP)
#error "the DSP requantization needs MPYML_SIMD_DSP (Cortex-M4/M7 or -DMPYML_EMULATE_DSP)"
#endif

typedef struct { uint64_t s; int32_t n, bad; } rq_state_t;

static uint32_t rnd(rq_state_t *st)
{
    st->s ^= st->s << 13;
    st->s ^= st->s >> 7;
    st->s ^= st->s << 17;
    return (uint32_t)st->s;
}

static void report(rq_state_t *st, const char *what, int32_t acc, int32_t m, int32_t sh, int32_t oo, int32_t lo,
    int32_t hi, int32_t want, int32_t got)
{
    if (st->bad++ < 10) {
        OUT_S(what); OUT_S(" acc "); OUT_I(acc); OUT_S(" mult "); OUT_I(m); OUT_S(" shift "); OUT_I(sh);
        OUT_S(" off "); OUT_I(oo); OUT_S(" range "); OUT_I(lo); OUT_S(".."); OUT_I(hi);
        OUT_S(": want "); OUT_I(want); OUT_S(" got "); OUT_I(got); OUT_S("\n");
    }
}

static void chk(rq_state_t *st, int32_t acc, int32_t m, int32_t sh, int32_t oo, int32_t lo, int32_t hi)
{
    const int8_t a = mpyml_requant(acc, m, sh, oo, lo, hi), b = mpyml_dw_requant_dsp(acc, m, sh, oo, lo, hi);
    st->n++;
    if (a != b) {
        report(st, "BAD1", acc, m, sh, oo, lo, hi, a, b);
    }
}

int main(void)
{
    static const int32_t edges[16] = {0, 1, -1, 2, -2, 0x3FFFFFFF, -0x40000000, 0x40000000, -0x40000001,
        0x7FFFFFFF, (int32_t)0x80000000u, (int32_t)0x80000001u, 12345, -12345, 1 << 20, -(1 << 20)};
    static const int32_t medges[8] = {0, 1, 2, 0x40000000, 0x7FFFFFFF, 0x7FFFFFFE, 0x55555555, 0x40000001};
    rq_state_t st = {88172645463325252ull, 0, 0};
    int32_t sh, i, j, k;
    for (sh = -31; sh <= 30; sh++) {
        for (i = 0; i < 16; i++) {
            for (j = 0; j < 8; j++) {
                for (k = -130; k <= 130; k += 13) {
                    chk(&st, edges[i], medges[j], sh, k, -128, 127);
                }
            }
        }
        for (i = 0; i < RQ_R; i++) {
            int32_t acc, m = (int32_t)(rnd(&st) >> 1), oo = (int32_t)(rnd(&st) % 256) - 128;
            int32_t lo = -128 + (int32_t)(rnd(&st) % 64), hi = 127 - (int32_t)(rnd(&st) % 64);
            switch (i & 3) {
            case 0: acc = (int32_t)rnd(&st); break;
            case 1: acc = (int32_t)rnd(&st) >> (rnd(&st) % 32); break;
            case 2: acc = (int32_t)(rnd(&st) % 2000001) - 1000000; break;
            default:
                acc = ((int32_t)rnd(&st) >> (rnd(&st) % 32)) ^ (int32_t)(rnd(&st) & 0xF);
                m = 0x40000000 + (int32_t)(rnd(&st) >> 2);
                break;
            }
            if (i % 7 == 0) {
                lo = -128;
                hi = 127;
            }
            chk(&st, acc, m, sh, oo, lo, hi);
        }
        for (i = 0; i < RQ_T; i++) {    /* exact ties: acc * mult near half-integers of the final shift */
            const int32_t e = sh < 0 ? -sh : 0, m = 0x40000000 + (int32_t)(rnd(&st) % 4);
            uint32_t u = (uint32_t)((int32_t)(rnd(&st) % 512) - 256) * (e < 31 ? (1u << e) : 1u);
            u = (u + (rnd(&st) % 5) - 2u) << 1;
            chk(&st, (int32_t)u, m, sh, 0, -128, 127);
            chk(&st, (int32_t)(0u - u), m, sh, 0, -128, 127);
        }
    }
    for (i = 0; i < RQ_F; i++) {        /* four at a time: mixed shifts / ranges take the fallback */
        int32_t a[4], m[4], sv[4], lo = -128 + (int32_t)(rnd(&st) % 100), hi;
        const int32_t oo = (int32_t)(rnd(&st) % 300) - 150;
        int8_t o[4];
        hi = lo + (int32_t)(rnd(&st) % (uint32_t)(128 - lo));
        if (i % 5 == 0) {
            lo = -128;
            hi = 127;
        }
        for (k = 0; k < 4; k++) {
            a[k] = (i & 1) ? (int32_t)rnd(&st) >> (rnd(&st) % 32) : (int32_t)(rnd(&st) % 200001) - 100000;
            m[k] = (int32_t)(rnd(&st) >> 1) | ((i & 2) ? 0x40000000 : 0);
            sv[k] = (i % 97 == 0) ? (int32_t)(rnd(&st) % 62) - 31 : -(int32_t)(1 + rnd(&st) % 31);
            if (i % 3 == 0) {
                sv[k] = -(int32_t)(1 + rnd(&st) % 12);
            }
            if (i % 11 == 0) {
                a[k] = edges[rnd(&st) % 16];     /* the fast path's bounds (+-2^30) and wrapping values */
            }
        }
        mpyml_dw_requant4_dsp(o, a[0], a[1], a[2], a[3], m, sv, oo, lo, hi, mpyml_dw_bytes4(lo),
            mpyml_dw_bytes4(hi));
        for (k = 0; k < 4; k++) {
            const int8_t want = mpyml_requant(a[k], m[k], sv[k], oo, lo, hi);
            st.n++;
            if (want != o[k]) {
                report(&st, "BAD4", a[k], m[k], sv[k], oo, lo, hi, want, o[k]);
            }
        }
    }
    OUT_I(st.n); OUT_S(" cases, "); OUT_I(st.bad); OUT_S(" mismatches\n"); OUT_END();
    return st.bad != 0;
}
"""


def _defines(counts: dict[str, int]) -> list[str]:
    return [f"-DRQ_{k}={v}" for k, v in counts.items()]


def _expected_cases(counts: dict[str, int]) -> int:
    return 62 * (16 * 8 * 21 + counts["R"] + 2 * counts["T"]) + 4 * counts["F"]


def _check_output(out: str, rc: int, counts: dict[str, int], what: str) -> None:
    m = re.search(r"(\d+) cases, (\d+) mismatches", out)
    assert m, f"{what}: no summary line (exit {rc}):\n{out}"
    assert int(m.group(2)) == 0 and rc == 0, f"{what}: requant mismatches (exit {rc}):\n{out}"
    assert int(m.group(1)) == _expected_cases(counts), f"{what}: wrong case count:\n{out}"


def build_host(d: Path, ops_dir: Path = OPS_DIR) -> Path:
    """The host checker (MPYML_EMULATE_DSP, UBSan) in d; `ops_dir` lets a mutation check use a broken copy."""
    src = d / "rq_check.c"
    src.write_text(CHECK_SRC)
    exe = d / "rq_check"
    cmd = [CC, "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-fsanitize=undefined",
           "-fno-sanitize-recover=all", "-DMPYML_EMULATE_DSP", *_defines(HOST_COUNTS), f"-I{ops_dir}",
           "-o", str(exe), str(src), str(ops_dir / "depthwise_dm1_dsp.c")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return exe


def run_host(exe: Path) -> tuple[str, int]:
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    return r.stdout + r.stderr, r.returncode


def build_target(d: Path, cpu: str, ops_dir: Path = OPS_DIR) -> tuple[Path, str]:
    """The checker for cpu (m4 / m7), linked with the harness startup / semihosting objects and the engine
    library (mpyml_dw_requant4_any); returns the ELF and the QEMU board."""
    flags, board = TARGET_CPUS[cpu]
    lib = bm.build_lib(cpu)
    harness = lib.parent / "harness"
    src = d / "rq_check.c"
    src.write_text(CHECK_SRC)
    obj, elf = d / f"rq_{cpu}.o", d / f"rq_{cpu}.elf"
    cc = f"{bm.CROSS}gcc"
    cmd = [cc, "-std=c99", "-O2", "-g", *flags, "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing",
           "-ffunction-sections", "-fdata-sections", "-DRQ_TARGET", *_defines(TARGET_COUNTS), f"-I{ops_dir}",
           f"-I{BM_DIR}", "-c", "-o", str(obj), str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    cmd = [cc, *flags, "-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections", "-Wl,--no-warn-rwx-segments",
           f"-L{BM_DIR}", "-T", "mps2.ld", "-o", str(elf), str(obj), str(harness / "startup.o"),
           str(harness / "semihost.o"), str(lib)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
    return elf, board


def run_target(elf: Path, board: str, d: Path) -> tuple[str, int]:
    console = d / f"{elf.stem}.txt"
    cmd = [bm.QEMU, "-M", board, "-nodefaults", "-display", "none", "-semihosting-config",
           "enable=on,target=native,chardev=out", "-chardev", f"file,id=out,path={console}", "-kernel", str(elf)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    out = console.read_text() if console.exists() else ""
    return out + r.stderr, r.returncode


def test_requant_dsp_host(tmp_path: Path) -> None:
    """MPYML_EMULATE_DSP + UBSan on the host: about 28 million cases."""
    if shutil.which(CC) is None:
        skip_or_fail(f"host C compiler {CC!r} not found (set CC)")
    out, rc = run_host(build_host(tmp_path))
    _check_output(out, rc, HOST_COUNTS, "host (MPYML_EMULATE_DSP)")


@pytest.mark.parametrize("cpu", sorted(TARGET_CPUS))
def test_requant_dsp_qemu(cpu: str, tmp_path: Path) -> None:
    """The real DSP instructions, bare-metal on QEMU: about 7 million cases per CPU."""
    why = bm.missing_tools()
    if why:
        skip_or_fail(why)
    elf, board = build_target(tmp_path, cpu)
    out, rc = run_target(elf, board, tmp_path)
    _check_output(out, rc, TARGET_COUNTS, f"QEMU {cpu}")
