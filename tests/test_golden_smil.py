"""SMIL's ``released`` mode against numbers recorded from the released code (no torch needed).

``golden/smil_meta.npz`` comes from tools/golden/record_smil.py (``mengmenm/SMIL``; commit and
command in tools/golden/README.md): the released AV-MNIST networks on weights regenerated here from
the recorded seed (``tools.golden.params.seeded``), their eval-mode forward outputs, and one call
of the released ``meta_training``: SMIL eq. 4 (theta* = theta - alpha grad CE on the image-only
meta-train batch, reconstruction eq. 2 as released, regulariser eq. 3 with unit-variance noise),
the released outer loss (CE of the perturbed meta-val pass + 0.01 MSE of both feature maps
against the clean pass, plus the meta-train CE), its gradient and one Adam(1e-3, L2 1e-4) update.
The recording's noise and meta-val batch reach mmjax through ``smil.draw_noise`` and
``smil.memory_batch``; everything else runs as ``smil.make`` builds it.
"""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods import smil
from mmjax.methods.base import NNXModel
from tools.golden import layout
from tools.golden import params as golden_params

GOLDEN = Path(__file__).parent / "golden"
SPEC = DatasetSpec("golden", ("image", "audio"), ((28, 28, 1), (20, 20, 1)), "classification", 10)
# mmjax parameters off the meta-update's path (SMIL's unimodal heads; psi parts that the released
# switches do not use): zeros here, so that Adam's weight decay leaves them at zero.
UNUSED = ("head1", "head2", "recon_direct", "reg1_sigma", "reg2_sigma")
# psi = {phi_c, phi_r}: InferNetNew, the released ``encoder`` (its own optimiser, no inner step)
PSI = ("recon", "recon_direct", "reg1_mu", "reg1_sigma", "reg2_mu", "reg2_sigma")
READ = 1e3  # SGD rate that reads the gradient off a step: large, so float32 rounding of the
# weights (|w| < 0.5) stays far below the recorded gradients' resolution


def _chw_to_hwc(c: int, h: int, w: int) -> np.ndarray:
    """Index ``j`` of mmjax's (H, W, C) flattening holds PyTorch's (C, H, W) feature ``[j]``."""
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()


P_IMG, P_SND = _chw_to_hwc(10, 4, 4), _chw_to_hwc(20, 4, 4)  # LeNet-5 160, sound CNN 320
P_CAT = np.concatenate([P_IMG, 160 + P_SND])  # the 480-d concatenation


def _table():
    """``mmjax name -> (released name, PyTorch -> Flax layout)`` for every recorded tensor."""
    conv, dense = layout.conv_kernel, layout.dense_kernel
    same = np.asarray
    t = {"enc1/conv1/kernel": ("net.img_extractor.conv1.weight", conv),
         "enc1/conv1/bias": ("net.img_extractor.conv1.bias", same),
         "enc1/conv2/kernel": ("net.img_extractor.conv2.weight", conv),
         "enc1/conv2/bias": ("net.img_extractor.conv2.bias", same),
         "fc1/kernel": ("net.fc1.weight", lambda w: dense(w)[P_CAT]),
         "fc1/bias": ("net.fc1.bias", same),
         "fc2/kernel": ("net.fc2.weight", dense), "fc2/bias": ("net.fc2.bias", same),
         "recon/kernel": ("encoder.fc0.weight", lambda w: dense(w)[P_IMG]),
         "recon/bias": ("encoder.fc0.bias", same),
         "reg1_mu/kernel": ("encoder.fc1.weight", lambda w: dense(w)[P_IMG][:, P_CAT]),
         "reg1_mu/bias": ("encoder.fc1.bias", lambda b: np.asarray(b)[P_CAT]),
         "reg2_mu/kernel": ("encoder.fc2.weight", lambda w: dense(w)[P_CAT]),
         "reg2_mu/bias": ("encoder.fc2.bias", same)}
    for i in range(3):
        s = f"net.sound_extractor.conv{i + 1}"
        t[f"enc2/convs/{i}/kernel"], t[f"enc2/convs/{i}/bias"] = (s + ".weight", conv), (
            s + ".bias", same)
        b = f"net.sound_extractor.bn{i + 1}"
        t[f"enc2/norms/{i}/scale"], t[f"enc2/norms/{i}/bias"] = (b + ".weight", same), (
            b + ".bias", same)
    return t


TABLE = _table()
STATS = {f"enc2/norms/{i}/{ours}": f"net.sound_extractor.bn{i + 1}.{theirs}"
         for i in range(3) for ours, theirs in (("mean", "running_mean"), ("var", "running_var"))}


def _torch_order(name: str, value: np.ndarray, shape) -> np.ndarray:
    """An mmjax array back in the flat (C-order) index order of its released tensor, of PyTorch
    shape ``shape``."""
    index = TABLE[name][1](np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape))
    out = np.empty(int(np.prod(shape)), np.float64)
    out[index.ravel().astype(np.int64)] = np.asarray(value, np.float64).ravel()
    return out


@pytest.fixture(scope="module")
def golden():
    """The recording, the released-mode method and its state on the regenerated weights."""
    rec = dict(np.load(GOLDEN / "smil_meta.npz"))
    shapes = json.loads(str(rec["shapes"]))
    weights = golden_params.seeded(rec["names"], shapes, rec["lows"], rec["highs"],
                                   int(rec["seed"]))
    b = rec["mtr/label"].shape[0]
    config = smil.released(ExperimentConfig(
        method=smil.SmilConfig(phase1_steps=0, phase2_steps=0, memory_size=b),
        model=ModelConfig(encoders=("lenet5", "sound_cnn"), hidden=64, dropout=0.0),
        optim=OptimConfig(name="adam", lr=float(rec["lr"])),
        train=TrainConfig(steps=10, batch_size=b)))
    method = smil.make(config, SPEC)
    batch = {"inputs": {"image": jnp.asarray(layout.nchw_to_nhwc(rec["mtr/image"])),
                        "audio": jnp.zeros((b, 20, 20, 1))},
             "present": jnp.asarray(np.array([[True, False]] * b)),
             "label": jnp.asarray(rec["mtr/label"], jnp.int32)}

    def init(key, batch):  # params as zeros: XLA drops the random initialisers
        state = method.init(key, batch)
        return state.replace(params=jax.tree.map(jnp.zeros_like, state.params))

    state = jax.jit(init)(jax.random.key(0), batch)
    arrays = {n: f(weights[t]) for n, (t, f) in TABLE.items()}
    arrays.update({n: np.zeros(leaf.shape, np.float32)
                   for n, leaf in golden_params.named(state.params).items()
                   if n.split("/")[0] in UNUSED})
    state = state.replace(
        params=golden_params.load(state.params, arrays),
        model_state=golden_params.load(state.model_state,
                                       {n: weights[t] for n, t in STATS.items()}),
        extra={**state.extra, "priors": jnp.asarray(rec["sound_mean"][:, P_SND])})
    mem = smil.Memory(jnp.asarray(layout.nchw_to_nhwc(rec["mval/image"])), None,
                      jnp.asarray(layout.nchw_to_nhwc(rec["mval/sound"])), None,
                      jnp.asarray(rec["mval/label"], jnp.int32), jnp.ones((b,)))
    model = NNXModel(lambda rngs: smil.SmilNet(SPEC, config.model, config.method.num_priors,
                                               rngs=rngs))
    return rec, weights, config, method, state, batch, mem, model


def test_permutation_is_layouts_flatten_order():
    """The (C, H, W) -> (H, W, C) index used for the features is the one ``layout`` tests."""
    w = np.random.default_rng(0).normal(size=(7, 160))
    np.testing.assert_array_equal(layout.dense_kernel(w)[P_IMG],
                                  layout.dense_kernel_after_flatten(w, 10, 4, 4))


def test_released_forward_matches_the_recorded_outputs(golden):
    """Eval mode on the meta-val batch: LeNet-5 and sound-CNN features, the full-modality logits
    of the clean pass (real sound, no regulariser: mode 'two'), the released reconstruction
    x2_hat = sum_k w_k M_k / sum_k w_k with w = softplus(phi_c(f1)) (eq. 2 as released) and the
    image-only logits with the deterministic regulariser x + softplus(mu) (eq. 3, mode 'one')."""
    rec, _, config, method, state, _, mem, model = golden
    mc, priors = config.method, state.extra["priors"]

    @jax.jit
    def forward(params, model_state, x1, x2):
        net = model.bind(params, model_state)
        f1, f2 = net.enc1(x1, deterministic=True), net.enc2(x2, deterministic=True)
        ones = jnp.ones(x1.shape[:1])
        two = smil.forward(net, mc, x1, x2, ones, priors, None, regularize_on=False)[0]
        return f1, f2, two, smil.reconstruct(net, mc, f1, priors, None)[0]

    f1, f2, two, hat = forward(state.params, state.model_state, mem.x1, mem.x2)
    b = mem.x1.shape[0]
    image_only = jax.jit(method.predict)(state, {
        "inputs": {"image": mem.x1, "audio": jnp.zeros_like(mem.x2)},
        "present": jnp.asarray(np.array([[True, False]] * b)), "label": mem.y})
    for got, want in ((f1, rec["fwd/f_image"][:, P_IMG]), (f2, rec["fwd/f_sound"][:, P_SND]),
                      (two, rec["fwd/logits_two"]), (hat, rec["fwd/sound_hat"][:, P_SND]),
                      (image_only, rec["fwd/logits_one"])):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def _compiled(fn, *args):
    """``jax.jit(fn)`` compiled for ``args`` with LLVM's optimisation level at 0 (XLA's own graph
    passes run as usual): the second-order meta step, the bulk of this file's run time, compiles
    in 5.9 s of CPU instead of 10.8 s (measured on the 2-core CPU)."""
    return jax.jit(fn).lower(*args).compile({"xla_backend_optimization_level": 0})


def _ce(logits, label) -> float:
    """Softmax cross-entropy, mean over the batch, in float64 (numpy)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-logp[np.arange(len(label)), label].mean())


def _recorded_noise(rec, k: int) -> smil.Noise:
    """The inner pass's draws (r = mu + eps at both sites), in mmjax's feature order; omega is
    unused by the released reconstruction."""
    b = rec["noise/fc1"].shape[0]
    return smil.Noise(jnp.zeros((b, k)), jnp.asarray(rec["noise/fc1"][:, P_CAT]),
                      jnp.asarray(rec["noise/fc2"]))


def test_released_inner_step_and_outer_passes_match(golden):
    """Eq. 4 with the recorded noise: theta* = theta - alpha grad CE(f_theta(x1, x2_hat; z)) on
    the image-only batch (the gradient taken here with jax.grad of a numpy-free reference CE),
    then at theta* the perturbed pass (x2_hat, r = mu) and the clean pass (real x2, no
    regulariser) on the meta-val batch: logits, both feature maps and the four terms of
    KDLossAlignTwo. Tolerance 1e-5: these follow an updated weight."""
    rec, _, config, _, state, batch, mem, model = golden
    mc, priors = config.method, state.extra["priors"]
    noise = _recorded_noise(rec, mc.num_priors)
    x1, y = batch["inputs"]["image"], batch["label"]

    @jax.jit
    def inner_and_passes(params, model_state):
        def ce(p):
            logits = smil.forward(model.bind(p, model_state), mc, x1, None, None, priors,
                                  noise)[0]
            return -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1).mean()

        loss, g = jax.value_and_grad(ce)(params)
        star = jax.tree_util.tree_map_with_path(  # theta only: the released psi is not adapted
            lambda path, p, gi: p if path[0].key in PSI else p - float(rec["lr_inner"]) * gi,
            params, g)
        net = model.bind(star, model_state)
        noised = smil.forward(net, mc, mem.x1, None, None, priors, None)[:3]
        clean = smil.forward(net, mc, mem.x1, mem.x2, jnp.ones_like(mem.weight), priors, None,
                             regularize_on=False)[:3]
        return loss, star, noised, clean

    loss, star, noised, clean = inner_and_passes(state.params, state.model_state)
    np.testing.assert_allclose(loss, rec["loss/meta_train"], rtol=1e-5)
    named = golden_params.named(star)
    for ours, (theirs, f) in TABLE.items():
        if f"theta_star/{theirs}" in rec:
            np.testing.assert_allclose(named[ours], f(rec[f"theta_star/{theirs}"]), rtol=1e-5,
                                       atol=1e-7, err_msg=ours)
    for tag, (logits, h, a) in (("noised", noised), ("clean", clean)):
        np.testing.assert_allclose(logits, rec[f"star/logits_{tag}"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(h, rec[f"star/f_{tag}"][:, P_CAT], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a, rec[f"star/f1_{tag}"], rtol=1e-5, atol=1e-6)
    label = np.asarray(mem.y)
    mse = lambda u, v: float(np.mean((np.asarray(u, np.float64) - np.asarray(v)) ** 2))  # noqa
    np.testing.assert_allclose(_ce(noised[0], label), rec["loss/ce_noised"], rtol=1e-5)
    np.testing.assert_allclose(_ce(clean[0], label), rec["loss/ce_clean"], rtol=1e-5)
    np.testing.assert_allclose(mse(clean[1], noised[1]), rec["loss/mse_concat"], rtol=1e-5)
    np.testing.assert_allclose(mse(clean[2], noised[2]), rec["loss/mse_fc1"], rtol=1e-5)
    np.testing.assert_allclose(
        float(rec["loss/ce_noised"]) + 0.01 * float(rec["loss/mse_concat"])
        + 0.01 * float(rec["loss/mse_fc1"]), rec["loss/meta_val"], rtol=1e-6)


@pytest.mark.slow
def test_released_meta_update_reproduces_losses_gradient_and_weights(golden, monkeypatch):
    """One meta step of ``smil.make``'s phase 3 (released switches; eq. 4 inside, second order):
    L = CE(D^m; theta) + CE(f_theta*(x1, x2_hat)) + 0.01 MSE(concat) + 0.01 MSE(fc1) (the released
    outer loss in place of eq. 7); its gradient (global norm; per tensor: norm and the recorded
    entries, read off a plain SGD step of the same objective); then Adam(1e-3) with L2 weight
    decay 1e-4 (torch's Adam ``weight_decay``): each tensor's update norm and weights after."""
    rec, weights, config, method, state, batch, mem, _ = golden
    monkeypatch.setattr(smil, "draw_noise",
                        lambda key, n, k, dims: _recorded_noise(rec, k))
    monkeypatch.setattr(smil, "memory_batch", lambda extra, key, size, dtype=None: mem)
    # the raw gradient, read off a plain SGD step of rate READ: (before - after) / READ
    sgd = smil.make(dataclasses.replace(
        config, optim=OptimConfig(name="sgd", lr=READ, momentum=0.0),
        method=dataclasses.replace(config.method, meta_optimizer="config")), SPEC)
    sgd_state = state.replace(opt_state=jax.jit(sgd.init)(jax.random.key(0), batch).opt_state)
    new, metrics = _compiled(method.phases[2].step, state, batch)(state, batch)
    read, _ = _compiled(sgd.phases[2].step, sgd_state, batch)(sgd_state, batch)
    np.testing.assert_allclose(metrics["loss_inner"], rec["loss/meta_train"], rtol=1e-5)
    np.testing.assert_allclose(metrics["loss_outer"], rec["loss/ce_noised"], rtol=1e-5)
    np.testing.assert_allclose(metrics["loss"], float(rec["loss/meta_train"])
                               + float(rec["loss/meta_val"]), rtol=1e-5)
    used = [str(n) for n in rec["used"]]
    assert sorted(used) == sorted(t for t, _ in TABLE.values())
    grad_norm = np.sqrt(sum(float(rec[f"grad_norm/{n}"]) ** 2 for n in used))
    np.testing.assert_allclose(metrics["grad_norm"], grad_norm, rtol=1e-5)
    before, after = golden_params.named(state.params), golden_params.named(new.params)
    for ours, (theirs, _) in TABLE.items():
        shape = weights[theirs].shape
        step = _torch_order(ours, np.asarray(after[ours], np.float64)
                            - np.asarray(before[ours], np.float64), shape)
        np.testing.assert_allclose(np.linalg.norm(step), rec[f"update_norm/{theirs}"],
                                   rtol=1e-5, err_msg=ours)
        idx = rec[f"idx/{theirs}"]
        grad = _torch_order(ours, (np.asarray(before[ours], np.float64)
                                   - np.asarray(golden_params.named(read.params)[ours])) / READ,
                            shape)
        np.testing.assert_allclose(np.linalg.norm(grad), rec[f"grad_norm/{theirs}"], rtol=1e-5,
                                   err_msg=ours)
        np.testing.assert_allclose(grad[idx], rec[f"grad/{theirs}"], rtol=1e-5,
                                   atol=1e-5 * np.abs(rec[f"grad/{theirs}"]).max(), err_msg=ours)
        want = weights[theirs].ravel()[idx] + rec[f"update/{theirs}"]
        np.testing.assert_allclose(_torch_order(ours, after[ours], shape)[idx], want,
                                   rtol=1e-5, atol=1e-7, err_msg=ours)
    for name, leaf in after.items():  # off the path: no gradient, no decay from zero
        if name.split("/")[0] in UNUSED:
            assert not np.asarray(leaf).any(), name
