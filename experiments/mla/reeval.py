"""Re-evaluates a trained MLA workdir with other test-time switches (Table 3's dynamic-fusion axis).

Dynamic fusion (eq. 5-7) and the entropy axis act only in ``predict``, so the "no DF" cells of
Table 3 are the same trained parameters evaluated with ``method.fusion=average``; no retraining.

  python experiments/mla/reeval.py --workdir runs/mla/mfeat_mla --tag avg --set method.fusion=average

Writes ``eval_<tag>.json`` / ``.md`` (the ``subsets`` protocol) into the workdir.
"""

import argparse
import pathlib
import sys

from mmjax import cli, evaluate, train
from mmjax import config as config_lib


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv)
    if any(not a.startswith(("method.", "eval.")) for a in args.set):
        sys.exit("reeval.py only accepts method.* and eval.* overrides")
    workdir = pathlib.Path(args.workdir)
    config = config_lib.override(cli._load_workdir_config(workdir), args.set)
    s = train.setup(config)
    states = train.restore_states(s, workdir)
    result = evaluate.subsets(s.method, states, s.dataset, config, s.mesh)
    evaluate.write(workdir, f"eval_{args.tag}", result)
    print(evaluate.to_markdown(result, ("accuracy",)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
