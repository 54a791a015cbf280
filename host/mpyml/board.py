"""Virtual board: the MicroPython unix port behind a pseudo-terminal, addressable like a serial board.

`mpyml board start [--dir D]` starts a small relay daemon that owns a pty pair; the slave path
(/dev/pts/N) is what mpremote, `mpyml deploy --port` or a terminal program connect to. Behind the
relay runs `micropython` (the unix port) on a second pty, with:

* its own filesystem: the board directory D is mounted at "/" (os.VfsPosix(D)) and is the
  working directory, so "/lib/x.mpy", "lib/x.mpy" and "models/m.mpk" all land under D, just as
  on an ESP32 or RP2040 whose flash filesystem is mounted at "/"; sys.path is ['', '.frozen', '/lib'];
* boot.py then main.py run at start, like a real board;
* soft reset emulated: the unix port has none (Ctrl-D exits it, and Ctrl-D on an empty raw REPL
  line wedges it), so the relay follows the raw-REPL line state, intercepts that Ctrl-D, prints
  "MPY: soft reboot" and restarts the interpreter straight into the raw REPL (boot.py runs,
  main.py does not, as on a real board). An interpreter that exits (Ctrl-D at ">>>", sys.exit())
  is restarted the same way in friendly mode;
* Ctrl-C interrupts running code (the pty is the interpreter's controlling terminal);
* the raw REPL is passed byte for byte (mpremote exec, fs, mount, mip work); at the friendly REPL
  "\n" is printed as "\r\n", as boards do;
* `--arch-override ARCH` makes `sys.implementation._mpy` report another native architecture
  (tests: a board with no native module), by swapping a proxy for `sys` into sys.modules.

Runtime state (pid, pty path, log) lives in $TMPDIR/mpyml-boards-<uid>/<hash of D>/, never in D,
so the board's filesystem holds only what was put on it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import tempfile
import termios
import time
import tty
from dataclasses import dataclass
from pathlib import Path

from . import paths
from ._cli_util import add_subcommand, module_main

# Index of sys.implementation._mpy >> 10 (MicroPython docs, "MPY files").
MPY_ARCHS = ("", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
             "xtensa", "xtensawin", "rv32imc", "rv64imc")

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n>"
DEFAULT_HEAPSIZE = "2M"
START_TIMEOUT = 15.0


def run_root() -> Path:
    base = os.environ.get("MPYML_BOARD_RUNDIR") or tempfile.gettempdir()
    return Path(base) / f"mpyml-boards-{os.getuid()}"


def default_board_dir() -> Path:
    env = os.environ.get("MPYML_BOARD_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "mpyml" / "board"


def run_dir_for(board_dir: Path) -> Path:
    key = hashlib.sha1(str(Path(board_dir).resolve()).encode()).hexdigest()[:12]
    return run_root() / key


# ------------------------------------------------------------------------------ interpreter boot
def boot_code(board_dir: Path, raw: bool, arch_override: str | None) -> str:
    """MicroPython source run by `micropython -i -c` before its REPL: the board's world."""
    d = str(board_dir)
    lines = [
        "import os, sys",
        "try:",
        " os.umount('/')",
        f" os.mount(os.VfsPosix({d!r}), '/')",
        " os.chdir('/')",
        " sys.path[:] = ['', '.frozen', '/lib']",
        "except (AttributeError, OSError):",   # a unix port without VFS: relative paths still work
        f" os.chdir({d!r})",
        f" sys.path[:] = ['', '.frozen', {d + '/lib'!r}]",
    ]
    if arch_override:
        idx = MPY_ARCHS.index(arch_override)
        lines += [
            "class _MpymlImpl:",
            " def __init__(self, i, mpy):",
            "  self.name = i.name; self.version = i.version; self._mpy = mpy",
            "  self._machine = getattr(i, '_machine', ''); self._build = getattr(i, '_build', '')",
            "class _MpymlSys:",
            " def __getattr__(self, n): return getattr(_mpyml_sys, n)",
            "_mpyml_sys = sys",
            "sys = _MpymlSys()",
            f"sys.implementation = _MpymlImpl(_mpyml_sys.implementation, "
            f"(_mpyml_sys.implementation._mpy & 0x3ff) | ({idx} << 10))",
            "_mpyml_sys.modules['sys'] = sys",
            "del _MpymlImpl, _MpymlSys",
        ]
    lines += [
        "def _mpyml_run(f):",
        " try:",
        "  os.stat(f)",
        " except OSError:",
        "  return",
        " try:",
        "  exec(compile(open(f).read(), f, 'exec'), globals())",
        " except BaseException as e:",
        "  sys.print_exception(e)",
        "_mpyml_run('boot.py')",
    ]
    if not raw:
        lines.append("_mpyml_run('main.py')")
    lines.append("del _mpyml_run")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ relay daemon
class Relay:
    """Bridges the host-facing pty and the interpreter's pty; emulates soft reset."""

    HOST_BACKLOG = 256 * 1024   # output kept for a host that is not reading; older bytes are dropped
    CHILD_BACKLOG = 64 * 1024   # input queued for the interpreter before the host is throttled

    def __init__(self, board_dir: Path, rundir: Path, heapsize: str, arch_override: str | None):
        self.board_dir = board_dir
        self.rundir = rundir
        self.heapsize = heapsize
        self.arch_override = arch_override
        self.child: subprocess.Popen | None = None
        self.cfd = -1
        self.hfd = -1
        self.to_host = bytearray()  # queued for the host pty (written as it becomes writable)
        self.to_child = bytearray()  # queued for the interpreter
        self.tail = b""            # last bytes the interpreter printed (prompt detection)
        self.raw_mode = False      # the interpreter is in its raw REPL (no newline translation)
        self.raw_idle = False      # ... and waits at the raw REPL prompt
        self.raw_line = 0          # bytes in its raw REPL line buffer
        self.pending = b""         # host bytes held back while the interpreter restarts
        self.restarting: str | None = None  # "raw" while waiting for a fresh banner to enter raw REPL
        self.restart_deadline = 0.0
        self.last_out_cr = False
        self.stop = False
        self.resets = 0
        # exit when this process ends (tests: a killed test run leaves no board behind)
        watch = os.environ.get("MPYML_BOARD_WATCH_PID")
        self.watch_pid = int(watch) if watch else None
        self.next_watch = 0.0

    # -- interpreter
    def _spawn(self, raw: bool) -> None:
        cm, cs = pty.openpty()
        attrs = termios.tcgetattr(cs)
        # raw, except ISIG so that Ctrl-C while code runs raises KeyboardInterrupt (the unix port
        # switches ISIG off itself while its REPL reads a line).
        attrs[0] &= ~(termios.BRKINT | termios.ICRNL | termios.INPCK | termios.ISTRIP | termios.IXON
                      | termios.INLCR | termios.IGNCR)
        attrs[1] &= ~termios.OPOST
        attrs[2] = (attrs[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
        attrs[3] = termios.ISIG
        cc = attrs[6]
        cc[termios.VMIN] = 1
        cc[termios.VTIME] = 0
        cc[termios.VINTR] = b"\x03"
        for k in (termios.VQUIT, termios.VSUSP):
            cc[k] = b"\x00"
        termios.tcsetattr(cs, termios.TCSANOW, attrs)
        env = dict(os.environ)
        env["MICROPYPATH"] = ".frozen:" + str(self.board_dir / "lib")

        def _ctty() -> None:  # runs in the child: the pty becomes its controlling terminal
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.child = subprocess.Popen(
            [paths.micropython_exe(), "-X", f"heapsize={self.heapsize}", "-i", "-c",
             boot_code(self.board_dir, raw, self.arch_override)],
            stdin=cs, stdout=cs, stderr=cs, cwd=str(self.board_dir), env=env,
            preexec_fn=_ctty, close_fds=True)
        os.close(cs)
        os.set_blocking(cm, False)
        self.cfd = cm
        self.tail = b""
        self.raw_mode = False
        self.raw_idle = False
        self.raw_line = 0
        self.to_child.clear()

    def _kill_child(self) -> None:
        if self.child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.child.wait(timeout=5)
            self.child = None
        if self.cfd >= 0:
            os.close(self.cfd)
            self.cfd = -1

    def _restart(self, raw: bool) -> None:
        self._kill_child()
        self.resets += 1
        self._to_host(b"MPY: soft reboot\r\n")
        self._spawn(raw)
        if raw:
            self.restarting = "raw"
            self.restart_deadline = time.monotonic() + START_TIMEOUT

    def _child_gone(self) -> None:
        code = self.child.poll() if self.child else None
        print(f"interpreter exited ({code}); restarting (soft reboot)", flush=True)
        self._restart(raw=False)

    # -- queues
    def _to_host(self, data: bytes) -> None:
        self.to_host += data
        if len(self.to_host) > self.HOST_BACKLOG:   # nobody reads: drop the oldest, as a UART would
            del self.to_host[:len(self.to_host) - self.HOST_BACKLOG]
        self._flush_host()

    def _flush_host(self) -> None:
        while self.to_host:
            try:
                n = os.write(self.hfd, self.to_host)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.to_host.clear()
                return
            del self.to_host[:n]

    def _flush_child(self) -> None:
        while self.to_child and self.cfd >= 0:
            try:
                n = os.write(self.cfd, self.to_child)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            del self.to_child[:n]

    # -- data paths
    def _from_child(self, data: bytes) -> None:
        self.tail = (self.tail + data)[-64:]
        if self.restarting == "raw":
            # swallow the banner of the fresh interpreter, then put it into raw REPL
            if self.tail.endswith(b">>> "):
                self.restarting = None
                self.tail = b""
                self.to_child += b"\x01"
                self._flush_child()
            elif time.monotonic() > self.restart_deadline:
                self.restarting = None
            return
        if self.tail.endswith(RAW_BANNER) or (self.raw_mode and self.tail.endswith(b"\x04>")):
            self.raw_mode = self.raw_idle = True
            self.raw_line = 0
        if self.raw_mode:
            self._to_host(data)    # raw REPL: byte-exact (mpremote's protocols)
        else:
            # friendly REPL: boards print "\r\n" for "\n"; the interpreter's pty does no output processing
            out = bytearray()
            for b in data:
                if b == 0x0A and not self.last_out_cr:
                    out += b"\r"
                out.append(b)
                self.last_out_cr = b == 0x0D
            self._to_host(bytes(out))
        if self.pending and self.raw_idle:
            data, self.pending = self.pending, b""
            self._from_host(data)

    def _from_host(self, data: bytes) -> None:
        if self.restarting or self.child is None:
            self.pending += data
            return
        for i, b in enumerate(data):
            if self.raw_idle:
                if b == 0x04 and self.raw_line == 0:  # Ctrl-D on an empty raw REPL line: soft reset
                    self._flush_child()
                    self._to_host(b"OK\r\n")
                    self._restart(raw=True)
                    self.pending += data[i + 1:]
                    return
                if b in (0x01, 0x03):
                    self.raw_line = 0
                elif b == 0x02:
                    self.raw_idle = self.raw_mode = False   # back to the friendly REPL
                elif b in (0x04, 0x05):
                    self.raw_idle = False                   # runs the line / raw-paste transfer
                else:
                    self.raw_line += 1
            self.to_child.append(b)
        self._flush_child()

    # -- main loop
    def serve(self) -> int:
        self.hfd, hslave = pty.openpty()
        tty.setraw(hslave)   # keep the slave open ourselves: no EIO when clients disconnect
        os.set_blocking(self.hfd, False)
        tty_path = os.ttyname(hslave)
        self.rundir.mkdir(parents=True, exist_ok=True)
        link = self.rundir / "tty"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(tty_path)

        def _term(signum, frame):  # noqa: ARG001
            self.stop = True

        signal.signal(signal.SIGTERM, _term)
        signal.signal(signal.SIGINT, _term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        wake_r, wake_w = os.pipe()      # a signal wakes select() at once (fast `board stop`)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        self._spawn(raw=False)
        state = {"pid": os.getpid(), "tty": tty_path, "dir": str(self.board_dir), "heapsize": self.heapsize,
                 "arch_override": self.arch_override, "micropython": paths.micropython_exe(),
                 "started": time.time(), "log": str(self.rundir / "board.log")}
        tmp = self.rundir / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.rundir / "state.json")
        print(f"virtual board on {tty_path} (fs {self.board_dir})", flush=True)
        try:
            while not self.stop:
                rl = [wake_r]
                if self.cfd >= 0:
                    rl.append(self.cfd)
                if len(self.to_child) < self.CHILD_BACKLOG:
                    rl.append(self.hfd)     # else let the host wait: flow control
                wl = ([self.hfd] if self.to_host else []) + ([self.cfd] if self.to_child and self.cfd >= 0 else [])
                try:
                    r, w, _ = select.select(rl, wl, [], 0.5)
                except InterruptedError:
                    continue
                if wake_r in r:
                    os.read(wake_r, 512)
                    continue
                if self.hfd in w:
                    self._flush_host()
                if self.cfd in w:
                    self._flush_child()
                if self.cfd in r:
                    try:
                        data = os.read(self.cfd, 65536)
                    except BlockingIOError:
                        data = None
                    except OSError:  # EIO: the interpreter closed its terminal (exited)
                        data = b""
                    if data:
                        self._from_child(data)
                    elif data == b"":
                        self._child_gone()
                        continue
                if self.hfd in r:
                    try:
                        data = os.read(self.hfd, 65536)
                    except (BlockingIOError, OSError):
                        data = b""
                    if data:
                        self._from_host(data)
                if self.child is not None and self.child.poll() is not None:
                    # drain what it printed last, then restart it (a real board would soft-reboot)
                    with contextlib.suppress(OSError):
                        while True:
                            d = os.read(self.cfd, 65536)
                            if not d:
                                break
                            self._from_child(d)
                    self._child_gone()
                if self.watch_pid and time.monotonic() > self.next_watch:
                    self.next_watch = time.monotonic() + 1.0
                    try:
                        os.kill(self.watch_pid, 0)
                    except ProcessLookupError:
                        print(f"watched process {self.watch_pid} is gone: stopping", flush=True)
                        break
                if self.restarting and time.monotonic() > self.restart_deadline:
                    print("interpreter restart timed out", flush=True)
                    self.restarting = None
        finally:
            self._kill_child()
            for name in ("state.json", "tty"):
                with contextlib.suppress(FileNotFoundError):
                    (self.rundir / name).unlink()
            os.close(self.hfd)
            os.close(hslave)
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)
        return 0


# ------------------------------------------------------------------------------ control API
@dataclass
class BoardState:
    pid: int
    tty: str
    dir: str
    heapsize: str
    arch_override: str | None
    rundir: Path

    @property
    def alive(self) -> bool:
        return pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    """True if the process runs (a zombie, exited but not yet reaped by init, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read_state(board_dir: Path) -> BoardState | None:
    rd = run_dir_for(board_dir)
    try:
        s = json.loads((rd / "state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    st = BoardState(s["pid"], s["tty"], s["dir"], s["heapsize"], s.get("arch_override"), rd)
    return st if st.alive else None


def all_states() -> list[BoardState]:
    out = []
    root = run_root()
    if root.is_dir():
        for d in sorted(root.iterdir()):
            try:
                s = json.loads((d / "state.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError, NotADirectoryError):
                continue
            st = BoardState(s["pid"], s["tty"], s["dir"], s["heapsize"], s.get("arch_override"), d)
            if st.alive:
                out.append(st)
    return out


class BoardError(RuntimeError):
    pass


def start(board_dir: Path | None = None, heapsize: str | None = None, arch_override: str | None = None,
          timeout: float = START_TIMEOUT, cpu: str | None = None) -> BoardState:
    """Start a virtual board (or return the one already running on that directory); with `cpu` (m0, m3, m4,
    m7) the project's MicroPython port on that Cortex-M under QEMU (mpyml.qemu_board), else the unix port."""
    board_dir = Path(board_dir or default_board_dir()).resolve()
    if cpu:
        return _start_qemu(board_dir, cpu, heapsize, arch_override)
    heapsize = heapsize or DEFAULT_HEAPSIZE
    if arch_override and arch_override not in MPY_ARCHS[1:]:
        raise BoardError(f"unknown architecture {arch_override!r}; one of {', '.join(MPY_ARCHS[1:])}")
    existing = read_state(board_dir)
    if existing:
        if existing.heapsize != heapsize or existing.arch_override != arch_override:
            raise BoardError(f"a board already runs on {board_dir} (pid {existing.pid}, heap "
                             f"{existing.heapsize}, arch override {existing.arch_override}); stop it first")
        return existing
    board_dir.mkdir(parents=True, exist_ok=True)
    rd = run_dir_for(board_dir)
    rd.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (rd / "state.json").unlink()
    cmd = [sys.executable, "-m", "mpyml.board", "_serve", "--dir", str(board_dir), "--heapsize", heapsize]
    if arch_override:
        cmd += ["--arch-override", arch_override]
    with open(rd / "board.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = read_state(board_dir)
        if st is not None:
            return st
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    log_text = (rd / "board.log").read_text(errors="replace")[-2000:]
    raise BoardError(f"virtual board did not start (see {rd / 'board.log'}):\n{log_text}")


def _start_qemu(board_dir: Path, cpu: str, heapsize: str | None, arch_override: str | None) -> BoardState:
    from . import qemu_board

    if arch_override:
        raise BoardError("--arch-override is for the unix-port board; an emulated CPU reports its own arch")
    try:
        heap = qemu_board.parse_size(heapsize) if heapsize else None
        existing = read_state(board_dir)
        if existing:
            want = qemu_board.heap_label(cpu, heap)
            if existing.heapsize != want:
                raise BoardError(f"a board already runs on {board_dir} (pid {existing.pid}, heap {existing.heapsize}); "
                                 "stop it first")
            return existing
        rd = run_dir_for(board_dir)
        with contextlib.suppress(FileNotFoundError):
            (rd / "state.json").unlink()
        s = qemu_board.start(rd, board_dir, cpu, heap)
    except qemu_board.QemuBoardError as e:
        raise BoardError(str(e)) from None
    return BoardState(s["pid"], s["tty"], s["dir"], s["heapsize"], None, rd)


def stop(board_dir: Path | None = None, timeout: float = 10.0) -> bool:
    """Stop the board running on board_dir; False if none was running."""
    board_dir = Path(board_dir or default_board_dir()).resolve()
    st = read_state(board_dir)
    if st is None:
        return False
    stop_state(st, timeout)
    return True


def stop_state(st: BoardState, timeout: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(st.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and st.alive:
        # reap it if it is our own child (tests start boards in-process)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(st.pid, os.WNOHANG)
        time.sleep(0.02)
    if st.alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(st.pid, signal.SIGKILL)


def resolve_port(port: str | None) -> str | None:
    """`virtual` / `virtual:DIR` -> that virtual board's pty; anything else unchanged."""
    if port is None or not (port == "virtual" or port.startswith("virtual:")):
        return port
    d = Path(port.split(":", 1)[1]) if ":" in port else default_board_dir()
    st = read_state(d)
    if st is None:
        raise BoardError(f"no virtual board running on {d}: start one with `mpyml board start --dir {d}`")
    return st.tty


# ------------------------------------------------------------------------------ CLI
def cmd_start(args: argparse.Namespace) -> int:
    try:
        st = start(args.dir, heapsize=args.heapsize, arch_override=args.arch_override, cpu=args.cpu)
    except BoardError as e:
        print(f"mpyml board start: {e}", file=sys.stderr)
        return 2
    print(st.tty)
    if args.cpu:
        print(f"emulated Cortex-{args.cpu.upper()} board (QEMU): heap {st.heapsize}, files in its RAM, pid {st.pid}; "
              f"connect with `mpremote connect {st.tty}`", file=sys.stderr)
        return 0
    print(f"virtual board: fs {st.dir}, heap {st.heapsize}"
          + (f", reports arch {st.arch_override}" if st.arch_override else "")
          + f", pid {st.pid}; connect with `mpremote connect {st.tty}`", file=sys.stderr)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    if args.all:
        states = all_states()
        for st in states:
            stop_state(st)
            print(f"stopped virtual board on {st.tty} (fs {st.dir})")
        return 0
    d = Path(args.dir or default_board_dir())
    if stop(d):
        print(f"stopped virtual board (fs {d.resolve()})")
        return 0
    print(f"no virtual board running on {d.resolve()}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    states = all_states() if args.all else [s for s in [read_state(Path(args.dir or default_board_dir()))] if s]
    if args.json:
        print(json.dumps([{"tty": s.tty, "dir": s.dir, "pid": s.pid, "heapsize": s.heapsize,
                           "arch_override": s.arch_override} for s in states], indent=1))
        return 0 if states else 1
    if not states:
        print(f"no virtual board running on {Path(args.dir or default_board_dir()).resolve()}"
              if not args.all else "no virtual boards running")
        return 1
    for s in states:
        print(f"{s.tty}  fs {s.dir}  heap {s.heapsize}  pid {s.pid}"
              + (f"  arch-override {s.arch_override}" if s.arch_override else ""))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    d = Path(args.dir).resolve()
    d.mkdir(parents=True, exist_ok=True)
    return Relay(d, run_dir_for(d), args.heapsize, args.arch_override).serve()


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    add_subcommand(sub, "board", "virtual board: the MicroPython unix port on a pseudo-terminal",
                   __doc__, configure_parser)


def configure_parser(p: argparse.ArgumentParser) -> None:
    bs = p.add_subparsers(dest="board_command", required=True)
    dir_help = f"board directory = its filesystem (default {default_board_dir()}, or $MPYML_BOARD_DIR)"
    s = bs.add_parser("start", help="start a virtual board; prints its pty path")
    s.add_argument("--dir", type=Path, help=dir_help)
    s.add_argument("--heapsize", default=None,
                   help=f"MicroPython heap, e.g. 110K (ESP32), 180K (RP2040), 4M (ESP32 + PSRAM); "
                        f"default {DEFAULT_HEAPSIZE} (--cpu: the board's own, see mpyml.qemu_board)")
    s.add_argument("--cpu", choices=("m0", "m3", "m4", "m7"),
                   help="boot the project's MicroPython port on this Cortex-M under qemu-system-arm instead of "
                        "the unix port (m0 micro:bit, m3/m4/m7 MPS2)")
    s.add_argument("--arch-override", choices=MPY_ARCHS[1:], metavar="ARCH",
                   help="report this native architecture in sys.implementation._mpy (tests)")
    s.set_defaults(func=cmd_start)
    s = bs.add_parser("stop", help="stop a virtual board")
    s.add_argument("--dir", type=Path, help=dir_help)
    s.add_argument("--all", action="store_true", help="stop every virtual board of this user")
    s.set_defaults(func=cmd_stop)
    s = bs.add_parser("status", help="show the virtual board (exit 1 if none runs)")
    s.add_argument("--dir", type=Path, help=dir_help)
    s.add_argument("--all", action="store_true", help="every virtual board of this user")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
    s = bs.add_parser("_serve", help=argparse.SUPPRESS)
    s.add_argument("--dir", required=True)
    s.add_argument("--heapsize", default=DEFAULT_HEAPSIZE)
    s.add_argument("--arch-override")
    s.set_defaults(func=cmd_serve)


def main(argv: list[str] | None = None) -> int:
    return module_main("mpyml.board", __doc__, configure_parser, argv)


if __name__ == "__main__":
    sys.exit(main())

