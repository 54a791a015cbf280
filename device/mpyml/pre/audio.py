# mpyml.pre.audio: streaming MFCC / log-mel features in fixed point.
#
#   mfcc = MFCC()                          # MLPerf Tiny KWS front end: 16 kHz, 30 ms / 20 ms frames,
#                                          # 512-point FFT, 40 mel bins 20-4000 Hz, 10 MFCCs, 49 frames
#   mfcc.set_output(model.input)           # quantize to the model input's scale / zero point
#   for each 320-sample chunk:  mfcc.push(chunk)       # computes only the new frame
#   mfcc.features(model.input.buffer)      # 49 x 10 int8 features, oldest frame first
#
# It reproduces (within one quantization step) the float front end of mlcommons/tiny
# keyword_spotting get_dataset.py: x / max(x), tf.signal.stft (periodic Hann, |X|),
# linear_to_mel_weight_matrix, log(mel + 1e-6), mfccs_from_log_mel_spectrograms[..., :10].
# Streaming: log(mel(x / max) + eps) = log(mel(x) + eps * max) - log(max), so each frame's log2-mel
# is computed once from the raw samples (pre_logmel); the normalization by the max over the
# window (tracked per hop), the epsilon and the DCT are applied per frame when features are read
# (pre_mfcc), and cached while the window max does not change.
import array
import math

from . import _fallback, kernel

NEG = _fallback.NEG
_MAGIC = 0x4D464331          # "1CFM": plan format 1
_HDR = 20


def _round(v):
    return int(math.floor(v + 0.5))


def _q15(v):
    q = _round(v * 32768)
    return 32767 if q > 32767 else (-32767 if q < -32767 else q)


def hz_to_mel(f):
    return 1127.0 * math.log(1.0 + f / 700.0)


def mel_weights(n_mels, n_bins, sample_rate, fmin, fmax):
    """TF linear_to_mel_weight_matrix as (start_bin, [weights]) per band (triangles in HTK mel)."""
    nyq = sample_rate / 2.0
    bins_mel = [hz_to_mel(nyq * k / (n_bins - 1)) for k in range(n_bins)]
    lo, hi = hz_to_mel(fmin), hz_to_mel(fmax)
    edges = [lo + (hi - lo) * i / (n_mels + 1) for i in range(n_mels + 2)]
    bands = []
    for b in range(n_mels):
        le, ce, ue = edges[b], edges[b + 1], edges[b + 2]
        ws = []
        start = -1
        for k in range(1, n_bins):               # bin 0 (DC) is always zero in TF
            m = bins_mel[k]
            w = min((m - le) / (ce - le), (ue - m) / (ue - ce))
            if w > 0:
                if start < 0:
                    start = k
                ws.append(w)
            elif start >= 0:
                break
        if start < 0:
            start = 1
        bands.append((start, ws))
    return bands


class Plan:
    """Tables of one front-end configuration: arrays for the fallback, .blob (bytes) for C."""

    def __init__(self, sample_rate=16000, frame_length=480, fft_length=512, n_mels=40, fmin=20.0,
                 fmax=4000.0, n_mfcc=10, eps=1e-6):
        N = fft_length
        if N & (N - 1) or N < 8 or N > 4096 or frame_length > N:
            raise ValueError("fft_length must be a power of two in 8..4096 and >= frame_length")
        M = N >> 1
        self.sample_rate = sample_rate
        self.frame_length = frame_length
        self.fft_length = N
        self.n_mels = n_mels
        self.n_mfcc = n_mfcc
        self.window = array.array("h", [_q15(0.5 - 0.5 * math.cos(2 * math.pi * n / frame_length))
                                        for n in range(frame_length)])
        self.cos = array.array("h", [_q15(math.cos(2 * math.pi * k / N)) for k in range(M)])
        self.sin = array.array("h", [_q15(math.sin(2 * math.pi * k / N)) for k in range(M)])
        bands = mel_weights(n_mels, M + 1, sample_rate, fmin, fmax)
        self.mel_start = array.array("h", [s for s, _ in bands])
        self.mel_len = array.array("h", [len(w) for _, w in bands])
        self.mel_w = array.array("h", [_q15(w) for _, ws in bands for w in ws])
        smax = max(sum(ws) for _, ws in bands) if bands else 1
        e = 0
        while (1 << e) < smax:
            e += 1
        self.mag_bits = 30 - e
        ln2 = math.log(2)
        if n_mfcc:
            k_n = math.sqrt(2.0 / n_mels)
            d = [k_n * math.cos(math.pi * k * (2 * b + 1) / (2 * n_mels)) * ln2
                 for k in range(n_mfcc) for b in range(n_mels)]
        else:
            d = [ln2]
        dmax = max(abs(v) for v in d)
        s = 15
        while dmax * (1 << (s + 1)) < 32767 and s < 30:
            s += 1
        self.dct_shift = s
        self.dct = array.array("h", [_round(v * (1 << s)) for v in d])
        self.log2_eps = _round(math.log(eps) / ln2 * 65536)
        self.log2tab = array.array("i", [_round(math.log(1 + i / 64) / ln2 * 65536) for i in range(65)])
        self.sptab = array.array("i", [_round(math.log(1 + 2 ** (-i / 8)) / ln2 * 65536) for i in range(193)])
        self.blob = self._pack()

    def _pack(self):
        secs = (self.window, self.cos, self.sin, self.mel_start, self.mel_len, self.mel_w, self.dct,
                self.log2tab, self.sptab)
        offs = []
        pos = 4 * _HDR
        for a in secs:
            offs.append(pos)
            pos += len(bytes(a))
            pos = (pos + 3) & ~3
        hdr = array.array("i", [_MAGIC, self.frame_length, self.fft_length, self.n_mels, self.n_mfcc,
                                self.mag_bits, self.dct_shift, self.log2_eps] + offs +
                          [len(self.sptab), len(self.mel_w), pos])
        if len(hdr) != _HDR:
            raise RuntimeError("plan header")
        blob = bytearray(pos)
        blob[0:4 * _HDR] = bytes(hdr)
        for o, a in zip(offs, secs):
            b = bytes(a)
            blob[o:o + len(b)] = b
        return blob


def log2q16(v, plan):
    """log2(v) in Q16 for an int 0 < v < 2^31, the same fixed-point function as the kernels."""
    return _fallback._log2q16(v, plan.log2tab)


class MFCC:
    """Streaming MFCC (or log-mel with n_mfcc=0) over the last n_frames frames.

    push(chunk): chunk is one hop (frame_step int16 samples, e.g. an array('h') from a microphone);
    returns 1 when a new frame was computed (the first frame needs frame_length samples).
    features(dst, dst_off): n_frames x n_mfcc values quantized for the tensor given to set_output,
    oldest frame first. normalize: 'max' (divide by the max sample of the window, like the MLPerf
    KWS front end), a number (fixed divisor, e.g. 32768) or None. Allocates nothing per hop.
    """

    def __init__(self, sample_rate=16000, frame_length=480, frame_step=320, fft_length=None, n_mels=40,
                 fmin=20.0, fmax=4000.0, n_mfcc=10, n_frames=49, eps=1e-6, normalize="max", engine=None):
        if fft_length is None:
            fft_length = 1
            while fft_length < frame_length:
                fft_length <<= 1
        self.plan = p = Plan(sample_rate, frame_length, fft_length, n_mels, fmin, fmax, n_mfcc, eps)
        self.frame_step = frame_step
        self.n_frames = n_frames
        self.n_out = n_mfcc if n_mfcc else n_mels
        self._logmel = kernel("pre_logmel", engine)
        self._mfcc = kernel("pre_mfcc", engine)
        self._quant = kernel("pre_quant", engine)
        self._max = kernel("pre_max", engine)
        c = self._logmel is not getattr(_fallback, "pre_logmel")
        self.engine = "c" if c else "py"
        self._plan_arg = p.blob if c else p
        self._mfcc_plan = p.blob if self._mfcc is not _fallback.pre_mfcc else p
        hops_in_buf = (frame_length + frame_step - 1) // frame_step
        self._hist = array.array("h", bytes(2 * hops_in_buf * frame_step))
        hv = memoryview(self._hist)
        self._slots = [hv[i * frame_step:(i + 1) * frame_step] for i in range(hops_in_buf)]
        self._frame = hv[0:frame_length]
        self._need = hops_in_buf
        self.n_hops = n_frames + (frame_length - 1) // frame_step
        self._hopmax = array.array("h", bytes(2 * self.n_hops))
        self._logmel_ring = array.array("i", [NEG] * (n_frames * n_mels))
        self._cache = array.array("i", bytes(4 * n_frames * self.n_out))
        self._cache_L = array.array("i", [-(1 << 31)] * n_frames)
        self._scratch = array.array("i", bytes(4 * fft_length))
        self._tmp = array.array("i", bytes(4 * n_mels))
        if normalize == "max":
            self._fixed_L = None
        else:
            self._fixed_L = _round(math.log(normalize) / math.log(2) * 65536) if normalize else 0
        self._qparams = None
        self.reset()

    def reset(self):
        for i in range(len(self._hist)):
            self._hist[i] = 0
        for i in range(self.n_hops):
            self._hopmax[i] = 0
        for i in range(len(self._logmel_ring)):
            self._logmel_ring[i] = NEG
        for i in range(self.n_frames):
            self._cache_L[i] = -(1 << 31)
        self.hops = 0
        self.frames = 0
        self._pos = 0           # ring slot of the next frame
        self._hpos = 0          # ring slot of the next hop max

    def set_output(self, target, mean=None, std=None):
        """Quantize features for target (a tensor, or (scale, zero_point)).

        mean/std (one value per coefficient, or None): standardize each coefficient first, i.e. the
        model input is (feature - mean[k]) / std[k]."""
        from .quant import _scale_zp, affine_params
        scale, zp = _scale_zp(target)
        if mean is None and std is None:
            self._qparams = affine_params([1 / 65536], [0.0], scale, zp, x_max=1 << 24)
            return
        n = self.n_out
        mean = [0.0] * n if mean is None else list(mean)
        std = [1.0] * n if std is None else list(std)
        if len(mean) != n or len(std) != n:
            raise ValueError("mean and std need %d values" % n)
        self._qparams = affine_params([1 / (65536 * s) for s in std], [-m / s for m, s in zip(mean, std)],
                                      scale, zp, x_max=1 << 24)

    def push(self, chunk):
        """Add one hop of int16 samples (len == frame_step). Returns 1 if a frame was computed."""
        self._hopmax[self._hpos] = self._max(chunk, 0, self.frame_step)
        self._hpos += 1
        if self._hpos == self.n_hops:
            self._hpos = 0
        s = self._slots
        n = len(s)
        for i in range(n - 1):
            s[i][:] = s[i + 1]
        s[n - 1][:] = chunk
        self.hops += 1
        if self.hops < self._need:
            return 0
        pos = self._pos
        nb = self.plan.n_mels
        self._logmel(self._plan_arg, self._frame, self._logmel_ring, pos * nb, self._scratch)
        self._cache_L[pos] = -(1 << 31)
        pos += 1
        self._pos = 0 if pos == self.n_frames else pos
        self.frames += 1
        return 1

    def ready(self):
        """True once n_frames frames have been computed."""
        return self.frames >= self.n_frames

    def log2max(self):
        if self._fixed_L is not None:
            return self._fixed_L
        m = self._max(self._hopmax, 0, self.n_hops)
        return log2q16(m, self.plan) if m > 1 else 0

    def compute(self, out=None):
        """Un-quantized features (Q16, natural-log units) of the window into out (int32 array of
        n_frames * n_out, oldest first; allocated when None). Returns out."""
        nf, K, nb = self.n_frames, self.n_out, self.plan.n_mels
        if out is None:
            out = array.array("i", bytes(4 * nf * K))
        self._update()
        for f in range(nf):
            slot = (self._pos + f) % nf
            for k in range(K):
                out[f * K + k] = self._cache[slot * K + k]
        return out

    def _update(self):
        L = self.log2max()
        nf, K, nb = self.n_frames, self.n_out, self.plan.n_mels
        cl = self._cache_L
        for slot in range(nf):
            if cl[slot] != L:
                self._mfcc(self._mfcc_plan, self._logmel_ring, slot * nb, L, self._cache, slot * K, self._tmp)
                cl[slot] = L

    def features(self, dst, dst_off=0):
        """Quantized features of the window into dst (e.g. model.input.buffer), oldest frame first."""
        if self._qparams is None:
            raise ValueError("MFCC.set_output(tensor) first")
        self._update()
        nf, K = self.n_frames, self.n_out
        pos = self._pos
        q = self._quant
        for f in range(nf):
            slot = pos + f
            if slot >= nf:
                slot -= nf
            q(self._cache, slot * K, K, dst, dst_off + f * K, self._qparams)
