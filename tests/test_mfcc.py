"""MFCC front end (mmjax/data/mfcc.py): hand-checkable properties of each stage and the output."""

import numpy as np
import pytest
import scipy.fft

from mmjax.data import mfcc

SR = 8000


def tone(freq, seconds=0.5, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return np.sin(2 * np.pi * freq * t)


def test_mel_scales_known_points_and_inverses():
    assert mfcc.hz_to_mel_htk(700.0) == pytest.approx(2595 * np.log10(2))
    assert mfcc.hz_to_mel_slaney(1000.0) == pytest.approx(15.0)
    assert mfcc.hz_to_mel_slaney(200.0) == pytest.approx(3.0)  # linear part: 200 / (200 / 3)
    f = np.array([0.0, 20.0, 440.0, 999.0, 1000.0, 3999.0])
    np.testing.assert_allclose(mfcc.mel_to_hz_htk(mfcc.hz_to_mel_htk(f)), f, atol=1e-9)
    np.testing.assert_allclose(mfcc.mel_to_hz_slaney(mfcc.hz_to_mel_slaney(f)), f, atol=1e-9)


def test_mel_filterbank_shape_support_and_order():
    fb = mfcc.mel_filterbank(SR, 256, 40, 20.0, 4000.0)
    freqs = np.linspace(0, SR / 2, 129)
    assert fb.shape == (40, 129)
    assert (fb >= 0).all() and fb.max() <= 1.0 + 1e-12
    assert (fb.sum(axis=1) > 0).all(), "every band must cover at least one FFT bin"
    assert (fb[:, freqs < 20.0] == 0).all()  # nothing below fmin
    centres = freqs[fb.argmax(axis=1)]
    assert (np.diff(centres) >= 0).all(), "band peaks must rise with the band index"
    # Band edges are equally spaced in mel: widths (in Hz) grow with frequency.
    widths = (fb > 0).sum(axis=1)
    assert widths[-1] > widths[0]


def test_slaney_filterbank_is_area_normalised():
    fb = mfcc.mel_filterbank(SR, 2048, 128, 0.0, SR / 2, scale="slaney", area_norm=True)
    edges = mfcc.mel_to_hz_slaney(np.linspace(0, mfcc.hz_to_mel_slaney(SR / 2), 130))
    # A triangle of height 2/(f_hi - f_lo) over [f_lo, f_hi] has unit area; check in the middle
    # of the range where the bins resolve the triangles well.
    df = SR / 2048
    area = fb.sum(axis=1) * df
    np.testing.assert_allclose(area[40:120], 1.0, rtol=0.05)
    assert edges.shape == (130,)


def test_dct_matrix_is_orthonormal_and_matches_scipy():
    d = mfcc.dct_matrix(40, 40)
    np.testing.assert_allclose(d @ d.T, np.eye(40), atol=1e-12)
    x = np.random.default_rng(0).standard_normal(40)
    np.testing.assert_allclose(d @ x, scipy.fft.dct(x, type=2, norm="ortho"), atol=1e-12)
    np.testing.assert_allclose(mfcc.dct_matrix(20, 40), d[:20])


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0])
def test_pure_tone_peaks_in_the_right_mel_band(freq):
    fb = mfcc.mel_filterbank(SR, 256, 40, 20.0, 4000.0)
    frame = tone(freq)[:200] * np.hamming(200)
    bands = fb @ np.abs(np.fft.rfft(frame, 256)) ** 2
    centres = mfcc.mel_to_hz_htk(np.linspace(mfcc.hz_to_mel_htk(20), mfcc.hz_to_mel_htk(4000),
                                             42))[1:-1]
    assert abs(int(bands.argmax()) - int(np.abs(centres - freq).argmin())) <= 1


def test_first_cepstral_coefficient_tracks_spectral_tilt():
    # DCT basis 1 weights low bands positively: energy low in frequency -> c1 > 0, high -> c1 < 0.
    low = mfcc.mfcc(tone(300.0), SR)
    high = mfcc.mfcc(tone(3500.0), SR)
    assert low[1].mean() > 0 > high[1].mean()


def test_resample_and_trim():
    x = tone(440.0, 1.0, 22050)
    assert len(mfcc.resample(x, 22050)) == 8000
    padded = np.concatenate([np.zeros(4000), tone(440.0, 0.3), np.zeros(4000)])
    trimmed = mfcc.trim_silence(padded)
    assert 2400 <= len(trimmed) <= 2400 + 2 * 160  # the tone plus at most a block either side
    assert mfcc.trim_silence(np.zeros(1000)).shape == (1000,)


@pytest.mark.parametrize("variant", mfcc.VARIANTS)
@pytest.mark.parametrize("wave", [
    tone(440.0, 0.4, 22050), np.zeros(5000), np.ones(10),
    (tone(200.0, 2.0, 22050) * 3000).astype(np.int16),
], ids=["tone", "silence", "ten-samples", "long-int16"])
def test_output_shape_dtype_finite(variant, wave):
    out = mfcc.mfcc(wave, 22050, variant)
    assert out.shape == (20, 20) and out.dtype == np.float32
    assert np.isfinite(out).all()


def test_mmjax_variant_is_time_normalised():
    # A chirp and the same chirp twice as slow differ only in duration: the evenly spread frames
    # see the same spectra in the same order.
    def chirp(seconds):
        t = np.arange(int(seconds * SR)) / SR
        return np.sin(2 * np.pi * (400 * t + 2000 * t ** 2 / (2 * seconds)))

    a, b = mfcc.mfcc(chirp(0.3), SR), mfcc.mfcc(chirp(0.6), SR)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95


def test_smil_variant_zero_pads_short_words():
    out = mfcc.mfcc(tone(440.0, 0.5, 22050), 22050, "smil")
    # 0.5 s -> 4000 samples at 8 kHz -> 1334 after SMIL's [::3] -> 1 + 1334 // 512 = 3 frames.
    assert np.abs(out[:, :3]).sum() > 0
    assert (out[:, 3:] == 0).all()


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown MFCC variant"):
        mfcc.mfcc(np.zeros(100), SR, "librosa")
