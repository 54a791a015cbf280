# mpyml.sensors.replay: file readers for replay sensors, generic series replay, fault injection.
#
# Readers (plain MicroPython, also run under CPython):
#   load_image(path, fmt, width, height)  BMP (1/4/8-bit palettized, 24/32-bit; bottom-up or top-down),
#                                         PGM/PPM (P5/P6, binary), or raw (.raw/.gray/.rgb565/.rgb888)
#   read_wav(path) -> WavInfo             RIFF/WAVE PCM header (8/16/24/32-bit, any channel count)
#   load_npy(path) -> (shape, array)      .npy v1/v2/v3, little-endian ints/floats, C order
#   load_csv(path, typecode) -> (rows, cols, array)   comma/semicolon/space separated, optional header
import array

from . import GRAY, RGB565, RGB888, EndOfData, SensorError

# ------------------------------------------------------------------ images


def _rgb_to(fmt, r, g, b, out, i):
    """Store one pixel (r, g, b 0..255) at pixel index i of out in format fmt."""
    if fmt == GRAY:
        # ITU-R BT.601 luma with weights summing to 256: gray pixels (v, v, v) map to v exactly.
        out[i] = (77 * r + 150 * g + 29 * b) >> 8
    elif fmt == RGB565:
        v = ((r & 0xF8) << 8) | ((g & 0xFC) << 3) | (b >> 3)
        out[2 * i] = v >> 8
        out[2 * i + 1] = v & 0xFF
    else:
        out[3 * i] = r
        out[3 * i + 1] = g
        out[3 * i + 2] = b


def _bpp(fmt):
    return 1 if fmt == GRAY else (2 if fmt == RGB565 else 3)


def _u16(b, o):
    return b[o] | (b[o + 1] << 8)


def _u32(b, o):
    return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)


def _s32(b, o):
    v = _u32(b, o)
    return v - 0x100000000 if v & 0x80000000 else v


def decode_bmp(data, fmt=GRAY):
    """(width, height, bytearray in fmt, top-down rows) from BMP file bytes."""
    if data[0:2] != b"BM":
        raise ValueError("not a BMP file")
    off = _u32(data, 10)
    hsize = _u32(data, 14)
    if hsize == 12:                 # OS/2 BITMAPCOREHEADER
        w, h, bits, comp = _u16(data, 18), _u16(data, 20), _u16(data, 24), 0
        pal_entry = 3
    else:
        w, h, bits, comp = _s32(data, 18), _s32(data, 22), _u16(data, 28), _u32(data, 30)
        pal_entry = 4
    if comp not in (0, 3):          # BI_RGB (and BI_BITFIELDS with the default masks for 32-bit)
        raise ValueError("compressed BMP (compression %d) not supported" % comp)
    top_down = h < 0
    h = -h if top_down else h
    if bits not in (1, 4, 8, 24, 32):
        raise ValueError("BMP with %d bits per pixel not supported" % bits)
    pal = None
    if bits <= 8:
        n_pal = _u32(data, 46) if hsize >= 40 else 0
        if n_pal == 0:
            n_pal = 1 << bits
        p0 = 14 + hsize
        pal = bytearray(3 * n_pal)  # stored B G R (X) -> keep R G B
        for k in range(n_pal):
            q = p0 + pal_entry * k
            pal[3 * k] = data[q + 2]
            pal[3 * k + 1] = data[q + 1]
            pal[3 * k + 2] = data[q]
    stride = ((w * bits + 31) // 32) * 4
    out = bytearray(w * h * _bpp(fmt))
    for y in range(h):
        src = off + (y if top_down else (h - 1 - y)) * stride
        for x in range(w):
            if bits == 8:
                k = 3 * data[src + x]
                r, g, b = pal[k], pal[k + 1], pal[k + 2]
            elif bits == 24 or bits == 32:
                q = src + x * (bits // 8)
                b, g, r = data[q], data[q + 1], data[q + 2]
            elif bits == 4:
                v = data[src + (x >> 1)]
                k = 3 * ((v >> 4) if (x & 1) == 0 else (v & 15))
                r, g, b = pal[k], pal[k + 1], pal[k + 2]
            else:
                v = (data[src + (x >> 3)] >> (7 - (x & 7))) & 1
                k = 3 * v
                r, g, b = pal[k], pal[k + 1], pal[k + 2]
            _rgb_to(fmt, r, g, b, out, y * w + x)
    return w, h, out


def _pnm_tokens(data, n):
    """First n whitespace-separated header tokens of a PNM file and the offset after them."""
    toks = []
    i = 0
    ln = len(data)
    while len(toks) < n:
        while i < ln and data[i] in b" \t\r\n":
            i += 1
        if i < ln and data[i] == 35:      # '#': comment to end of line
            while i < ln and data[i] not in b"\r\n":
                i += 1
            continue
        j = i
        while j < ln and data[j] not in b" \t\r\n":
            j += 1
        toks.append(bytes(data[i:j]))
        i = j
    return toks, i + 1                    # exactly one whitespace byte before the raster


def decode_pnm(data, fmt=GRAY):
    """(width, height, bytearray in fmt) from a binary PGM (P5) or PPM (P6) with maxval < 256."""
    toks, off = _pnm_tokens(data, 4)
    magic, w, h, maxval = toks[0], int(toks[1]), int(toks[2]), int(toks[3])
    if magic not in (b"P5", b"P6") or maxval > 255:
        raise ValueError("only binary 8-bit PGM (P5) / PPM (P6) supported")
    out = bytearray(w * h * _bpp(fmt))
    ch = 1 if magic == b"P5" else 3
    for i in range(w * h):
        q = off + ch * i
        if ch == 1:
            v = data[q]
            if maxval != 255:
                v = (v * 255 + maxval // 2) // maxval
            if fmt == GRAY:
                out[i] = v
            else:
                _rgb_to(fmt, v, v, v, out, i)
        else:
            r, g, b = data[q], data[q + 1], data[q + 2]
            if maxval != 255:
                r = (r * 255 + maxval // 2) // maxval
                g = (g * 255 + maxval // 2) // maxval
                b = (b * 255 + maxval // 2) // maxval
            _rgb_to(fmt, r, g, b, out, i)
    return w, h, out


def convert_pixels(src, src_fmt, dst_fmt, n):
    """New bytearray of n pixels converted between GRAY / RGB565 / RGB888 (load time, not hot path)."""
    if src_fmt == dst_fmt:
        return bytearray(src[:n * _bpp(src_fmt)])
    out = bytearray(n * _bpp(dst_fmt))
    for i in range(n):
        if src_fmt == GRAY:
            r = g = b = src[i]
        elif src_fmt == RGB565:
            v = (src[2 * i] << 8) | src[2 * i + 1]
            r, g, b = (v >> 11) & 31, (v >> 5) & 63, v & 31
            r, g, b = (r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)
        else:
            r, g, b = src[3 * i], src[3 * i + 1], src[3 * i + 2]
        _rgb_to(dst_fmt, r, g, b, out, i)
    return out


_RAW_EXT = {"gray": GRAY, "raw": GRAY, "rgb565": RGB565, "rgb888": RGB888, "rgb": RGB888}


def _ext(path):
    i = path.rfind(".")
    return path[i + 1:].lower() if i >= 0 else ""


def load_image(path, fmt=GRAY, width=None, height=None, raw_fmt=None):
    """(width, height, bytearray in fmt) from a BMP, PGM/PPM or raw frame file."""
    f = open(path, "rb")
    try:
        data = f.read()
    finally:
        f.close()
    ext = _ext(path)
    if data[0:2] == b"BM":
        return decode_bmp(data, fmt)
    if data[0:2] in (b"P5", b"P6"):
        return decode_pnm(data, fmt)
    src_fmt = raw_fmt if raw_fmt is not None else _RAW_EXT.get(ext, GRAY)
    if width is None or height is None:
        raise ValueError("%s: raw frame needs width and height" % path)
    n = width * height
    if len(data) < n * _bpp(src_fmt):
        raise ValueError("%s: %d bytes, a %dx%d frame needs %d" % (path, len(data), width, height,
                                                                   n * _bpp(src_fmt)))
    return width, height, convert_pixels(data, src_fmt, fmt, n)


def save_pgm(path, width, height, gray):
    f = open(path, "wb")
    try:
        f.write(b"P5\n%d %d\n255\n" % (width, height))
        f.write(gray)
    finally:
        f.close()


# ------------------------------------------------------------------ WAV


class WavInfo:
    def __init__(self, rate, channels, bits, data_offset, data_bytes):
        self.rate = rate
        self.channels = channels
        self.bits = bits
        self.data_offset = data_offset
        self.data_bytes = data_bytes
        self.frames = data_bytes // (channels * (bits // 8))

    def __repr__(self):
        return "<WAV %d Hz %d ch %d-bit %d frames>" % (self.rate, self.channels, self.bits, self.frames)


def read_wav(f):
    """WavInfo of an open WAV file (file positioned at the first sample on return)."""
    hdr = f.read(12)
    if len(hdr) < 12 or hdr[0:4] != b"RIFF" or hdr[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    fmt = None
    pos = 12
    while True:
        ch = f.read(8)
        if len(ch) < 8:
            raise ValueError("WAV file has no data chunk")
        cid, size = ch[0:4], _u32(ch, 4)
        pos += 8
        if cid == b"fmt ":
            body = f.read(size)
            tag, channels, rate, bits = _u16(body, 0), _u16(body, 2), _u32(body, 4), _u16(body, 14)
            if tag == 0xFFFE and size >= 26:        # WAVE_FORMAT_EXTENSIBLE: subformat GUID
                tag = _u16(body, 24)
            if tag != 1:
                raise ValueError("WAV format tag %d: only integer PCM supported" % tag)
            fmt = (rate, channels, bits)
            pos += size
            if size & 1:
                f.read(1)
                pos += 1
        elif cid == b"data":
            if fmt is None:
                raise ValueError("WAV data chunk before fmt chunk")
            return WavInfo(fmt[0], fmt[1], fmt[2], pos, size)
        else:
            f.seek(size + (size & 1), 1)
            pos += size + (size & 1)


def load_wav(path):
    """(rate, array('h') of channel 0) of a whole WAV file (load time, not the hot path)."""
    f = open(path, "rb")
    try:
        info = read_wav(f)
        data = f.read(info.data_bytes)
    finally:
        f.close()
    out = array.array("h", bytes(2 * info.frames))
    _pcm_to_i16(data, info.channels, info.bits, out, info.frames)
    return info.rate, out


def _pcm_to_i16(data, channels, bits, out, n):
    """Channel 0 of n interleaved PCM frames as int16 into out."""
    bps = bits // 8
    step = channels * bps
    for i in range(n):
        q = i * step
        if bits == 16:
            v = data[q] | (data[q + 1] << 8)
            out[i] = v - 65536 if v & 0x8000 else v
        elif bits == 8:
            out[i] = (data[q] - 128) << 8
        else:                               # 24/32-bit: keep the top 16 bits
            v = data[q + bps - 2] | (data[q + bps - 1] << 8)
            out[i] = v - 65536 if v & 0x8000 else v


# ------------------------------------------------------------------ NPY / CSV

_NPY_TYPES = {"i1": "b", "u1": "B", "b1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I",
              "f4": "f", "f8": "d"}


def _npy_field(hdr, key):
    i = hdr.find("'" + key + "'")
    if i < 0:
        raise ValueError("npy header has no %s" % key)
    i = hdr.find(":", i) + 1
    while hdr[i] == " ":
        i += 1
    return hdr, i


def load_npy(path):
    """(shape tuple, array) from a .npy file (C order, little-endian numeric dtypes)."""
    shape, arr, _ = _load_npy(path)
    return shape, arr


def _load_npy(path):
    f = open(path, "rb")
    try:
        pre = f.read(10)
        if pre[0:6] != b"\x93NUMPY":
            raise ValueError("%s: not a .npy file" % path)
        if pre[6] == 1:
            hlen = _u16(pre, 8)
        else:
            hlen = _u32(pre + f.read(2), 8)
        hdr = f.read(hlen).decode()
        data = f.read()
    finally:
        f.close()
    hdr, i = _npy_field(hdr, "descr")
    q = hdr[i]
    descr = hdr[i + 1:hdr.find(q, i + 1)]
    if descr[0] == ">" and descr[1:] not in ("i1", "u1", "b1"):
        raise ValueError("%s: big-endian npy not supported" % path)
    tc = _NPY_TYPES.get(descr.lstrip("<|="))
    if tc is None:
        raise ValueError("%s: npy dtype %s not supported" % (path, descr))
    hdr, i = _npy_field(hdr, "fortran_order")
    if hdr[i:i + 4] == "True":
        raise ValueError("%s: Fortran-order npy not supported" % path)
    hdr, i = _npy_field(hdr, "shape")
    j = hdr.find(")", i)
    shape = tuple(int(s) for s in hdr[i + 1:j].replace(" ", "").split(",") if s)
    arr = array.array(tc, data)
    n = 1
    for d in shape:
        n *= d
    if len(arr) != n:
        raise ValueError("%s: %d values for shape %s" % (path, len(arr), shape))
    return shape, arr, tc


def load_csv(path, typecode="f"):
    """(rows, cols, flat array) from a CSV file; a first line that is not numeric is a header."""
    vals = array.array(typecode)
    rows = cols = 0
    f = open(path, "r")
    try:
        for line in f:
            line = line.strip()
            if not line or line[0] == "#":
                continue
            parts = line.replace(";", ",").replace("\t", ",").split(",")
            if len(parts) == 1:
                parts = line.split()
            try:
                nums = [float(p) for p in parts]
            except ValueError:
                if rows == 0:
                    continue                    # header line
                raise
            if cols == 0:
                cols = len(nums)
            elif len(nums) != cols:
                raise ValueError("%s: row %d has %d columns, expected %d" % (path, rows + 1, len(nums), cols))
            for v in nums:
                vals.append(int(round(v)) if typecode in "bBhHiIlL" else v)
            rows += 1
    finally:
        f.close()
    return rows, cols, vals


def load_series(path, typecode="f"):
    """(rows, cols, flat array with typecode) from a .npy or .csv file."""
    if _ext(path) == "npy":
        shape, arr, tc = _load_npy(path)
        rows = shape[0] if shape else 1
        cols = len(arr) // rows if rows else 0
        if tc != typecode:
            if typecode in "bBhHiIlL":
                arr = array.array(typecode, [int(round(v)) for v in arr])
            else:
                arr = array.array(typecode, arr)
        return rows, cols, arr
    return load_csv(path, typecode)


# ------------------------------------------------------------------ replay sensors


class ReplaySeries:
    """Replay a (rows x cols) table from CSV/NPY one row per read (IMU samples, ADC values...).

    read_into(buf) copies the next row into buf (array or list, len >= cols) and returns cols;
    read_block(buf, n) copies the next n rows (row-major). loop=True wraps around at the end,
    otherwise EndOfData is raised. Allocates nothing per read.
    """

    def __init__(self, path_or_data, typecode="f", loop=True, cols=None):
        if isinstance(path_or_data, str):
            self.rows, self.cols, self.data = load_series(path_or_data, typecode)
            self.path = path_or_data
        else:
            self.data = path_or_data
            self.cols = cols or 1
            self.rows = len(self.data) // self.cols
            self.path = None
        if self.rows == 0:
            raise ValueError("replay series is empty")
        self.loop = loop
        self.pos = 0
        self.reads = 0

    def _next_row(self):
        if self.pos >= self.rows:
            if not self.loop:
                raise EndOfData()
            self.pos = 0
        r = self.pos
        self.pos = r + 1
        return r * self.cols

    def read_into(self, buf):
        o = self._next_row()
        d = self.data
        for j in range(self.cols):
            buf[j] = d[o + j]
        self.reads += 1
        return self.cols

    def read_block(self, buf, n):
        c = self.cols
        d = self.data
        k = 0
        for _ in range(n):
            o = self._next_row()
            for j in range(c):
                buf[k] = d[o + j]
                k += 1
        self.reads += 1
        return n

    def rewind(self):
        self.pos = 0

    def close(self):
        pass


class Faulty:
    """Wrap a sensor and make some reads fail (tests of the loop's error handling).

    fail_at: read numbers (0-based) that raise SensorError; fail_every: every n-th read fails.
    A failed read does not consume data from the wrapped sensor.
    """

    def __init__(self, sensor, fail_at=(), fail_every=0):
        self.sensor = sensor
        self.fail_at = fail_at
        self.fail_every = fail_every
        self.n = 0
        self.failures = 0

    def read_into(self, buf):
        n = self.n
        self.n = n + 1
        if n in self.fail_at or (self.fail_every and n % self.fail_every == self.fail_every - 1):
            self.failures += 1
            # a new instance each time: re-raising one preallocated exception object makes
            # MicroPython append to its traceback on every raise (the heap grows forever)
            raise SensorError(5, "injected sensor fault")
        return self.sensor.read_into(buf)

    def __getattr__(self, name):
        return getattr(self.sensor, name)

    def close(self):
        self.sensor.close()

