"""The mpyml.app super-loop on the MicroPython unix port: 1000-cycle flat heap, watchdog fed every
successful cycle, injected sensor faults counted, cascades, duty cycling, postprocessing, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from conftest import load_hostrun

hostrun = load_hostrun()


def test_loop_device_suite():
    r = hostrun.run_device("mp_app_loop.py")
    assert "test_thousand_cycles_flat_heap_wdt_and_faults" in r.passed
    assert r.values["heap_free_start"] == r.values["heap_free_end"]
    st = r.values["stats"]
    assert st["read_errors"] == 3
    assert st["wdt_feeds"] == 998          # 997 successful cycles + the warm-up cycle
    assert set(st["latency"]) >= {"read", "pre", "invoke", "post", "act", "cycle"}


def test_ctrl_c_stops_the_loop_cleanly():
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(hostrun.HERE), str(hostrun.paths.DEVICE_DIR), ".frozen"])
    env["MPYML_TEST_ARGS"] = json.dumps({})
    p = subprocess.Popen([hostrun.paths.micropython_exe(), str(hostrun.HERE / "mp_app_sigint.py")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == "RUNNING"
        time.sleep(0.4)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, out + err
    assert "stopped (Ctrl-C)" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("STOPPED"))
    _, cycles, ok, feeds, running = line.split()
    assert int(ok) >= 10
    assert int(ok) in (int(cycles), int(cycles) - 1)      # the interrupted cycle may not complete
    assert int(feeds) == int(ok)
    assert running == "False"
    assert "invoke" in out and "avg" in out      # print_stats ran after the stop
