"""Float (NumPy) reference of the MLPerf Tiny KWS MFCC front end.

mlcommons/tiny benchmark/training/keyword_spotting/get_dataset.py (feature_type 'mfcc'): the waveform
divided by its maximum, zero-padded to 16000 samples (the 2-sample pad/shift of the original is a
no-op), tf.signal.stft(480, 320, fft_length=512, periodic Hann), |X|, 40 mel bins 20-4000 Hz
(tf.signal.linear_to_mel_weight_matrix), log(mel + 1e-6), tf.signal.mfccs_from_log_mel_spectrograms,
first 10 coefficients -> (49, 10). Matches TensorFlow to ~1e-4 (tests/test_pre_mfcc.py checks it).
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000
LABELS = ["down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", "silence", "unknown"]


def hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)


def mel_matrix(n_mels: int = 40, n_bins: int = 257, sample_rate: int = SAMPLE_RATE, fmin: float = 20.0,
               fmax: float = 4000.0) -> np.ndarray:
    """tf.signal.linear_to_mel_weight_matrix in float64: (n_bins, n_mels), DC row zero."""
    lin = np.linspace(0.0, sample_rate / 2, n_bins)[1:]
    m = hz_to_mel(lin)[:, None]
    edges = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    lo, ce, up = edges[:-2][None], edges[1:-1][None], edges[2:][None]
    w = np.maximum(0.0, np.minimum((m - lo) / (ce - lo), (up - m) / (up - ce)))
    return np.vstack([np.zeros((1, n_mels)), w])


def log_mel(wav: np.ndarray, frame_length: int = 480, frame_step: int = 320, fft_length: int = 512,
            n_mels: int = 40, desired: int = SAMPLE_RATE, normalize: bool = True) -> np.ndarray:
    x = np.asarray(wav, np.float64)
    if normalize:
        x = x / x.max()
    x = np.pad(x, (0, max(0, desired - len(x))))[:desired]
    n = 1 + (len(x) - frame_length) // frame_step
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame_length) / frame_length)
    frames = np.stack([x[i * frame_step:i * frame_step + frame_length] * win for i in range(n)])
    spec = np.abs(np.fft.rfft(frames, fft_length))
    mel = spec @ mel_matrix(n_mels, fft_length // 2 + 1)
    return np.log(mel + 1e-6)


def mfcc(wav: np.ndarray, n_mfcc: int = 10, **kw) -> np.ndarray:
    """(49, 10) float MFCCs of a 16 kHz int16 clip, as the MLPerf Tiny KWS model was trained on."""
    lm = log_mel(wav, **kw)
    nb = lm.shape[1]
    k = np.arange(n_mfcc)[:, None]
    b = np.arange(nb)[None]
    dct = np.sqrt(2.0 / nb) * np.cos(np.pi * k * (2 * b + 1) / (2 * nb))
    return lm @ dct.T


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)


def read_wav(path) -> np.ndarray:
    import wave
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1, path
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").copy()
