# Device-side runner used by `mpyml run` and the tests (plain MicroPython, unix port or board).
# argv: model.mpk inputs.bin outputs.bin n_samples repeat engine
# inputs.bin holds n_samples records, each all input tensors' raw bytes in order; outputs.bin
# receives the same for the outputs. Prints one line "MPYML_RESULT <median_us> <arena> <heap_delta>".
# Every sample starts from zeroed recurrent state (m.reset(): an LSTM / SVDF model's state, as a fresh
# tflite-micro interpreter and Keras' stateless layers have it), timing repeats included.
import gc
import sys
import time

import mpyml

model_path, in_path, out_path = sys.argv[1], sys.argv[2], sys.argv[3]
n, repeat = int(sys.argv[4]), int(sys.argv[5])
engine = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] != "-" else None
m = mpyml.load(model_path, engine=engine)
fin = open(in_path, "rb")
fout = open(out_path, "wb")
times = []
heap_delta = 0
saved = [bytearray(t.size) for t in m.inputs]
for _ in range(n):
    for s in saved:
        fin.readinto(s)
    # invoke may reuse input bytes for later activations (as TFLM does): restore before every run
    for _ in range(repeat - 1):
        for t, s in zip(m.inputs, saved):
            t.buffer[:] = s
        m.reset()
        t0 = time.ticks_us()
        m.invoke()
        times.append(time.ticks_diff(time.ticks_us(), t0))
    for t, s in zip(m.inputs, saved):
        t.buffer[:] = s
    m.reset()
    gc.collect()
    free0 = gc.mem_free()
    m.invoke()
    heap_delta = max(heap_delta, free0 - gc.mem_free())
    for t in m.outputs:
        fout.write(t.buffer)
fin.close()
fout.close()
times.sort()
print("MPYML_RESULT", times[len(times) // 2] if times else 0, m.arena_size, heap_delta)
