"""A size budget for the autodiff core (teenygrad's sz.py idea): it must read in one sitting."""

import io
import tokenize
from pathlib import Path

import tinygrad_mlp.tensor

# Lines holding code, not counting comments, docstrings and blank lines. 420 until torch's
# semantics (dtype promotion, freed-graph errors, retain_grad, scalar conversions) added 48, the
# profiler's hook 4, and what a torch user reaches for (comparisons, in-place updates under
# no_grad, permute, flatten's end_dim, iteration) 30, and torch parity (min, argmax, dim=/keepdim=,
# flatten's range checks, separate .grad arrays per leaf, shape errors of comparisons, a Min op
# named as such in profiles and graphs) 28, and the rest of what a torch user expects (abs, sqrt,
# clamp, view, squeeze, unsqueeze, expand, cat, stack, tolist, size, numel, requires_grad_: five
# primitives and torch's errors) 123, tensors inside the constructor's lists and __index__ 10,
# advanced indexing (integer and bool arrays, bounds checked for CuPy, a Gather op) 38, tensor
# exponents (a PowTensor op with torch's gradients) 16, item assignment, fill_/zero_/clone and
# torch's method names of the operators 27, rand/full/arange/eye/zeros_like/ones_like 18, the
# ragged-list error and one basic-index test shared by [] and []= 9.
# Grow it on purpose, never by packing code onto one line.
CODE_LINE_BUDGET = 774


def code_lines(path):
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.STRING, tokenize.ENDMARKER}
    tokens = tokenize.generate_tokens(io.StringIO(Path(path).read_text()).readline)
    return len({tok.start[0] for tok in tokens if tok.type not in skip})


def test_autodiff_core_stays_within_budget():
    n = code_lines(tinygrad_mlp.tensor.__file__)
    assert n <= CODE_LINE_BUDGET, f"tensor.py has {n} code lines (budget {CODE_LINE_BUDGET})"


def test_counter_counts_code_not_comments(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('"""doc"""\n# comment\n\nx = 1\ny = (2 +\n     3)\n')
    assert code_lines(f) == 3
