"""Prints the tables of experiments/raml/README.md from the runs' json files.

Usage: python experiments/raml/make_table.py RUNS_DIR

Cells are test accuracy in %, mean ± std over the 3 seed replicas (sample std). "Average" is the
mean over every non-empty modality subset (Table I protocol). A run that has not finished is left
out.
"""

import json
import pathlib
import sys

DATASETS = {"avmnist": "AV-MNIST-offline", "mfeat": "UCI mfeat (six views)"}
TABLE1 = ("concat", "augmentation", "late", "multi_task", "tmc", "etmc", "mvae", "raml")


def _load(path: pathlib.Path):
    return json.loads(path.read_text()) if path.exists() else None


def _pct(mean, std):
    return f"{100 * mean:.2f} ± {100 * std:.2f}"


def _sub(result, name):
    return _pct(result["subsets"][name]["accuracy"], result["std"]["subsets"][name]["accuracy"])


def _avg(result):
    return _pct(result["average"]["accuracy"], result["std"]["average"]["accuracy"])


def subset_table(group: pathlib.Path, rows: list[tuple[str, str]]) -> str:
    """Rows of (label, run name) with every test subset (M <= 2) or a summary (M > 2)."""
    results = [(label, _load(group / run / "eval.json")) for label, run in rows]
    results = [(label, r) for label, r in results if r is not None]
    if not results:
        return "(no runs yet)"
    names = list(results[0][1]["subsets"])
    if len(names) <= 3:
        cols = names[1:] + names[:1]  # singles first, then the full set, as the paper
        out = ["| method | " + " | ".join(f"{{{c}}}" for c in cols) + " | Average |",
               "|---|" + "---|" * (len(cols) + 1)]
        for label, r in results:
            out.append(f"| {label} | " + " | ".join(_sub(r, c) for c in cols) + f" | {_avg(r)} |")
        return "\n".join(out)
    singles = [n for n in names if "+" not in n]
    out = ["| method | all views | " + " | ".join(singles) + " | Average (63 subsets) |",
           "|---|" + "---|" * (len(singles) + 2)]
    for label, r in results:
        out.append(f"| {label} | {_sub(r, names[0])} | "
                   + " | ".join(_sub(r, c) for c in singles) + f" | {_avg(r)} |")
    return "\n".join(out)


def table2(group: pathlib.Path) -> str:
    rows = []
    for m in ("concat", "augmentation", "raml"):
        r = _load(group / m / "eval_corruption.json")
        if r is None:
            continue
        keys = [k for k in r["subsets"] if k != "clean"]
        mods = list(dict.fromkeys(k.split(" ")[0] for k in keys))
        noise = [k for k in keys if k.startswith(f"{mods[0]} noise")]
        mask = [k for k in keys if k.startswith(f"{mods[1]} mask")]
        second = mods[1]
        if not rows:
            rows += ["| method | clean | " + " | ".join(k.split(" ", 1)[1] + f" ({mods[0]})"
                                                      for k in noise)
                     + " | " + " | ".join(k.split(" ", 1)[1] + f" ({second})" for k in mask)
                     + " |", "|---|" + "---|" * (1 + len(noise) + len(mask))]
        rows.append(f"| {m} | {_sub(r, 'clean')} | " + " | ".join(_sub(r, k) for k in noise)
                    + " | " + " | ".join(_sub(r, k) for k in mask) + " |")
    return "\n".join(rows) or "(no runs yet)"


def table3(group: pathlib.Path) -> str:
    rows = []
    for m in ("concat", "augmentation", "raml"):
        r = _load(group / m / "corrupt_both.json")
        if r is None:
            continue
        if not rows:
            rows += ["| method | " + " | ".join(f"σ={s}" for s in r["table3_noise"])
                     + " | " + " | ".join(f"p={p}" for p in r["table3_mask"]) + " |",
                     "|---|" + "---|" * (len(r["table3_noise"]) + len(r["table3_mask"])),
                     f"| | {r['noised']} noise σ, {r['masked']} masked p = 0.1 |"
                     + " |" * (len(r["table3_noise"]) - 1)
                     + f" {r['masked']} masked p, {r['noised']} noise σ = 0.18 |"
                     + " |" * (len(r["table3_mask"]) - 1)]
        cells = [_pct(v["mean"], v["std"]) for v in r["table3_noise"].values()]
        cells += [_pct(v["mean"], v["std"]) for v in r["table3_mask"].values()]
        rows.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(rows) or "(no runs yet)"


def weights_table(group: pathlib.Path) -> str:
    r = _load(group / "raml" / "corrupt_both.json")
    if r is None or "weights" not in r:
        return "(no runs yet)"
    w, mods = r["weights"], r["weights"]["modalities"]
    out = [f"| noise σ on {r['noised']} | " + " | ".join(w["noise_on_first"]) + " |",
           "|---|" + "---|" * len(w["noise_on_first"])]
    for c, m in enumerate(mods[:2]):
        out.append(f"| mean weight of {m} | "
                   + " | ".join(f"{v[c]:.4f}" for v in w["noise_on_first"].values()) + " |")
    out += ["", f"| masking p on {r['masked']} | " + " | ".join(w["mask_on_second"]) + " |",
            "|---|" + "---|" * len(w["mask_on_second"])]
    for c, m in enumerate(mods[:2]):
        out.append(f"| mean weight of {m} | "
                   + " | ".join(f"{v[c]:.4f}" for v in w["mask_on_second"].values()) + " |")
    return "\n".join(out)


def sweep(group: pathlib.Path) -> str:
    out = ["| λ1 (λ2 = 0.01) | Average | | λ2 (λ1 = 1) | Average |", "|---|---|---|---|---|"]
    l1 = [("0.2", "lambda1_0.2"), ("1.0", "raml"), ("1.4", "lambda1_1.4")]
    l2 = [("0.002", "lambda2_0.002"), ("0.01", "raml"), ("0.016", "lambda2_0.016")]
    for (a, ra), (b, rb) in zip(l1, l2):
        x, y = _load(group / ra / "eval.json"), _load(group / rb / "eval.json")
        out.append(f"| {a} | {_avg(x) if x else '—'} | | {b} | {_avg(y) if y else '—'} |")
    return "\n".join(out)


def main(runs: pathlib.Path) -> None:
    parts = []
    for d, title in DATASETS.items():
        g = runs / d
        parts += [f"## {title}", "", "### Table I protocol (every test subset)", "",
                  subset_table(g, [(m, m) for m in TABLE1]), "",
                  "### Table V: weighting (ablation length, see README)", "",
                  subset_table(g / "abl", [("identical", "w_identical"), ("fixed element-wise",
                                                                   "w_fixed"),
                                   ("adaptive (RAML)", "raml")]), "",
                  "### Table VI: loss terms (ablation length)", "",
                  subset_table(g / "abl", [("L^M", "l_m"), ("L^M + L^D", "l_md"),
                                           ("L^M + L^U", "l_mu"),
                                   ("L^M + L^U + L^D (RAML)", "raml")]), "",
                  "### Figure 4 left: shared vs separate predictors (ablation length)", "",
                  subset_table(g / "abl", [("shared (RAML)", "raml"),
                                           ("separate", "separate")]), "",
                  "### Table II protocol: one modality corrupted", "", table2(g), "",
                  "### Table III protocol: both modalities corrupted", "", table3(g), "",
                  "### Figure 5: mean fusion weights under corruption (3 seeds, 512 test "
                  "samples, all elements)", "", weights_table(g), ""]
        if d == "mfeat":
            parts += ["### Figure 4 right: λ1 / λ2 sweep (Average over the 63 subsets)", "",
                      sweep(g / "abl"), ""]
    print("\n".join(parts))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
