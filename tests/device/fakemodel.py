# A stand-in for mpyml.Model in loop tests: same tensor attributes, invoke() allocates nothing.


class FakeTensor:
    def __init__(self, n, scale=1 / 256, zero_point=-128):
        self.buf = bytearray(n)
        self.buffer = memoryview(self.buf)
        self.size = n
        self.shape = (1, n)
        self.scale = scale
        self.zero_point = zero_point


class FakeModel:
    """invoke(): output[j] = input[j % n_in] (raw bytes), optionally + bias; counts invokes."""

    def __init__(self, n_in, n_out, in_scale=1 / 256, in_zp=-128, out_scale=1 / 256, out_zp=-128):
        self.input = FakeTensor(n_in, in_scale, in_zp)
        self.output = FakeTensor(n_out, out_scale, out_zp)
        self.inputs = (self.input,)
        self.outputs = (self.output,)
        self.invokes = 0

    def invoke(self):
        i, o = self.input.buf, self.output.buf
        n = len(i)
        for j in range(len(o)):
            o[j] = i[j % n]
        self.invokes += 1
