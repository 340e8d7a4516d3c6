"""Mutation testing of the method modules (issue 21): do the tests see a one-token bug?

For a module ``mmjax/methods/<m>.py`` the generator walks the bodies of its functions (the lines
that implement equations) and makes one single-place edit per mutant, chosen from the ``ast``:

  binop      ``+ <-> -``, ``* <-> /``, ``** -> *``, ``& <-> |``
  unary      ``-x -> x``, ``not x -> x``, ``~x -> x``
  compare    ``< -> >=``, ``<= -> >``, ``== <-> !=``, ``is <-> is not``, ``in <-> not in``
  cond       ``if c`` / ``while c`` / ``a if c else b`` -> ``not (c)``
  num        ``0 -> 1``, ``1 -> 0``, ``-1 -> 0``, ``0.5 -> 1.0``, other ``x -> x + 1``;
             ``axis=0 -> axis=-1``
  bool       ``True <-> False``
  call       ``sum <-> mean``, ``max <-> min``, ``maximum <-> minimum``, ``argmax <-> argmin``,
             ``any <-> all`` (as the called attribute: ``jnp.sum``, ``x.sum``)
  mask       ``a * mask -> a`` (an operand naming a mask), ``weighted_mean(x, mask) -> mean(x)``,
             ``f(x, mask) -> x``
  where      ``where(c, a, b) -> a`` and ``-> b``
  sg         ``stop_gradient(x) -> x``; ``stop_gradient`` added around an operand of a squared or
             absolute difference and around the first two arguments of a loss-like call
             (``*loss*``, ``mse``, ``kl``, ...; not labels, masks, weights) -- the "target
             detached" bug
  swap       a name for its pair in the same function (``theta`` / ``theta_star``, ``params`` /
             ``adapted``, ``x`` / ``x_hat``, ...), both ways
  args       the two positional arguments of a two-argument call exchanged

Skipped: docstrings, comments, imports, module-level and class-level statements (configs'
defaults, constants), ``raise`` / ``assert`` and ``if`` blocks that only raise (argument checks),
strings and f-strings, a network's ``__init__`` (layer widths and counts), the literal settings
of ``dataclasses.replace(...)`` / ``*Config(...)`` calls (the released presets), and the
arguments of random-stream calls (``fold_in``, ``split``; ``jax.random.*`` are not reordered).
Each edit replaces the source text of one node (positions from the ``ast``), so the rest of the
file is byte-identical and every mutant is parsed before use.

A mutant's id is ``<module>:<hash of its stripped line>:<kind>:<n>`` (``n`` counts equal line
text and kind), stable under edits elsewhere in the file. Each mutant is written into a scratch
copy of the package (``/tmp/mutants/<m>/<slot>/mmjax``, copied once per worker slot, one file
patched per mutant) and the module's tests run there in a subprocess (``pytest -x -q``) with a
per-mutant timeout. Results go to ``<out>/<m>.jsonl``; the summary subtracts the mutants listed
in ``tools/mutation_equivalent.txt`` (judged equivalent by a person, with the reason).

    python tools/mutate.py --modules tmc redcore_projection --jobs 1 # run
    python tools/mutate.py --modules tmc --list                      # print the mutants only
    python tools/mutate.py --modules tmc --report                    # summary of the last run
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import signal
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
METHODS = ROOT / "mmjax" / "methods"
EQUIVALENT = ROOT / "tools" / "mutation_equivalent.txt"
SCRATCH = pathlib.Path("/tmp/mutants")

# The ten target modules, and MD (RAML's baseline, added after the issue).
DEFAULT_MODULES = ("smil", "redcore", "redcore_projection", "mla", "raml", "ume_mma", "mmin",
                   "qmf", "ogm_ge", "tmc", "md")
# module -> the test files (or ``file::test`` node ids) that exercise it; those whose file exists
# are used. A module not listed gets tests/test_<m>.py. tests/test_objective_<m>.py is always
# added first and tests/test_golden_<m>.py (the released switches against the authors' recorded
# numbers) last, when they exist.
# RedCore's and RAML's networks on sequence inputs (lengths, RAML's empty-sequence zero row):
_SEQUENCE_LENGTHS = "test_sequence_encoders.py::test_redcore_and_raml_encoders_receive_the_lengths"
MODULE_TESTS = {
    "smil": ("test_smil_parts.py", "test_smil_phases.py", "test_smil.py", "test_smil_papers.py"),
    "smil_priors": ("test_smil.py",),
    "redcore": ("test_redcore.py", _SEQUENCE_LENGTHS),
    "redcore_projection": ("test_objective_redcore.py", "test_redcore.py",
                           "test_golden_redcore.py"),
    "raml": ("test_raml.py", _SEQUENCE_LENGTHS),
}

_REDUCTION_SWAPS = {"sum": "mean", "mean": "sum", "max": "min", "min": "max",
                    "maximum": "minimum", "minimum": "maximum", "argmax": "argmin",
                    "argmin": "argmax", "any": "all", "all": "any", "nansum": "nanmean",
                    "nanmean": "nansum"}
_BINOP_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
                ast.Pow: ast.Mult, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd}
_CMP_SWAPS = {ast.Lt: ast.GtE, ast.LtE: ast.Gt, ast.Gt: ast.LtE, ast.GtE: ast.Lt,
              ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
              ast.In: ast.NotIn, ast.NotIn: ast.In}
_OP_TEXT = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**",
            ast.BitAnd: "&", ast.BitOr: "|", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
            ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not",
            ast.In: "in", ast.NotIn: "not in"}
_MASK_NAME = re.compile(r"mask|present|valid|avail|keep|observed", re.IGNORECASE)
_LOSS_CALL = re.compile(r"loss|mse|^kl|_kl|divergence|entropy|distance|l2|l1", re.IGNORECASE)
# Name pairs a module may mix up (the theta vs theta* kind): b is a's counterpart.
_PAIR_FORMS = ("{}_star", "{}_hat", "{}_tilde", "{}_new", "{}_old", "{}_prev", "{}_adapted",
               "{}_inner", "{}_outer", "new_{}", "old_{}", "prev_{}", "inner_{}", "adapted_{}")
_EXPLICIT_PAIRS = (("params", "theta_star"), ("params", "adapted"), ("params", "fast"),
                   ("theta", "theta_star"), ("state", "new_state"), ("net", "net_star"))
# Two-argument calls whose order is not a bug of the method (builtins, array construction).
_NO_ARG_SWAP = {"isinstance", "getattr", "hasattr", "range", "zip", "enumerate", "len", "print",
                "map", "filter", "sorted", "dict", "setdefault", "get", "astype", "reshape",
                "split", "fold_in", "asarray", "array", "full", "full_like", "zeros", "ones",
                "one_hot", "replace", "update", "pop", "format", "join", "tree_map",
                "maximum", "minimum", "add", "multiply", "logaddexp", "broadcast_to", "items",
                "value_and_grad", "grad", "partial", "stack", "concatenate", "arange", "ones_like",
                "zeros_like"}
# Arguments a stop_gradient cannot change (labels, batches, keys, masks, schedules).
_NOT_DIFFERENTIABLE = re.compile(
    r"label|(^|\W)(y|keys?|rngs?|step|lam|mc|config)($|\W)|batch|weight|mask|present")
_RANDOM_STREAM = {"fold_in", "split", "key", "PRNGKey"}
_NO_SG_FUNCS = re.compile(r"^(predict|evaluate|eval_|_eval)")


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One single-place edit of a module: its stable id, where, what, and the whole new source."""

    id: str
    module: str
    line: int
    kind: str
    original: str
    mutated: str
    source: str


# ----------------------------------------------------------------------------------------------
# Generation.
# ----------------------------------------------------------------------------------------------


class _Source:
    """The module's text as bytes (``ast`` column offsets are UTF-8 byte offsets)."""

    def __init__(self, text: str):
        self.data = text.encode()
        self.starts = [0]  # byte offset of each line's start
        for line in self.data.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))

    def span(self, node) -> tuple[int, int]:
        """Byte offsets ``[start, end)`` of ``node``'s text."""
        return (self.starts[node.lineno - 1] + node.col_offset,
                self.starts[node.end_lineno - 1] + node.end_col_offset)

    def segment(self, start: int, end: int) -> str:
        return self.data[start:end].decode()

    def seg(self, node) -> str:
        return self.segment(*self.span(node))

    def replace(self, start: int, end: int, new: str) -> str:
        return (self.data[:start] + new.encode() + self.data[end:]).decode()


def _op_in_gap(src: _Source, start: int, end: int, op: str) -> tuple[int, int] | None:
    """Byte span of operator ``op`` in the text between two operands (parens, comments, spaces)."""
    gap = src.segment(start, end)
    code = re.sub(r"#[^\n]*", lambda m: " " * len(m.group().encode()), gap)
    words = r"\s+".join(map(re.escape, op.split()))
    pattern = (rf"(?<![\w]){words}(?![\w])" if op[0].isalpha()
               else rf"(?<![*/<>=!&|]){re.escape(op)}(?![*/<>=!&|])")
    found = [m for m in re.finditer(pattern, code)]
    if len(found) != 1:
        return None
    m = found[0]
    before = len(code[:m.start()].encode())
    return start + before, start + before + len(m.group().encode())


def _names(node) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _names_a_mask(node) -> bool:
    """Does ``node`` use a mask's values (a name like ``present``, not only its ``.shape``)?"""
    meta = {id(n.value) for n in ast.walk(node)
            if isinstance(n, ast.Attribute) and n.attr in ("shape", "ndim", "dtype", "size")}
    return any(isinstance(n, ast.Name) and id(n) not in meta and _MASK_NAME.search(n.id)
               for n in ast.walk(node))


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _is_literal(node) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return isinstance(node, ast.Constant)


def _number(node) -> int | float | None:
    """The value of a numeric literal (``-1`` included); None for anything else."""
    sign = 1
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        sign, node = -1, node.operand
    if (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
            and not isinstance(node.value, bool)):
        return sign * node.value
    return None


def _only_raises(stmt) -> bool:
    return isinstance(stmt, ast.If) and all(isinstance(s, ast.Raise) for s in stmt.body)


def _pairs(func) -> list[tuple[str, str]]:
    """Name pairs (a, b) both bound in ``func`` where b is a's counterpart (theta / theta_star);
    names bound elsewhere (imported modules such as ``losses``) are not candidates."""
    names = set(_binding_lines(func))
    pairs = {(a, b) for a, b in _EXPLICIT_PAIRS if a in names and b in names}
    for a in names:
        for form in _PAIR_FORMS:
            if form.format(a) in names:
                pairs.add((a, form.format(a)))
    return sorted(pairs)


def _binding_lines(func) -> dict[str, int]:
    """``{name: first line where func (or a function nested in it) binds it}``."""
    out: dict[str, int] = {}
    for n in ast.walk(func):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            name, line = n.id, n.lineno
        elif isinstance(n, ast.arg):
            name, line = n.arg, n.lineno
        else:
            continue
        out[name] = min(line, out.get(name, line))
    return out


class _Generator:
    """Collects ``(kind, start, end, new text)`` edits over the functions of one module."""

    def __init__(self, text: str):
        self.src = _Source(text)
        self.tree = ast.parse(text)
        self.has_jax = any(isinstance(n, ast.Import) and any(a.name == "jax" for a in n.names)
                           for n in self.tree.body)
        self.has_jnp = any(isinstance(n, ast.Import)
                           and any(a.name == "jax.numpy" and a.asname == "jnp" for a in n.names)
                           for n in self.tree.body)
        self.edits: list[tuple[str, int, int, str]] = []  # (kind, start, end, new text)
        self.parents = {id(c): n for n in ast.walk(self.tree) for c in ast.iter_child_nodes(n)}
        self.pairs: dict[int, list[tuple[str, str]]] = {}  # id(function) -> its name pairs
        self.bound: dict[str, int] = {}  # name -> first line binding it in the top-level function

    def run(self):
        for stmt in self.tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._function(stmt, stmt)
            elif isinstance(stmt, ast.ClassDef):
                for s in stmt.body:
                    # A network's __init__ builds layers (widths, counts): not an equation.
                    if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                            and s.name != "__init__":
                        self._function(s, s)
        return self.edits

    # -- statements ----------------------------------------------------------------------------

    def _function(self, func, outer):
        body = func.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        self.pairs[id(func)] = _pairs(func)
        if func is outer:
            self.bound = _binding_lines(outer)
        self._block(body, func, outer)

    def _block(self, stmts, func, outer):
        for stmt in stmts:
            self._stmt(stmt, func, outer)

    def _stmt(self, stmt, func, outer):
        if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Raise, ast.Assert, ast.Pass,
                             ast.Global, ast.Nonlocal)):
            return
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self._function(stmt, outer)
            return
        if isinstance(stmt, ast.ClassDef):
            return
        if _only_raises(stmt):  # an argument check; its else-branch is code
            self._block(stmt.orelse, func, outer)
            return
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            return  # a bare string
        if isinstance(stmt, (ast.If, ast.While)):
            self._negate(stmt.test)
        # Expressions of this statement (not the nested statements, handled below).
        for field, value in ast.iter_fields(stmt):
            if field in ("body", "orelse", "finalbody", "handlers", "decorator_list"):
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.expr):
                    self._expr(child, func, outer, store=field in ("targets", "target"))
                elif isinstance(child, ast.withitem):
                    self._expr(child.context_expr, func, outer)
        for field in ("body", "orelse", "finalbody"):
            self._block(getattr(stmt, field, []), func, outer)
        for handler in getattr(stmt, "handlers", []):
            self._block(handler.body, func, outer)

    # -- expressions ---------------------------------------------------------------------------

    def _add(self, kind, start, end, new):
        self.edits.append((kind, start, end, new))

    def _replace(self, node, kind, new):
        self._add(kind, *self.src.span(node), new)

    def _negate(self, test):
        self._replace(test, "cond:negate", f"not ({self.src.seg(test)})")

    def _expr(self, node, func, outer, store=False):
        if isinstance(node, ast.JoinedStr):
            return
        if store:  # an assignment target: only its subscripts' indices are expressions
            for n in ast.walk(node):
                if isinstance(n, ast.Subscript):
                    self._expr(n.slice, func, outer)
            return
        self._visit(node, func, outer)
        if isinstance(node, ast.UnaryOp) and _number(node) is not None:
            return  # a negative literal is one number
        if isinstance(node, ast.Call) and _call_name(node) in _RANDOM_STREAM:
            return  # which random stream a key names is not an equation
        config_call = isinstance(node, ast.Call) and (_call_name(node) == "replace"
                                                      or _call_name(node).endswith("Config"))
        for child in ast.iter_child_nodes(node):
            if config_call and isinstance(child, ast.keyword) and all(
                    isinstance(n, (ast.Constant, ast.Tuple, ast.UnaryOp, ast.USub, ast.Load))
                    for n in ast.walk(child.value)):
                continue  # a config's setting (the released switches), not an equation
            if isinstance(child, ast.JoinedStr):
                continue
            if isinstance(child, ast.expr):
                self._expr(child, func, outer)
            elif isinstance(child, ast.keyword):
                self._keyword(child, func, outer)
            elif isinstance(child, ast.comprehension):
                for e in [child.iter, *child.ifs]:
                    self._expr(e, func, outer)

    def _keyword(self, kw, func, outer):
        if kw.arg in ("axis", "dim") and _number(kw.value) == 0:
            self._replace(kw.value, "axis:0->-1", "-1")  # instead of num:0->1
        else:
            self._expr(kw.value, func, outer)

    def _visit(self, node, func, outer):
        src = self.src
        if isinstance(node, ast.BinOp):
            self._binop(node, func)
        elif isinstance(node, ast.UnaryOp):
            number = _number(node)
            if number is not None:
                self._num(node, number)
            elif isinstance(node.op, (ast.USub, ast.Not, ast.Invert)):
                sym = {ast.USub: "-", ast.Not: "not", ast.Invert: "~"}[type(node.op)]
                self._replace(node, f"unary:drop{sym}", f"({src.seg(node.operand)})")
        elif isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators):
                new = _CMP_SWAPS.get(type(op))
                span = _op_in_gap(src, src.span(left)[1], src.span(right)[0], _OP_TEXT[type(op)])
                if new is not None and span is not None:
                    self._add(f"compare:{type(op).__name__}->{new.__name__}", *span,
                              _OP_TEXT[new])
                left = right
        elif isinstance(node, ast.IfExp):
            self._negate(node.test)
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                self._replace(node, f"bool:{node.value}->{not node.value}", str(not node.value))
            elif _number(node) is not None:
                self._num(node, node.value)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            for a, b in self.pairs.get(id(func), []):
                other = b if node.id == a else a if node.id == b else None
                if other is not None and self.bound.get(other, node.lineno) < node.lineno:
                    self._replace(node, f"swap:{node.id}->{other}", other)
        elif isinstance(node, ast.Call):
            self._call(node, func)

    def _num(self, node, value):
        if isinstance(value, int):
            new = {0: 1, 1: 0, -1: 0}.get(value, value + 1)
        else:
            new = {0.0: 1.0, 1.0: 0.0, 0.5: 1.0}.get(value, value + 1.0)
        self._replace(node, f"num:{value!r}->{new!r}", repr(new))

    def _binop(self, node, func):
        src = self.src
        if any(isinstance(x, (ast.Tuple, ast.List, ast.Dict, ast.JoinedStr))
               or (isinstance(x, ast.Constant) and isinstance(x.value, str))
               for x in (node.left, node.right)):
            return  # sequence or string arithmetic
        new = _BINOP_SWAPS.get(type(node.op))
        span = _op_in_gap(src, src.span(node.left)[1], src.span(node.right)[0],
                          _OP_TEXT.get(type(node.op), "?"))
        if new is not None and span is not None:
            self._add(f"binop:{type(node.op).__name__}->{new.__name__}", *span,
                      _OP_TEXT[new])
        # A mask's product or a mask's count as the divisor dropped.
        sides = (((node.left, node.right), (node.right, node.left)) if isinstance(node.op, ast.Mult)
                 else ((node.left, node.right),) if isinstance(node.op, ast.Div) else ())
        for keep, drop in sides:
            if _names_a_mask(drop):
                self._replace(node, "mask:drop", f"({src.seg(keep)})")
        if (isinstance(node.op, ast.Sub) and self.has_jax and not _NO_SG_FUNCS.match(func.name)
                and self._squared_or_abs(node)):
            for side, operand in (("left", node.left), ("right", node.right)):
                if not _is_literal(operand):
                    self._replace(operand, f"sg:add-{side}",
                                  f"jax.lax.stop_gradient({src.seg(operand)})")

    def _squared_or_abs(self, node) -> bool:
        """Is this difference squared or taken absolute (a regression target)?"""
        parent = self.parents.get(id(node))
        return ((isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Pow)
                 and parent.left is node)
                or (isinstance(parent, ast.Call) and node in parent.args
                    and _call_name(parent) in ("square", "abs", "norm", "l2_loss")))

    def _call(self, node, func):
        src = self.src
        name = _call_name(node)
        if isinstance(node.func, ast.Attribute) and name in _REDUCTION_SWAPS:
            start, end = src.span(node.func)
            self._add(f"call:{name}->{_REDUCTION_SWAPS[name]}", end - len(name), end,
                      _REDUCTION_SWAPS[name])
        args = node.args
        if any(isinstance(a, ast.Starred) for a in args):
            return
        if name == "stop_gradient" and len(args) == 1:
            self._replace(node, "sg:drop", f"({src.seg(args[0])})")
        if name == "where" and len(args) == 3:
            self._replace(node, "where:then", f"({src.seg(args[1])})")
            self._replace(node, "where:else", f"({src.seg(args[2])})")
        if len(args) == 2 and name not in ("where", "stop_gradient"):
            masky = [i for i, a in enumerate(args) if _names_a_mask(a)]
            if len(masky) == 1:
                x = src.seg(args[1 - masky[0]])
                if "mean" in name and self.has_jnp:
                    self._replace(node, "mask:unweighted", f"jnp.mean({x})")
                elif masky[0] == 1:
                    self._replace(node, "mask:drop-call", f"({x})")
            if (name not in _NO_ARG_SWAP and not any(map(_is_literal, args))
                    and not src.seg(node.func).startswith(("jax.random.", "random."))
                    and src.seg(args[0]) != src.seg(args[1])):
                s0, e0 = src.span(args[0])
                s1, e1 = src.span(args[1])
                between = src.segment(e0, s1)
                self._add("args:swap", s0, e1,
                          src.seg(args[1]) + between + src.seg(args[0]))
        if (self.has_jax and _LOSS_CALL.search(name) and not _NO_SG_FUNCS.match(func.name)
                and name != "stop_gradient"):
            for i, a in enumerate(args[:2]):  # a prediction and a target, not the weights
                if not _is_literal(a) and not _NOT_DIFFERENTIABLE.search(src.seg(a)):
                    self._replace(a, f"sg:add-arg{i}", f"jax.lax.stop_gradient({src.seg(a)})")


def generate(module: str, text: str) -> list[Mutant]:
    """All mutants of module ``<module>.py`` with source ``text``, in line order."""
    gen = _Generator(text)
    src = gen.src
    tree_dump = ast.dump(gen.tree)
    original_lines = text.splitlines()
    seen: dict[tuple[str, str], int] = {}
    seen_sources: set[str] = set()
    mutants = []
    for kind, start, end, new in sorted(gen.run(), key=lambda e: (e[1], e[2], e[0])):
        mutated = src.replace(start, end, new)
        if mutated in seen_sources:
            continue
        try:
            if ast.dump(ast.parse(mutated)) == tree_dump:
                continue
        except SyntaxError:
            continue
        seen_sources.add(mutated)
        # The lines the edit touched, as they read before and after; the id hashes the first.
        first = src.segment(0, start).count("\n")
        old_lines = original_lines[first:first + src.segment(start, end).count("\n") + 1]
        line_text = old_lines[0].strip()
        n = seen.get((line_text, kind), 0)
        seen[(line_text, kind)] = n + 1
        digest = hashlib.sha1(line_text.encode()).hexdigest()[:8]
        new_lines = mutated.splitlines()[first:first + new.count("\n") + 1]
        mutants.append(Mutant(id=f"{module}:{digest}:{kind}:{n}", module=module, line=first + 1,
                              kind=kind, original=" ".join(x.strip() for x in old_lines),
                              mutated=" ".join(x.strip() for x in new_lines), source=mutated))
    return mutants


# ----------------------------------------------------------------------------------------------
# Running.
# ----------------------------------------------------------------------------------------------


def test_files(module: str) -> list[str]:
    """The existing test files of ``module`` (relative to the repository root)."""
    # The whole-objective tests first: with -x they usually kill a mutant soonest.
    names = [f"test_objective_{module}.py", *MODULE_TESTS.get(module, (f"test_{module}.py",)),
             f"test_golden_{module}.py"]
    out = []
    for name in names:
        if (ROOT / "tests" / name.split("::")[0]).exists() and f"tests/{name}" not in out:
            out.append(f"tests/{name}")
    return out


def _prepare_slot(module: str, slot: int) -> pathlib.Path:
    """``/tmp/mutants/<m>/<slot>``: a copy of ``mmjax`` and links to the tests, configs and tools
    (the golden tests read ``tools/golden``)."""
    root = SCRATCH / module / str(slot)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copytree(ROOT / "mmjax", root / "mmjax",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("tests", "configs", "tools", "pyproject.toml"):
        (root / name).symlink_to(ROOT / name)
    return root


def _start_pytest(root: pathlib.Path, tests: list[str], log: pathlib.Path, cache: pathlib.Path):
    """Starts ``pytest -x -q tests`` on the copy at ``root`` in its own session, output to ``log``.

    The copy comes first on the path (the working directory, then ``PYTHONPATH``), so its
    ``mmjax`` is the one imported; bytecode is not written (a mutant of the same size written
    within the same second would otherwise reuse a stale ``.pyc``).
    """
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONDONTWRITEBYTECODE="1",
               JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PLATFORMS="cpu")
    with log.open("w") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=root, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _verdict(rc: int | None, log: pathlib.Path) -> tuple[str, str | None]:
    """``(status, killing test)`` from pytest's exit code (None: timed out) and output."""
    if rc is None:
        return "timeout", None
    if rc == 0:
        return "survived", None
    out = log.read_text(errors="replace")
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", out, re.MULTILINE)
    return "killed", failed.group(1) if failed else out.strip()[-300:]


def _execute(sources: list[str], slots: list[pathlib.Path], module: str, tests: list[str],
             timeout: float, cache: pathlib.Path, done) -> None:
    """Runs the tests once per module source in ``sources``, at most ``len(slots)`` at once, each
    in a free slot with its module file replaced; ``done(index, status, killer, wall seconds, CPU
    seconds)`` (the CPU time of pytest itself, not of subprocesses it may start)."""
    free = list(slots)
    pending = list(enumerate(sources))
    running = {}  # pid -> (process, index, slot, start)
    try:
        while pending or running:
            while pending and free:
                i, source = pending.pop(0)
                slot = free.pop()
                (slot / "mmjax" / "methods" / f"{module}.py").write_text(source)
                proc = _start_pytest(slot, tests, slot / "pytest.log", cache)
                running[proc.pid] = (proc, i, slot, time.perf_counter())
            time.sleep(0.2)
            for pid, (proc, i, slot, start) in list(running.items()):
                # wait4, not poll: its resource usage gives the CPU seconds (the machine is shared,
                # so wall seconds say little about the cost of a run).
                finished, status, usage = os.wait4(pid, os.WNOHANG)
                rc = os.waitstatus_to_exitcode(status) if finished else None
                if not finished:
                    if time.perf_counter() - start < timeout:
                        continue
                    os.killpg(pid, signal.SIGKILL)  # its own session: pytest and its subprocesses
                    _, _, usage = os.wait4(pid, 0)
                proc.returncode = -1 if rc is None else rc  # reaped here, not by Popen
                del running[pid]
                done(i, *_verdict(rc, slot / "pytest.log"), time.perf_counter() - start,
                     usage.ru_utime + usage.ru_stime)
                free.append(slot)
    finally:  # interrupted (Ctrl-C): no pytest is left running
        for pid, (proc, *_) in running.items():
            os.killpg(pid, signal.SIGKILL)
            proc.wait()


def load_equivalent(path: pathlib.Path = EQUIVALENT) -> dict[str, str]:
    """``{mutant id: reason}`` from the equivalence file (``<id> <reason>``, ``#`` comments)."""
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                mid, _, reason = line.partition(" ")
                out[mid] = reason.strip()
    return out


def run_module(module: str, text: str, mutants: list[Mutant], generated: int, args) -> None:
    """Runs ``mutants`` (of the ``generated`` made from ``module``'s source ``text``), one JSON
    line each to ``<out>/<module>.jsonl``; a progress line per mutant on stdout."""
    tests = test_files(module)
    if not tests:
        print(f"{module}: no test files, skipped", flush=True)
        return
    slots = [_prepare_slot(module, k) for k in range(args.jobs)]
    results = {}

    def keep(i, status, killer, seconds, cpu):
        results[i] = (status, killer, seconds, cpu)

    # The unmutated copy must pass and a module that fails to import must fail: otherwise the
    # run would not be measuring the copy.
    _execute([text, "raise RuntimeError('canary')\n"], slots[:1], module, tests,
             args.timeout or 3600, args.cache_dir, keep)
    (status, killer, base, base_cpu), canary = results[0], results[1]
    if status != "survived":
        print(f"{module}: the tests fail without a mutant ({killer}); skipped", flush=True)
        return
    if canary[0] != "killed":
        raise SystemExit(f"{module}: a broken copy passed: the tests do not import the copy")
    timeout = args.timeout or max(60.0, 3 * base)
    print(f"{module}: {len(mutants)} mutants, tests {' '.join(tests)}, unmutated {base:.1f} s "
          f"({base_cpu:.1f} s CPU), timeout {timeout:.0f} s", flush=True)
    out = args.out / f"{module}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    (args.out / f"{module}.meta.json").unlink(missing_ok=True)
    with out.open("w") as f:
        def record(i, status, killer, seconds, cpu):
            m = mutants[i]
            rec = {"id": m.id, "line": m.line, "kind": m.kind, "original": m.original,
                   "mutated": m.mutated, "status": status, "killed_by": killer,
                   "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1)}
            f.write(json.dumps(rec) + "\n")
            f.flush()
            print(f"  [{i + 1}/{len(mutants)}] {status:8s} {seconds:6.1f} s ({cpu:5.1f} s CPU) "
                  f"{m.id}  line {m.line}: {m.mutated[:70]}", flush=True)

        _execute([m.source for m in mutants], slots, module, tests, timeout, args.cache_dir,
                 record)
    for slot in slots:
        (slot / "mmjax" / "methods" / f"{module}.py").write_text(text)
    meta = {"generated": generated, "tests": tests, "baseline_seconds": round(base, 1),
            "baseline_cpu_seconds": round(base_cpu, 1),
            "wall_seconds": round(time.perf_counter() - start, 1)}
    (args.out / f"{module}.meta.json").write_text(json.dumps(meta) + "\n")


def summary(modules, out: pathlib.Path) -> str:
    """The markdown table of the last runs of ``modules`` and the surviving mutants."""
    equivalent = load_equivalent()
    rows = ["| module | killed | total | equivalent | score | survived | of generated | "
            "wall s | CPU s |", "|---|---|---|---|---|---|---|---|---|"]
    survivors = []
    for module in modules:
        path = out / f"{module}.jsonl"
        if not path.exists():
            continue
        recs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        if not recs:
            continue
        meta_path = out / f"{module}.meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        eq = [r for r in recs if r["id"] in equivalent]
        judged = [r for r in recs if r["id"] not in equivalent]
        killed = [r for r in judged if r["status"] in ("killed", "timeout")]
        alive = [r for r in judged if r["status"] == "survived"]
        score = f"{100 * len(killed) / len(judged):.0f}%" if judged else "-"
        wall = sum(r["seconds"] for r in recs) + meta.get("baseline_seconds", 0)
        cpu = sum(r.get("cpu_seconds", 0) for r in recs) + meta.get("baseline_cpu_seconds", 0)
        rows.append(f"| {module}.py | {len(killed)} | {len(recs)} | {len(eq)} | {score} | "
                    f"{len(alive)} | {meta.get('generated', '?')} | {wall:.0f} | {cpu:.0f} |")
        survivors += [f"- `{r['id']}` line {r['line']}: `{r['original']}` -> `{r['mutated']}`"
                      for r in alive]
    return "\n".join(rows + ["", "Surviving mutants not judged equivalent:", *survivors])


def main(argv=None):
    """Command line; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--modules", nargs="+", default=list(DEFAULT_MODULES),
                   help="method modules (names under mmjax/methods, without .py)")
    p.add_argument("--max-mutants", type=int, default=0,
                   help="at most this many per module, evenly spread over the file (0 = all)")
    p.add_argument("--jobs", type=int, default=1, help="mutants run at once (default 1)")
    p.add_argument("--timeout", type=float, default=0,
                   help="seconds per mutant (0 = max(60, 3 x the unmutated run))")
    p.add_argument("--match", default="", help="only mutants whose id matches this regex")
    p.add_argument("--list", action="store_true", help="print the mutants without running")
    p.add_argument("--report", action="store_true", help="print the summary of the last run")
    p.add_argument("--out", type=pathlib.Path, default=SCRATCH / "results")
    p.add_argument("--cache-dir", type=pathlib.Path, default=SCRATCH / "jax-cache",
                   help="JAX compilation cache shared by all mutants")
    args = p.parse_args(argv)
    # A plain kill unwinds like Ctrl-C, so the running pytest is stopped too (see _execute).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if not args.report:
        for module in args.modules:
            text = (METHODS / f"{module}.py").read_text()
            mutants = generate(module, text)
            generated = len(mutants)
            if args.match:
                mutants = [m for m in mutants if re.search(args.match, m.id)]
            if args.max_mutants and len(mutants) > args.max_mutants:
                step = len(mutants) / args.max_mutants
                mutants = [mutants[int(i * step)] for i in range(args.max_mutants)]
            if args.list:
                for m in mutants:
                    print(f"{m.id}  line {m.line}: {m.original}\n    -> {m.mutated}")
                print(f"{module}: {len(mutants)} mutants")
                continue
            run_module(module, text, mutants, generated, args)
    if not args.list:
        print(summary(args.modules, args.out))


if __name__ == "__main__":
    main()
