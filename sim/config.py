"""The configuration of one random transformer: a frozen, validated dataclass.

Conventions (shared by the engine, the NumPy reference and the theory):

- ``X`` is ``T x d``: rows are tokens.
- Query/key entries have variance ``beta * sqrt(ln T) / d`` and scores are
  ``(X W_Q^h)(X W_K^h)^T / sqrt(d_k)`` with ``d_k = d / heads``, so orthogonal tokens with
  ``|x|^2 = d`` get score standard deviation ``beta * sqrt(ln T)`` (the REM convention).
- Weights have variance ``variance / fan_in``: ``W_V^h`` (``d x d_k``) ``sigma_v2 / d``,
  ``W_1`` (``d x d_ff``) ``sigma_w2 / d``, ``W_2`` (``d_ff x d``) ``sigma_w2 / d_ff``, biases
  ``sigma_b2``. With ``heads > 1`` the concatenated heads pass through ``W_O`` (``d x d``,
  variance ``1/d``); a single head has no output projection, as in the papers.
- Blocks: ``post``: ``Z = LN(alpha_attn X + Attn(X))``, ``X' = LN(alpha_mlp Z + MLP(Z))``;
  ``l2``: as ``post`` with an L2 normaliser (each token scaled to ``|x|^2 = d``, no centring);
  ``pre``: ``Z = alpha_attn X + Attn(LN X)``, ``X' = alpha_mlp Z + MLP(LN Z)``;
  ``none``: as ``pre`` without LN. LayerNorm has no affine parameters and normalises each token to
  ``|x|^2 = d`` (population variance, epsilon ``LN_EPS``).
- ``markov`` attention is input-independent: ``A = rowsoftmax(G)``, ``G`` i.i.d.
  ``N(-markov_s^2/2, markov_s^2)``. ``gap="remove"`` uses ``A - 1 1^T / T``;
  ``gap="differential"`` uses ``A_1 - diff_lambda A_2`` (differential attention), ``A_2`` an
  independent draw of the same ensemble (its own logits, or its own ``W_Q, W_K``).
- Value/output product: one head applies ``F = W_V^T`` to each token (column) vector, i.e. the
  head's output is ``A X F^T``. ``value="random"``: ``W_V`` Gaussian (above);
  ``"symmetric"``: ``F = (G + G^T)/sqrt(2)``, ``G`` drawn as ``W_V``; ``"given"``: ``F`` from
  ``value_matrix`` (``d*d`` floats, row-major). ``steer_mu != 0`` adds ``steer_mu u u^T`` to ``F``
  (``u = steer_u`` normalised, ``e_1`` when empty) in every layer.
- Planted attention patterns (science/sinks.md): ``qk != "random"`` replaces the random scores by
  ``s_ij = x_i^T W_QK x_j`` (no ``beta``, no ``1/sqrt(d_k)``) with one ``d x d`` matrix for every
  head and layer: ``"sink"``: ``W_QK = qk_scale u e^T`` (``u = e_1``, ``e = e_2``);
  ``"diagonal"``: ``qk_scale I``; ``"given"``: ``qk_matrix`` (``d*d`` floats, row-major).
- ``sink=True`` plants a sink as token 0 of the input: tokens ``i >= 1`` get
  ``x_i . u = a sqrt(d)``, ``x_i . e = 0``, ``|x_i|^2 = d`` (their other coordinates rescaled),
  and ``x_0 = sqrt(d) (b u + sqrt(1 - b^2) e)``, with ``a = sink_align``, ``b = sink_cos``, so
  ``cos(x_0, x_i) = a b``. Token 0's value vector is multiplied by ``sink_value`` in every layer
  (0: a null-value sink).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any

NORMS = ("post", "pre", "none", "l2")
ATTENTIONS = ("softmax", "markov", "uniform", "identity")
GAPS = ("keep", "remove", "differential")
VALUES = ("random", "symmetric", "given")
QKS = ("random", "sink", "diagonal", "given")
INPUTS = ("isometric", "simplex", "gaussian")
DTYPES = ("float64", "float32")
ACTIVATIONS = ("relu",)
LN_EPS = 1e-12
#: tuple-valued config fields (flat sequences of reals)
VECTOR_FIELDS = ("value_matrix", "steer_u", "qk_matrix")


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def _integer(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name}={value!r} must be an integer")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name}={value!r} must be {rng}")


def _real(name: str, value: Any, lo: float | None = None, hi: float | None = None,
          lo_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={value!r} must be a real number")
    try:
        finite = math.isfinite(value)
    except OverflowError:
        finite = False
    if not finite:
        raise ValueError(f"{name}={value!r} must be finite")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise ValueError(f"{name}={value!r} must be {'>' if lo_open else '>='} {lo}")
    if hi is not None and value > hi:
        raise ValueError(f"{name}={value!r} must be <= {hi}")


def _flatten(v: Any) -> list[Any]:
    """Entries of a nested sequence or array, row-major."""
    if hasattr(v, "ravel"):
        return list(v.ravel())
    out: list[Any] = []
    for x in v:
        out.extend(_flatten(x) if isinstance(x, (list, tuple)) or hasattr(x, "ravel") else [x])
    return out


@dataclass(frozen=True)
class Config:
    """One deep random transformer. Field names are the CLI flags (``--sigma-v2`` etc.)."""

    T: int = 64
    d: int = 64
    heads: int = 1
    depth: int = 10
    d_ff: int = 0  # 0 means d_ff = d
    beta: float = 1.0
    sigma_v2: float = 1.0
    sigma_w2: float = 2.0
    sigma_b2: float = 0.0
    alpha_attn: float = 1.0
    alpha_mlp: float = 1.0
    norm: str = "post"
    mlp: bool = True
    activation: str = "relu"
    attention: str = "softmax"
    markov_s: float = math.sqrt(math.log(2.0))
    gap: str = "keep"
    diff_lambda: float = 0.5
    shared_weights: bool = False
    causal: bool = False
    input: str = "isometric"
    rho: float = 0.0
    value: str = "random"
    value_matrix: tuple[float, ...] = ()
    steer_mu: float = 0.0
    steer_u: tuple[float, ...] = ()
    qk: str = "random"
    qk_scale: float = 1.0
    qk_matrix: tuple[float, ...] = ()
    sink: bool = False
    sink_align: float = 0.5
    sink_cos: float = 0.0
    sink_value: float = 1.0
    dtype: str = "float64"

    def __post_init__(self) -> None:
        self._normalise_numbers()
        _integer("T", self.T, 2, 1 << 16)
        _integer("d", self.d, 1, 1 << 16)
        _integer("heads", self.heads, 1)
        _integer("depth", self.depth, 0, 10_000)
        _integer("d_ff", self.d_ff, 0, 1 << 18)
        if self.d % self.heads:
            raise ValueError(f"heads={self.heads!r} must divide d={self.d}")
        _real("beta", self.beta, 0.0)
        for name in ("sigma_v2", "sigma_w2", "sigma_b2"):
            _real(name, getattr(self, name), 0.0)
        _real("alpha_attn", self.alpha_attn)
        _real("alpha_mlp", self.alpha_mlp)
        _real("markov_s", self.markov_s, 0.0)
        _real("diff_lambda", self.diff_lambda)
        _choice("norm", self.norm, NORMS)
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("attention", self.attention, ATTENTIONS)
        _choice("gap", self.gap, GAPS)
        _choice("input", self.input, INPUTS)
        _choice("value", self.value, VALUES)
        _real("steer_mu", self.steer_mu)
        self._check_vectors()
        self._check_planted()
        _choice("dtype", self.dtype, DTYPES)
        for name in ("mlp", "shared_weights", "causal", "sink"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be true or false")
        _real("rho", self.rho, 0.0, 1.0)
        if self.input == "isometric" and self.T > self.d:
            raise ValueError(
                f"input='isometric' needs T <= d (X X^T = d I), got T={self.T} > d={self.d}")
        if self.input == "simplex" and self.T > self.d:
            raise ValueError(
                f"input='simplex' needs T <= d (a {self.T}-point simplex spans {self.T} "
                f"dimensions), got T={self.T} > d={self.d}")

    def _check_vectors(self) -> None:
        """``value_matrix`` and ``steer_u``: flat tuples of finite reals of the right length."""
        if self.value != "random" and self.heads != 1:
            raise ValueError(f"value={self.value!r} needs heads=1 (F = W_V^T of one head), "
                             f"got heads={self.heads}")
        if self.value == "given":
            if len(self.value_matrix) != self.d * self.d:
                raise ValueError(f"value='given' needs value_matrix with d*d = {self.d * self.d} "
                                 f"entries, got {len(self.value_matrix)}")
        elif self.value_matrix:
            raise ValueError("value_matrix is only used with value='given'; leave it empty")
        if self.steer_u and len(self.steer_u) != self.d:
            raise ValueError(f"steer_u needs d = {self.d} entries (or none for e_1), got "
                             f"{len(self.steer_u)}")
        for name in ("value_matrix", "steer_u"):
            for v in getattr(self, name):
                _real(name + " entry", v)
        if self.steer_u and not any(self.steer_u):
            raise ValueError("steer_u must not be the zero vector")

    def _check_planted(self) -> None:
        """``qk``, ``qk_scale``, ``qk_matrix`` and the sink fields."""
        _choice("qk", self.qk, QKS)
        _real("qk_scale", self.qk_scale)
        if self.qk != "random" and self.attention != "softmax":
            raise ValueError(f"qk={self.qk!r} plants softmax scores; it needs "
                             f"attention='softmax', got attention={self.attention!r}")
        if self.qk == "given":
            if len(self.qk_matrix) != self.d * self.d:
                raise ValueError(f"qk='given' needs qk_matrix with d*d = {self.d * self.d} "
                                 f"entries, got {len(self.qk_matrix)}")
        elif self.qk_matrix:
            raise ValueError("qk_matrix is only used with qk='given'; leave it empty")
        for v in self.qk_matrix:
            _real("qk_matrix entry", v)
        _real("sink_align", self.sink_align, -1.0, 1.0)
        _real("sink_cos", self.sink_cos, -1.0, 1.0)
        _real("sink_value", self.sink_value)
        if self.qk == "sink" and self.d < 2:
            raise ValueError(f"qk='sink' needs d >= 2 (u = e_1, e = e_2), got d={self.d}")
        if self.sink is True and self.d < 3:
            raise ValueError(f"sink=True needs d >= 3 (u, e and a random part), got d={self.d}")
        if self.sink is False and self.sink_value != 1.0:
            raise ValueError(f"sink_value={self.sink_value!r} scales the sink's value; it needs "
                             "sink=True")

    def _normalise_numbers(self) -> None:
        """Store NumPy integers and reals as Python ``int`` and ``float`` (validated later)."""
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or isinstance(v, str):
                continue
            if f.name in VECTOR_FIELDS:
                try:
                    flat = tuple(float(x) if isinstance(x, numbers.Real) and not isinstance(
                        x, bool) else x for x in _flatten(v))
                except TypeError:
                    raise ValueError(f"{f.name}={v!r} must be a sequence of reals") from None
                object.__setattr__(self, f.name, flat)
                continue
            if f.type in ("int",) and isinstance(v, numbers.Integral):
                object.__setattr__(self, f.name, int(v))
            elif f.type in ("float",) and isinstance(v, numbers.Real):
                try:
                    object.__setattr__(self, f.name, float(v))
                except OverflowError:
                    pass

    @property
    def d_k(self) -> int:
        """Per-head width ``d / heads``."""
        return self.d // self.heads

    @property
    def hidden(self) -> int:
        """MLP hidden width: ``d_ff``, or ``d`` when ``d_ff == 0``."""
        return self.d_ff or self.d

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (vector fields as lists); ``from_dict`` inverts it."""
        values = dataclasses.asdict(self)
        for name in VECTOR_FIELDS:
            values[name] = list(values[name])
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        known = {f.name for f in fields(cls)}
        unknown = {str(k) for k in values} - known
        if unknown or not all(isinstance(k, str) for k in values):
            raise ValueError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        return cls(**values)


CONFIG_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Config))
