# Runs the super-loop forever (period 5 ms) until SIGINT / Ctrl-C; tests/test_app_loop.py sends it.
import array

from fakemodel import FakeModel

from mpyml.app import App, SoftWDT, Threshold
from mpyml.sensors.replay import ReplaySeries

d = array.array("h", [((r * 7) % 200) - 100 for r in range(60)])
sensor = ReplaySeries(d, "h", loop=True, cols=6)
model = FakeModel(6, 6)


def pre(raw, model):
    b = model.input.buf
    for j in range(6):
        b[j] = raw[j] & 0xFF
    return True


app = App(sensor, array.array("h", bytes(12)), model=model, pre=pre, post=Threshold(model, 0, 0.2),
          wdt=SoftWDT(), period_ms=5, sleep="auto")
print("RUNNING")
s = app.run()
print("STOPPED", s["cycles"], s["ok_cycles"], s["wdt_feeds"], app.running)
app.print_stats()
app.close()
