"""20x20 MFCCs of short utterances in numpy/scipy (no librosa), for AV-MNIST-offline.

Two variants, both returning float32 ``[20 coefficients, 20 frames]``:

- ``"mmjax"`` (default; docs/reference offline-data.md §2.3 and Appendix): resample to 8 kHz,
  trim silence below -35 dB of the loudest 20 ms block, peak-normalise, pre-emphasis 0.97, then 20
  Hamming windows of 25 ms (200 samples) *spread evenly over the utterance*, so every word fills
  all 20 frames whatever its duration (time normalisation); |rfft 256|^2 through a 40-band
  triangular mel filterbank (HTK mel scale, 20 Hz - 4 kHz), log, orthonormal DCT-II, keep 20.
- ``"smil"``: what SMIL's released ``utils/wav2mfcc.py`` computes with librosa 0.7 defaults: take
  every 3rd sample of the 8 kHz waveform (no anti-alias filter, as released), STFT with n_fft
  2048, hop 512, periodic Hann window, centred with reflect padding; power spectrogram; 128-band
  Slaney mel filterbank (area-normalised, 0 Hz - sr/2, sr taken as 8 kHz); ``power_to_db`` with
  ref 1, amin 1e-10, top_db 80; orthonormal DCT-II, keep 20; zero-pad (or truncate) to 20
  frames. A short word fills only a few frames; the rest are zeros. Not bit-checked against
  librosa (librosa is not a dependency); it follows librosa's formulas.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.fft
import scipy.signal

from mmjax.config import DataConfig, field_choices

TARGET_SR = 8000
N_COEFFS = 20
N_FRAMES = 20
VARIANTS = field_choices(DataConfig, "mfcc_variant")  # the config's Literal: "mmjax", "smil"


def hz_to_mel_htk(f):
    """HTK mel scale: ``2595 * log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz_htk(m):
    """Inverse of :func:`hz_to_mel_htk`."""
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def hz_to_mel_slaney(f):
    """Slaney (Auditory Toolbox) mel scale, librosa's default: linear below 1 kHz, log above."""
    f = np.asarray(f, np.float64)
    lin = f / (200.0 / 3.0)
    logstep = math.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) / logstep, lin)


def mel_to_hz_slaney(m):
    """Inverse of :func:`hz_to_mel_slaney`."""
    m = np.asarray(m, np.float64)
    logstep = math.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * (200.0 / 3.0))


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float, *,
                   scale: str = "htk", area_norm: bool = False) -> np.ndarray:
    """Triangular mel filterbank over the ``n_fft // 2 + 1`` rfft bins.

    The triangles are evaluated at the exact bin frequencies (as librosa does), so every band
    has at least one non-zero weight even where bands are narrower than a bin spacing.

    Args:
      sr: sample rate in Hz.
      n_fft: FFT length.
      n_mels: number of bands.
      fmin: lower edge of the first band in Hz.
      fmax: upper edge of the last band in Hz.
      scale: ``"htk"`` or ``"slaney"`` mel scale.
      area_norm: scale each triangle by ``2 / (f_hi - f_lo)`` (librosa's ``norm="slaney"``);
        otherwise each triangle peaks at 1.

    Returns:
      float64 ``[n_mels, n_fft // 2 + 1]``.
    """
    to_mel, to_hz = ((hz_to_mel_htk, mel_to_hz_htk) if scale == "htk"
                     else (hz_to_mel_slaney, mel_to_hz_slaney))
    freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges = to_hz(np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2))
    fdiff = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if area_norm:
        weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II as a matrix ``[n_out, n_in]`` (rows: the first ``n_out`` basis vectors).

    ``dct_matrix(n, n) @ x == scipy.fft.dct(x, type=2, norm="ortho")``; the full square matrix is
    orthogonal.
    """
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    m[0] /= math.sqrt(2.0)
    return m


@functools.lru_cache(maxsize=256)
def _poly_filter(up: int, down: int) -> np.ndarray:
    # scipy's default resample_poly filter, designed once per ratio: the design (a Kaiser window
    # per call) otherwise costs more than the filtering itself.
    max_rate = max(up, down)
    return scipy.signal.firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def resample_poly(wave: np.ndarray, up: int, down: int) -> np.ndarray:
    """``scipy.signal.resample_poly(wave, up, down)`` with its default filter cached per ratio."""
    g = math.gcd(int(up), int(down))
    up, down = int(up) // g, int(down) // g
    if up == down:
        return np.asarray(wave, np.float64)
    return scipy.signal.resample_poly(np.asarray(wave, np.float64), up, down,
                                      window=_poly_filter(up, down))


def resample(wave: np.ndarray, sr: int, target_sr: int = TARGET_SR) -> np.ndarray:
    """Polyphase resampling (scipy's ``resample_poly``, Kaiser filter), ``sr`` -> ``target_sr``."""
    return resample_poly(wave, int(target_sr), int(sr))


def trim_silence(wave: np.ndarray, sr: int = TARGET_SR, top_db: float = 35.0,
                 block_s: float = 0.02) -> np.ndarray:
    """Keeps the span from the first to the last 20 ms block within ``top_db`` of the loudest block.

    Returns the input unchanged when it is silent or shorter than one block.
    """
    block = max(1, int(round(block_s * sr)))
    nb = len(wave) // block
    if nb == 0:
        return wave
    energy = np.square(wave[: nb * block].reshape(nb, block)).sum(axis=1)
    peak = energy.max()
    if peak <= 0:
        return wave
    keep = np.flatnonzero(energy >= peak * 10.0 ** (-top_db / 10.0))
    return wave[keep[0] * block: (keep[-1] + 1) * block]


def mfcc_mmjax(wave: np.ndarray, sr: int) -> np.ndarray:
    """The default time-normalised 20x20 MFCC (see the module docstring for the recipe).

    Args:
      wave: mono waveform, any float/int dtype.
      sr: its sample rate in Hz.

    Returns:
      float32 ``[20 coefficients, 20 frames]``.
    """
    x = trim_silence(resample(wave, sr))
    peak = np.abs(x).max() if x.size else 0.0
    if peak > 0:
        x = x / peak
    x = np.append(x[:1], x[1:] - 0.97 * x[:-1])  # pre-emphasis
    win = 200  # 25 ms at 8 kHz
    if len(x) < win:
        x = np.pad(x, (0, win - len(x)))
    starts = np.round(np.linspace(0, len(x) - win, N_FRAMES)).astype(np.int64)
    frames = x[starts[:, None] + np.arange(win)[None, :]] * np.hamming(win)
    power = np.square(np.abs(np.fft.rfft(frames, 256, axis=1)))
    mel = power @ _htk_bank().T  # [frames, 40]
    ceps = np.log(mel + 1e-10) @ dct_matrix(N_COEFFS, mel.shape[1]).T  # [frames, 20]
    return ceps.T.astype(np.float32)


_HTK_BANK: np.ndarray | None = None


def _htk_bank() -> np.ndarray:
    global _HTK_BANK
    if _HTK_BANK is None:
        _HTK_BANK = mel_filterbank(TARGET_SR, 256, 40, 20.0, 4000.0, scale="htk")
    return _HTK_BANK


def mfcc_smil(wave: np.ndarray, sr: int, *, stride: int = 3) -> np.ndarray:
    """SMIL's librosa-default MFCC (see the module docstring), zero-padded to 20 frames.

    Args:
      wave: mono waveform.
      sr: its sample rate in Hz; it is first resampled to 8 kHz, like the FSDD recordings SMIL read.
      stride: keep every ``stride``-th sample afterwards (3 in SMIL's code, which still calls the
        result 8 kHz); 1 skips the decimation.

    Returns:
      float32 ``[20 coefficients, 20 frames]``.
    """
    x = resample(wave, sr)[::stride]
    n_fft, hop = 2048, 512
    if len(x) < 2:
        x = np.pad(x, (0, 2 - len(x)))
    x = np.pad(x, n_fft // 2, mode="reflect")  # center=True, librosa 0.7's reflect padding
    n_frames = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    hann = scipy.signal.get_window("hann", n_fft, fftbins=True)
    power = np.square(np.abs(np.fft.rfft(x[idx] * hann, axis=1)))  # [frames, 1025]
    bank = mel_filterbank(TARGET_SR, n_fft, 128, 0.0, TARGET_SR / 2, scale="slaney",
                          area_norm=True)
    db = 10.0 * np.log10(np.maximum(1e-10, power @ bank.T))
    db = np.maximum(db, db.max() - 80.0)
    ceps = scipy.fft.dct(db, type=2, norm="ortho", axis=1)[:, :N_COEFFS].T  # [20, frames]
    out = np.zeros((N_COEFFS, N_FRAMES), np.float64)
    t = min(N_FRAMES, ceps.shape[1])
    out[:, :t] = ceps[:, :t]
    return out.astype(np.float32)


def mfcc(wave: np.ndarray, sr: int, variant: str = "mmjax") -> np.ndarray:
    """20x20 MFCC of one utterance.

    Args:
      wave: mono waveform.
      sr: its sample rate in Hz.
      variant: ``"mmjax"`` (default, time-normalised) or ``"smil"`` (librosa-default-like).

    Returns:
      float32 ``[20 coefficients, 20 frames]``.

    Raises:
      ValueError: for an unknown variant.
    """
    if variant == "mmjax":
        return mfcc_mmjax(wave, sr)
    if variant == "smil":
        return mfcc_smil(wave, sr)
    raise ValueError(f"unknown MFCC variant {variant!r}; valid: {', '.join(VARIANTS)}")
