# Run by tests/test_romfs.py on the MicroPython unix port: mount a ROMFS image with vfs.VfsRom, load a
# model from it and report the heap growth at load, whether the model buffer is read-only, and the output;
# then the same for a copy of the model on the ordinary filesystem (loaded into RAM).
# argv: image path, model path inside the image, plain copy of the model, input file, engine ("c" / "viper")
import gc
import sys

import vfs

import mpyml

img_path, name, plain, inp_path, engine = sys.argv[1:6]
with open(inp_path, "rb") as f:
    inp = f.read()
with open(img_path, "rb") as f:
    img = f.read()              # on a board this is the flash partition; here a bytes object stands in
vfs.mount(vfs.VfsRom(img), "/rom")

eng = None if engine == "c" else "viper"


def run(src, tag):
    gc.collect()
    free0 = gc.mem_free()
    m = mpyml.load(src, engine=eng)
    gc.collect()
    grew = free0 - gc.mem_free()
    buf = m._buf
    try:
        buf[0] = buf[0]
        ro = 0
    except TypeError:
        ro = 1
    m.input.buffer[:] = inp
    m.invoke()
    print("RESULT", tag, grew, m.arena_size, m.ctx_bytes, ro, type(buf).__name__, m.engine,
          bytes(m.output.buffer).hex())


run(plain, "warmup")            # imports the engine (its code is on the heap on the unix port)
run("/rom/" + name, "rom")
run(plain, "ram")
print("DONE")
