"""The mutation generator of tools/mutate.py (issue 21): valid, single-place, stable mutants.

The generator is tested on a small module written here, which has one line for each kind of
edit and the lines that must not be touched (docstrings, config defaults, imports, argument
checks), and on TMC's real module.
"""

import ast
import io
import os
import pathlib
import tokenize

import pytest

from tools import mutate

SAMPLE = '''"""A module docstring: 1 + 2 * x."""

import jax
import jax.numpy as jnp

from mmjax.errors import UserError

SCALE = 0.5


class Config:
    """Defaults are configuration, not equations."""

    beta: float = 0.7
    first_order: bool = False


def objective(params, theta_star, mask, x, target, first_order):
    """Docstring with a - b and axis=0."""
    if first_order < 0:
        raise UserError(f"first_order must be >= 0, got {first_order - 1}")
    # a comment: x * mask
    err = (x - target) ** 2
    err = err * mask
    total = jnp.sum(err, axis=0) / 2
    grad = jax.lax.stop_gradient(total)
    if first_order:
        grad = grad + 1
    out = jnp.where(mask > 0, params, theta_star)
    keep = params is not None and True
    return total - grad, jnp.mean(out, -1), jnp.dot(params, target), keep
'''


def _comments(text):
    return [t.string for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type == tokenize.COMMENT]


def _docstrings(text):
    tree = ast.parse(text)
    return [ast.get_docstring(n) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))]


@pytest.fixture(scope="module")
def sample():
    return mutate.generate("sample", SAMPLE)


@pytest.fixture(scope="module")
def tmc_source():
    return (mutate.METHODS / "tmc.py").read_text()


@pytest.fixture(scope="module")
def tmc(tmc_source):
    return mutate.generate("tmc", tmc_source)


def test_every_kind_of_edit_is_made_on_the_lines_of_equations(sample):
    got = {(m.original, m.kind, m.mutated) for m in sample}
    for expected in [
        ("err = (x - target) ** 2", "binop:Sub->Add", "err = (x + target) ** 2"),
        ("err = (x - target) ** 2", "sg:add-right",
         "err = (x - jax.lax.stop_gradient(target)) ** 2"),
        ("err = (x - target) ** 2", "binop:Pow->Mult", "err = (x - target) * 2"),
        ("err = err * mask", "mask:drop", "err = (err)"),
        ("total = jnp.sum(err, axis=0) / 2", "call:sum->mean",
         "total = jnp.mean(err, axis=0) / 2"),
        ("total = jnp.sum(err, axis=0) / 2", "axis:0->-1", "total = jnp.sum(err, axis=-1) / 2"),
        ("total = jnp.sum(err, axis=0) / 2", "num:2->3", "total = jnp.sum(err, axis=0) / 3"),
        ("grad = jax.lax.stop_gradient(total)", "sg:drop", "grad = (total)"),
        ("if first_order:", "cond:negate", "if not (first_order):"),
        ("grad = grad + 1", "num:1->0", "grad = grad + 0"),
        ("out = jnp.where(mask > 0, params, theta_star)", "where:then", "out = (params)"),
        ("out = jnp.where(mask > 0, params, theta_star)", "compare:Gt->LtE",
         "out = jnp.where(mask <= 0, params, theta_star)"),
        ("out = jnp.where(mask > 0, params, theta_star)", "swap:params->theta_star",
         "out = jnp.where(mask > 0, theta_star, theta_star)"),
        ("keep = params is not None and True", "compare:IsNot->Is",
         "keep = params is None and True"),
        ("keep = params is not None and True", "bool:True->False",
         "keep = params is not None and False"),
        ("return total - grad, jnp.mean(out, -1), jnp.dot(params, target), keep", "args:swap",
         "return total - grad, jnp.mean(out, -1), jnp.dot(target, params), keep"),
        ("return total - grad, jnp.mean(out, -1), jnp.dot(params, target), keep", "num:-1->0",
         "return total - grad, jnp.mean(out, 0), jnp.dot(params, target), keep"),
    ]:
        assert expected in got, expected


def test_docstrings_comments_defaults_imports_and_argument_checks_are_not_mutated(sample):
    skipped = ("import", "SCALE", "beta: float", "first_order: bool", "first_order < 0", "raise")
    untouched = [i + 1 for i, line in enumerate(SAMPLE.splitlines())
                 if any(word in line for word in skipped)]
    assert len(untouched) == 8 and not [m for m in sample if m.line in untouched]
    for m in sample:
        assert _docstrings(m.source) == _docstrings(SAMPLE), m.id
        assert _comments(m.source) == _comments(SAMPLE), m.id


@pytest.mark.parametrize("which", ["sample", "tmc"])
def test_mutants_are_valid_python_differing_from_the_original_in_one_statement(
        which, sample, tmc_source, tmc):
    text, mutants = (SAMPLE, sample) if which == "sample" else (tmc_source, tmc)
    assert len(mutants) > 20
    original = ast.dump(ast.parse(text))
    statements = [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.stmt)
                  and not isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.If, ast.For))]
    offsets = [0]
    for line in text.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    for m in mutants:
        assert ast.dump(ast.parse(m.source)) != original, m.id
        # The changed characters: what is left between the common prefix and suffix.
        p = len(os.path.commonprefix([text, m.source]))
        s = len(os.path.commonprefix([text[p:][::-1], m.source[p:][::-1]]))
        lo, hi = p, len(text) - s
        # Inside a single statement (or an if/for header, which is one line).
        inside = [st for st in statements
                  if offsets[st.lineno - 1] + st.col_offset <= lo
                  and hi <= offsets[st.end_lineno - 1] + st.end_col_offset]
        one_line = text[lo:hi].count("\n") == 0 and text.count("\n", 0, lo) + 1 == m.line
        assert inside or one_line, (m.id, text[lo:hi])


def test_ids_are_unique_and_stable_under_edits_elsewhere(tmc_source, tmc):
    before = tmc
    ids = [m.id for m in before]
    assert len(set(ids)) == len(ids)
    # A new function at the top and a blank line in the middle move every line number.
    lines = tmc_source.splitlines(keepends=True)
    first_def = next(i for i, x in enumerate(lines) if x.startswith("def "))
    edited = "".join(lines[:first_def] + ["def extra(a):\n", "    return a * 3\n", "\n\n"]
                     + lines[first_def:first_def + 5] + ["\n"] + lines[first_def + 5:])
    after = {m.id: m for m in mutate.generate("tmc", edited)}
    for m in before:
        assert m.id in after and after[m.id].mutated == m.mutated, m.id
        assert after[m.id].line != m.line


def test_equivalence_file_reads_ids_and_reasons(tmp_path):
    path = tmp_path / "eq.txt"
    path.write_text("# a comment\n\ntmc:0123abcd:num:1->0:0  both branches give 1\n")
    assert mutate.load_equivalent(path) == {"tmc:0123abcd:num:1->0:0": "both branches give 1"}


def test_every_judged_equivalent_mutant_still_exists():
    """A stale id (its line was edited) must be judged again, not silently dropped."""
    judged = mutate.load_equivalent()
    modules = {mid.split(":", 1)[0] for mid in judged}
    current = {m.id for mod in modules
               for m in mutate.generate(mod, (mutate.METHODS / f"{mod}.py").read_text())}
    assert not set(judged) - current


def test_module_test_map_names_existing_files():
    """Every test file (or ``file::test`` node id) a module's mutants run exists."""
    for module in mutate.DEFAULT_MODULES:
        files = mutate.test_files(module)
        assert files, module
        for entry in files:
            path, _, name = entry.partition("::")
            assert pathlib.Path(mutate.ROOT, path).exists(), entry
            assert not name or f"def {name}(" in pathlib.Path(mutate.ROOT, path).read_text(), entry
