"""The "models people bring" corpus: common TinyML Keras architectures, converted the ordinary way.

    architectures   the builders (name -> Arch: a compiled Keras model + its input-data generator)
    convert         TFLiteConverter with int8 / uint8 / float32 I/O, cached in build/corpus/
    report          `python -m tests.corpus.report`: convert all, try mpyml.pack, table + JSON

Nothing here imports TensorFlow at module level: a warm cache never loads it.
"""

IO_TYPES = ("int8", "uint8", "float32")
ENGINES = ("c", "viper")        # both run every packed model, on the MicroPython unix port
N_SAMPLES = 3                   # random inputs per model (test and report use the same ones)
INPUT_SEED = 11
