"""Talking to a MicroPython board over its REPL (mpremote's SerialTransport underneath).

Owns: a robust raw-REPL entry (recovers a board left mid-transfer by a killed host), the board
probe (version, architecture, .mpy ABI, heap, filesystem), hashing files ON the board (sha256,
else crc32, else adler32 in plain Python), and the safe file write: temp name, chunks, verify
size + hash of what is on the board's flash, then rename into place.

Paths on the board are relative to its working directory after a soft reset ("/" on ESP32,
RP2040 and the virtual board, "/flash" on STM32 boards), like mpremote's ":lib/x".
"""

from __future__ import annotations

import ast
import base64
import hashlib
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from .board import MPY_ARCHS

PART_SUFFIX = ".part"   # temp name of a file being written; renamed into place once verified
OLD_SUFFIX = ".old"     # FAT only: the previous file while the new one is renamed in

ProgressFn = Callable[[int, int], None]


class RemoteError(RuntimeError):
    """The board did not answer as expected (message says what and what to try)."""


# ------------------------------------------------------------------------------ host-side hashes
def host_hash(data: bytes, alg: str) -> str:
    """The digest the board computes with `alg` for `data` (hex)."""
    if alg == "sha256":
        return hashlib.sha256(data).hexdigest()
    if alg == "crc32":
        return f"{zlib.crc32(data) & 0xFFFFFFFF:08x}"
    if alg == "adler32":
        return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"
    raise ValueError(alg)


# ------------------------------------------------------------------------------ board-side helper
# Sent once per session (after the soft reset); names start with _mp_ to stay out of the user's way.
HELPER = r"""
import os, sys, gc
try:
    from binascii import a2b_base64 as _mp_b64d, hexlify as _mp_hex
except ImportError:
    _mp_b64d = None
    def _mp_hex(b):
        return ''.join('%02x' % x for x in b).encode()
_mp_alg = None
try:
    import hashlib
    hashlib.sha256
    _mp_alg = 'sha256'
except (ImportError, AttributeError):
    try:
        from binascii import crc32 as _mp_crc
        _mp_alg = 'crc32'
    except ImportError:
        _mp_alg = 'adler32'
_mp_buf = bytearray(1024)
def _mp_hash(p):
    mv = memoryview(_mp_buf)
    n = 0
    if _mp_alg == 'sha256':
        h = hashlib.sha256()
    else:
        h = 0 if _mp_alg == 'crc32' else 1
    with open(p, 'rb') as f:
        while True:
            k = f.readinto(_mp_buf)
            if not k:
                break
            n += k
            c = mv if k == len(_mp_buf) else mv[:k]
            if _mp_alg == 'sha256':
                h.update(c)
            elif _mp_alg == 'crc32':
                h = _mp_crc(c, h)
            else:
                a = h & 0xffff
                b = h >> 16
                for x in c:
                    a = (a + x) % 65521
                    b = (b + a) % 65521
                h = (b << 16) | a
    if _mp_alg == 'sha256':
        return n, _mp_hex(h.digest()).decode()
    return n, '%08x' % (h & 0xffffffff)
def _mp_stat(p):
    try:
        return os.stat(p)
    except OSError:
        return None
def _mp_info(p, n):
    s = _mp_stat(p)
    if s is None:
        return None
    if s[0] & 0x4000:
        return 'dir'
    if n < -1 or (n >= 0 and s[6] != n):
        return (s[6], '')
    return _mp_hash(p)
def _mp_infos(l):
    print(repr([_mp_info(p, n) for p, n in l]))
def _mp_mkdirs(p):
    d = ''
    for part in p.split('/')[:-1]:
        if not part:
            d = '/'
            continue
        d = d + part if d in ('', '/') else d + '/' + part
        s = _mp_stat(d)
        if s is None:
            os.mkdir(d)
        elif not s[0] & 0x4000:
            raise OSError(20)
def _mp_rm(p):
    try:
        os.remove(p)
    except OSError:
        pass
_mp_f = None
def _mp_open(p):
    global _mp_f
    _mp_mkdirs(p)
    _mp_rm(p)
    _mp_f = open(p, 'wb')
def _mp_w(b):
    _mp_f.write(_mp_b64d(b) if _mp_b64d else b)
def _mp_close(p):
    global _mp_f
    _mp_f.close()
    _mp_f = None
    print(repr(_mp_hash(p)))
def _mp_commit(t, d):
    try:
        os.rename(t, d)
        return
    except OSError:
        if _mp_stat(d) is None:
            raise
    o = d + '.old'
    _mp_rm(o)
    os.rename(d, o)
    os.rename(t, d)
    os.remove(o)
def _mp_recover(l):
    r = []
    for d in l:
        if _mp_stat(d + '.part') is not None:
            _mp_rm(d + '.part')
            r.append(d + '.part')
        if _mp_stat(d + '.old') is not None:
            if _mp_stat(d) is None:
                os.rename(d + '.old', d)
                r.append('restored ' + d)
            else:
                _mp_rm(d + '.old')
    print(repr(r))
def _mp_walk(d):
    r = []
    try:
        it = list(os.ilistdir(d))
    except OSError:
        return r
    for e in it:
        p = d + '/' + e[0]
        if e[1] & 0x4000:
            r.extend(_mp_walk(p))
        else:
            r.append(p)
    return r
"""

PROBE = r"""
gc.collect()
_mp_i = sys.implementation
try:
    _mp_v = os.statvfs(os.getcwd())
    _mp_fs = (_mp_v[0] * _mp_v[4], _mp_v[0] * _mp_v[2])
except Exception:
    _mp_fs = (-1, -1)
try:
    _mp_m = os.uname().machine
except Exception:
    _mp_m = ''
print(repr({'name': _mp_i.name, 'version': tuple(_mp_i.version), 'mpy': getattr(_mp_i, '_mpy', None),
 'platform': sys.platform, 'machine': getattr(_mp_i, '_machine', '') or _mp_m,
 'mem_free': gc.mem_free(), 'mem_alloc': gc.mem_alloc(), 'fs_free': _mp_fs[0], 'fs_total': _mp_fs[1],
 'cwd': os.getcwd(), 'path': list(sys.path), 'hash': _mp_alg, 'b64': _mp_b64d is not None}))
del _mp_i, _mp_v, _mp_fs, _mp_m
"""


# ------------------------------------------------------------------------------ board info
@dataclass
class BoardInfo:
    name: str
    version: tuple
    mpy: int | None            # sys.implementation._mpy (None: firmware too old to say)
    platform: str
    machine: str
    mem_free: int
    mem_alloc: int
    fs_free: int
    fs_total: int
    cwd: str
    path: list[str] = field(default_factory=list)
    hash: str = "sha256"
    b64: bool = True

    @property
    def version_str(self) -> str:
        v = [str(x) for x in self.version]
        s = ".".join(v[:3])
        return s + (f"-{v[3]}" if len(v) > 3 and v[3] else "")

    @property
    def mpy_version(self) -> int | None:
        return None if self.mpy is None else self.mpy & 0xFF

    @property
    def mpy_sub(self) -> int | None:
        return None if self.mpy is None else (self.mpy >> 8) & 3

    @property
    def abi(self) -> str:
        """.mpy ABI as 'major.sub' ('6.3'), or '?' if the firmware does not report it."""
        return "?" if self.mpy is None else f"{self.mpy_version}.{self.mpy_sub}"

    @property
    def arch(self) -> str:
        """Native architecture name ('x64', 'xtensawin', ...); '' if the firmware has no native emitter."""
        if self.mpy is None:
            return ""
        i = self.mpy >> 10
        return MPY_ARCHS[i] if i < len(MPY_ARCHS) else f"arch{i}"

    @property
    def is_unix_port(self) -> bool:
        return self.platform in ("linux", "darwin", "freebsd")

    def describe(self) -> list[tuple[str, str]]:
        def kib(n: int) -> str:
            return "?" if n < 0 else f"{n / 1024:,.0f} KiB"
        return [
            ("firmware", f"MicroPython {self.version_str} on {self.platform}"
             + (" (unix port: virtual board)" if self.is_unix_port else "")),
            ("machine", self.machine or "?"),
            ("native arch", self.arch or "none (this firmware cannot load native code)"),
            (".mpy ABI", self.abi + (f" (sys.implementation._mpy = {self.mpy})" if self.mpy is not None else "")),
            ("free heap", f"{kib(self.mem_free)} of {kib(self.mem_free + self.mem_alloc)}"),
            ("free flash", f"{kib(self.fs_free)} of {kib(self.fs_total)} (cwd {self.cwd})"),
            ("file hash", self.hash + " (computed on the board)"),
        ]


# ------------------------------------------------------------------------------ the connection
class Board:
    """One session with a board: connect, soft reset into the raw REPL, then exec helpers."""

    def __init__(self, port: str, baudrate: int = 115200, soft_reset: bool = True, timeout: float = 10.0):
        from mpremote.transport_serial import SerialTransport, TransportError

        self.port = port
        self.timeout = timeout
        import os
        if port.startswith("/dev/") and not os.path.exists(port):
            raise RemoteError(f"{port} does not exist: is the board plugged in? (`mpremote devs` lists the ports; "
                              "`mpyml board start` gives a virtual one)")
        try:
            self.t = SerialTransport(port, baudrate=baudrate, timeout=1)
        except TransportError as e:
            raise RemoteError(f"cannot open {port}: {e} (is another program, e.g. a REPL, using it?)") from None
        try:
            self._enter_raw_repl(soft_reset)
            self.exec(HELPER)
            self.info = BoardInfo(**self.eval_print(PROBE))
        except OSError as e:
            self.close()
            hint = (" (a board that cannot soft-reset, e.g. a plain unix port on a pty or one running a program: "
                    "use --no-reset)" if soft_reset else "")
            raise RemoteError(f"{port}: the board disconnected ({e.strerror or e}){hint}") from None
        except BaseException:
            self.close()
            raise

    # -- REPL plumbing
    def _read_until(self, ending: bytes, timeout: float) -> bytes:
        return self.t.read_until(1, ending, timeout=timeout, timeout_overall=timeout)

    def _flush_input(self) -> None:
        s = self.t.serial
        time.sleep(0.05)
        while s.in_waiting:
            s.read(s.in_waiting)
            time.sleep(0.02)

    def _enter_raw_repl(self, soft_reset: bool) -> None:
        """Like mpremote's enter_raw_repl, with recovery: a host killed mid-transfer can leave the
        board inside a raw-paste transfer or a running command."""
        s = self.t.serial
        banner = b"raw REPL; CTRL-B to exit\r\n"
        for attempt in range(4):
            if attempt == 1:
                s.write(b"\x04")             # end a dangling raw-paste transfer
                time.sleep(0.1)
            elif attempt >= 2:
                s.write(b"\x03\x03\r\x02")   # interrupt twice, back to the friendly REPL
                time.sleep(0.3)
            s.write(b"\r\x03\x03")
            self._flush_input()
            s.write(b"\r\x01")
            data = self._read_until(banner + b">", timeout=2.0 + attempt)
            if data.endswith(banner + b">"):
                break
        else:
            raise RemoteError(f"{self.port}: no MicroPython raw REPL (got {data[-80:]!r}); is MicroPython "
                              "running on it? Reset the board and try again")
        if not soft_reset:
            # mpremote's exec reads the '>' prompt itself: ask for the banner once more and leave its '>'
            s.write(b"\x01")
            data = self._read_until(banner, timeout=self.timeout)
            if not data.endswith(banner):
                raise RemoteError(f"{self.port}: no raw REPL (got {data[-80:]!r})")
        if soft_reset:
            s.write(b"\x04")
            data = self._read_until(b"soft reboot\r\n", timeout=self.timeout)
            if not data.endswith(b"soft reboot\r\n"):
                raise RemoteError(f"{self.port}: the board did not soft-reset (got {data[-80:]!r})")
            data = self._read_until(banner, timeout=self.timeout)
            if not data.endswith(banner):
                raise RemoteError(f"{self.port}: no raw REPL after the soft reset (got {data[-80:]!r})")
        self.t.in_raw_repl = True

    def exec(self, code: str, timeout: float | None = None) -> bytes:
        from mpremote.transport import TransportError

        try:
            out, err = self.t.exec_raw(code, timeout=timeout or self.timeout)
        except TransportError as e:
            raise RemoteError(f"{self.port}: {e}") from None
        except OSError as e:     # serial I/O error, e.g. EIO: the board was unplugged or reset
            raise RemoteError(f"{self.port}: the board disconnected ({e.strerror or e}); reconnect it and run the "
                              "command again (an interrupted deploy leaves the previous files intact)") from None
        if err:
            raise RemoteError(f"error on the board:\n{err.decode(errors='replace').strip()}")
        return out

    def eval_print(self, code: str, timeout: float | None = None):
        """Run code that prints one repr(); return the value."""
        out = self.exec(code, timeout=timeout).decode(errors="replace").strip()
        try:
            return ast.literal_eval(out.splitlines()[-1])
        except (ValueError, SyntaxError, IndexError):
            raise RemoteError(f"unexpected answer from the board: {out[-300:]!r}") from None

    def close(self) -> None:
        t = getattr(self, "t", None)
        if t is not None:
            try:
                if t.in_raw_repl:
                    t.exit_raw_repl()
            except Exception:
                pass
            try:
                t.close()
            except Exception:
                pass
            self.t = None

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- files
    def file_infos(self, items: list[tuple[str, int]]) -> list:
        """For each (path, expected size): None (absent), 'dir', (size, '') if the size differs (or the
        expected size is -2: presence only), else (size, hash) hashed on the board."""
        out: list = []
        for i in range(0, len(items), 40):
            part = items[i:i + 40]
            out += self.eval_print(f"_mp_infos({part!r})", timeout=max(self.timeout, 60))
        return out

    def recover(self, paths: list[str]) -> list[str]:
        """Clean up after an interrupted deploy: drop *.part, restore a FAT *.old if its file is gone."""
        out: list[str] = []
        for i in range(0, len(paths), 40):
            out += self.eval_print(f"_mp_recover({paths[i:i + 40]!r})")
        return out

    def walk(self, d: str) -> list[str]:
        return self.eval_print(f"print(repr(_mp_walk({d!r})))")

    def remove(self, path: str) -> None:
        self.exec(f"_mp_rm({path!r})")

    def chunk_size(self) -> int:
        """Raw bytes per transfer command: bounded by the board's free heap."""
        n = max(384, min(4096, self.info.mem_free // 24))
        return n - n % 3

    def write_file(self, dest: str, data: bytes, progress: ProgressFn | None = None,
                   fault: Callable[[int], None] | None = None) -> None:
        """Write `data` to `dest` safely: to dest.part, verify size and hash on the board, rename.

        An interruption at any point leaves the previous `dest` untouched (FAT: see _mp_commit,
        whose .old is restored by recover())."""
        tmp = dest + PART_SUFFIX
        want = (len(data), host_hash(data, self.info.hash))
        for attempt in range(2):
            self.exec(f"_mp_open({tmp!r})")
            step = self.chunk_size()
            sent = 0
            nchunk = 0
            while sent < len(data):
                chunk = data[sent:sent + step]
                payload = base64.b64encode(chunk) if self.info.b64 else chunk
                self.exec(f"_mp_w({payload!r})")
                sent += len(chunk)
                nchunk += 1
                if progress:
                    progress(sent, len(data))
                if fault:
                    fault(nchunk)
            got = tuple(self.eval_print(f"_mp_close({tmp!r})", timeout=max(self.timeout, 60)))
            if got == want:
                break
            self.remove(tmp)
            if attempt == 1:
                raise RemoteError(f"{dest}: verification failed on the board: wrote {want[0]} B "
                                  f"{self.info.hash} {want[1]}, read back {got[0]} B {got[1]}")
        self.exec(f"_mp_commit({tmp!r}, {dest!r})")


def default_port() -> str | None:
    """The first USB serial port that looks like a MicroPython board (as `mpremote connect auto`)."""
    try:
        import serial.tools.list_ports
    except ImportError:
        return None
    for p in sorted(serial.tools.list_ports.comports(), key=lambda p: p.device):
        if p.vid is not None:
            return p.device
    return None

