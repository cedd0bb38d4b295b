"""LoRA and multi-LoRA with per-sample mixing weights.

LoRA: Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", Sec. 4.1, Eq. 3:
``h = W0 x + (alpha / r) * B A x`` with ``W0`` frozen, ``A`` (r, in) randomly initialised and
``B`` (out, r) zero, so training starts from the pre-trained function. ``A`` uses the same
initialisation as the ``peft`` library (``kaiming_uniform_(a=sqrt(5))``, i.e. nn.Linear's
default; ``init="gaussian"`` gives peft's ``N(0, 1/r)``), dropout is applied to the adapter's
input only.

Multi-LoRA: one layer holds ``K = n_adapters`` pairs ``(A_k, B_k)`` and mixes them with
per-sample weights ``w`` of shape ``(B, K)``::

    y = W0 x + sum_k w[b, k] * (alpha / r) * B_k A_k dropout(x)

This is the general form of PETALface's twin LoRA (Narayan et al., WACV 2025, Sec. 3:
``y = W x + s * up1(down1((1 - a) x)) + s * up2(down2(a x))``, i.e. ``K = 2``,
``w = (1 - a, a)`` with ``a`` from an image-quality score). Since the adapters are linear,
scaling their input or their output by ``w`` is the same.

Mixing-weight semantics (``set_mixing_weights`` / ``mixing_weights``):
  * ``None`` (the default): equal weights ``1 / K`` for every sample (weight 1 when ``K == 1``,
    i.e. plain LoRA);
  * a ``(K,)`` tensor: the same weights for every sample (mergeable);
  * a ``(B, K)`` tensor: per-sample weights. When a layer's input has ``m * B`` rows (e.g. Swin
    windows: ``(B * nW, N, C)`` with the batch as the outer index), each weight row is repeated
    ``m`` times (``repeat_interleave``). Weights are used as given: no clamping or normalisation.

Dropout: while training, each of the ``K`` adapters draws its own dropout mask on its input, as
peft and the PETALface code do (one ``nn.Dropout`` per adapter); with ``K == 1`` this is plain
LoRA dropout. Layout: the adapter weights are stacked as ``lora_A`` ``(K, r, in)``
and ``lora_B`` ``(K, out, r)`` parameters; the wrapped layer's weights live under ``.base``
(state-dict keys ``<name>.base.weight``), as peft's ``base_layer``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus ``n_adapters`` low-rank adapters mixed by per-sample weights.

    Args:
        base: the ``nn.Linear`` to adapt (its parameters are frozen).
        r: rank.
        alpha: LoRA alpha; the scaling is ``alpha / r``.
        dropout: dropout probability on the adapter input.
        n_adapters: number ``K`` of adapters.
        init: ``"kaiming"`` (peft's default) or ``"gaussian"`` (``N(0, 1/r)``, PETALface) for A.

    Input ``(B, ..., in)`` -> output ``(B, ..., out)``.
    """

    def __init__(
        self,
        base: nn.Linear,
        r: int = 8,
        alpha: float = 16,
        dropout: float = 0.0,
        n_adapters: int = 1,
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if r < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {r}")
        if n_adapters < 1:
            raise ValueError(f"n_adapters must be >= 1, got {n_adapters}")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r = r
        self.alpha = alpha
        self.scaling = alpha / r
        self.n_adapters = n_adapters
        self.in_features = base.in_features
        self.out_features = base.out_features
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(n_adapters, r, base.in_features, device=w.device, dtype=w.dtype))
        self.lora_B = nn.Parameter(torch.zeros(n_adapters, base.out_features, r, device=w.device, dtype=w.dtype))
        self.dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.init = init
        self.reset_lora_parameters()
        self.mixing: Tensor | None = None
        self.merged_weights: Tensor | None = None  # (K,) weights folded into base.weight, or None

    def reset_lora_parameters(self) -> None:
        """A as in peft (per adapter, on its ``(r, in)`` slice), B = 0."""
        with torch.no_grad():
            for k in range(self.n_adapters):
                if self.init == "kaiming":
                    nn.init.kaiming_uniform_(self.lora_A[k], a=math.sqrt(5))
                elif self.init == "gaussian":
                    nn.init.normal_(self.lora_A[k], std=1 / self.r)
                else:
                    raise ValueError(f"unknown LoRA init {self.init!r} (use 'kaiming' or 'gaussian')")
            self.lora_B.zero_()

    # ------------------------------------------------------------ compatibility with code that reads .weight
    @property
    def weight(self) -> Tensor:
        return self.base.weight

    @property
    def bias(self) -> Tensor | None:
        return self.base.bias

    @property
    def merged(self) -> bool:
        return self.merged_weights is not None

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, r={self.r}, alpha={self.alpha}, n_adapters={self.n_adapters}, merged={self.merged}"

    # ------------------------------------------------------------ mixing weights
    def _fixed_weights(self) -> Tensor:
        """The ``(K,)`` weights used for merging; error for per-sample weights."""
        w = self.mixing
        if w is None:
            return torch.full((self.n_adapters,), 1.0 / self.n_adapters, device=self.lora_A.device, dtype=torch.float32)
        if w.dim() == 1:
            return w.detach().float().to(self.lora_A.device)
        raise RuntimeError(
            "cannot merge a multi-LoRA layer with per-sample (B, K) mixing weights: merging needs "
            "fixed weights (set None or a (K,) tensor with set_mixing_weights first)"
        )

    def delta_weight(self, weights: Tensor | None = None) -> Tensor:
        """``(out, in)``: ``scaling * sum_k w_k B_k A_k`` for fixed ``(K,)`` weights (default: current)."""
        w = self._fixed_weights() if weights is None else weights.float()
        ba = torch.einsum("kor,kri->koi", self.lora_B.float(), self.lora_A.float())
        return self.scaling * torch.einsum("k,koi->oi", w.to(ba.device), ba)

    def _sample_weights(self, x: Tensor) -> Tensor | None:
        """Weights broadcastable to ``(B, ..., K, 1)``, or None meaning the plain 1/K mean."""
        w = self.mixing
        if w is None:
            return None
        w = w.to(device=x.device, dtype=x.dtype)
        if w.dim() == 1:
            return w[:, None]
        if x.dim() < 2:
            raise ValueError("per-sample mixing weights need a batched input (B, ..., in)")
        bw, n = w.shape[0], x.shape[0]
        if n != bw:
            if n % bw != 0:
                raise ValueError(
                    f"mixing weights have {bw} rows but the layer input has {n} rows (not a multiple); "
                    "set weights for the current batch"
                )
            w = w.repeat_interleave(n // bw, dim=0)
        return w.reshape(n, *([1] * (x.dim() - 2)), self.n_adapters, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.base(x)
        if self.merged:
            if self.mixing is not None and self.mixing.dim() != 1:
                raise RuntimeError("this LoRA layer is merged; per-sample mixing weights need unmerge_lora() first")
            return y
        k, r = self.n_adapters, self.r
        if k == 1 and self.mixing is None:
            h = self.dropout(x)
            return y + self.scaling * F.linear(F.linear(h, self.lora_A[0]), self.lora_B[0])
        if self.training and isinstance(self.dropout, nn.Dropout):
            # one dropout mask per adapter: drop on K copies of the input, then A_k on copy k
            h = self.dropout(x.unsqueeze(-2).expand(*x.shape[:-1], k, self.in_features))  # (B, ..., K, in)
            u = torch.matmul(h.unsqueeze(-2), self.lora_A.transpose(1, 2)).squeeze(-2)  # (B, ..., K, r)
        else:
            # F.linear (not einsum) so that autocast picks the compute dtype
            u = F.linear(x, self.lora_A.reshape(k * r, self.in_features))  # (B, ..., K * r)
            u = u.unflatten(-1, (k, r))  # (B, ..., K, r)
        w = self._sample_weights(x)
        u = u / k if w is None else u * w.to(u.dtype)
        b_flat = self.lora_B.permute(1, 0, 2).reshape(self.out_features, k * r)  # (out, K * r)
        delta = F.linear(u.flatten(-2), b_flat)
        return y + self.scaling * delta.to(y.dtype)

    # ------------------------------------------------------------ merge
    @torch.no_grad()
    def merge(self) -> None:
        """Fold the adapters (with the current fixed weights) into ``base.weight``."""
        if self.merged:
            return
        w = self._fixed_weights()
        self.base.weight.add_(self.delta_weight(w).to(self.base.weight.dtype))
        self.merged_weights = w

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the merged delta from ``base.weight``."""
        if self.merged_weights is None:
            return
        self.base.weight.sub_(self.delta_weight(self.merged_weights).to(self.base.weight.dtype))
        self.merged_weights = None


# ---------------------------------------------------------------- model-level helpers
def _matches(name: str, pattern: str) -> bool:
    """fnmatch pattern, exact name, or dotted suffix (``"qkv"`` matches ``"blocks.0.attn.qkv"``)."""
    return fnmatch.fnmatchcase(name, pattern) or name == pattern or name.endswith("." + pattern)


def lora_modules(model: nn.Module) -> Iterator[tuple[str, LoRALinear]]:
    """``(name, module)`` for every LoRALinear in ``model``."""
    for name, m in model.named_modules():
        if isinstance(m, LoRALinear):
            yield name, m


def inject_lora(
    model: nn.Module,
    targets: Sequence[str],
    r: int = 8,
    alpha: float = 16,
    dropout: float = 0.0,
    n_adapters: int = 1,
    init: str = "kaiming",
) -> list[str]:
    """Replace every ``nn.Linear`` whose name matches one of ``targets`` by a ``LoRALinear``.

    Args:
        model: modified in place.
        targets: fnmatch patterns (``"*.qkv"``) or plain names / dotted suffixes (``"qkv"``),
            matched against ``model.named_modules()`` names.
        r, alpha, dropout, n_adapters, init: see ``LoRALinear``.

    Returns:
        The names of the replaced modules.

    Raises:
        ValueError: nothing matched (the message lists some Linear module names).
        TypeError: a match is the ``out_proj`` of ``nn.MultiheadAttention`` (which bypasses its
            forward).
    """
    if isinstance(targets, str):
        targets = [targets]
    found: list[tuple[str, nn.Linear]] = []
    linear_names: list[str] = []
    for name, m in model.named_modules():
        if not isinstance(m, nn.Linear) or (name and isinstance(_parent(model, name), LoRALinear)):
            continue
        linear_names.append(name)
        if any(_matches(name, t) for t in targets):
            found.append((name, m))
    if not found:
        shown = ", ".join(linear_names[:20]) + (" ..." if len(linear_names) > 20 else "")
        raise ValueError(
            f"inject_lora: no nn.Linear matched targets {list(targets)}; Linear modules in the model: "
            f"[{shown or 'none'}]"
        )
    for name, m in found:
        parent = _parent(model, name)
        if isinstance(parent, nn.MultiheadAttention):
            raise TypeError(
                f"inject_lora: {name!r} is the out_proj of nn.MultiheadAttention, whose forward reads "
                "the weight directly; LoRA there would have no effect"
            )
        setattr(parent, name.rsplit(".", 1)[-1], LoRALinear(m, r=r, alpha=alpha, dropout=dropout, n_adapters=n_adapters, init=init))
    return [name for name, _ in found]


def _parent(model: nn.Module, name: str) -> nn.Module:
    if "." not in name:
        return model
    return model.get_submodule(name.rsplit(".", 1)[0])


def set_mixing_weights(model: nn.Module, weights: Tensor | None, names: Sequence[str] | None = None) -> None:
    """Set the mixing weights of the LoRA layers.

    Args:
        model: a model with LoRA layers.
        weights: ``None`` (equal ``1/K``), ``(K,)`` or ``(B, K)``; see the module docstring.
        names: optional fnmatch patterns / suffixes restricting which LoRA layers are set.
            Without it, every layer with ``K == weights.shape[-1]`` is set, and single-adapter
            layers (``K == 1``) are left alone when ``weights`` has more columns (so PETALface's
            plain LoRA on the feature projection keeps weight 1).

    Raises:
        ValueError: a multi-adapter layer's ``K`` does not match ``weights.shape[-1]``, or the
            weights are not 1-D / 2-D.
    """
    if weights is not None and weights.dim() not in (1, 2):
        raise ValueError(f"mixing weights must be (K,) or (B, K), got shape {tuple(weights.shape)}")
    for name, m in lora_modules(model):
        if names is not None and not any(_matches(name, p) for p in names):
            continue
        if weights is None:
            m.mixing = None
            continue
        k = weights.shape[-1]
        if k != m.n_adapters:
            if m.n_adapters == 1 and names is None:
                continue
            raise ValueError(f"LoRA layer {name!r} has {m.n_adapters} adapters but the weights have {k} columns")
        m.mixing = weights


@contextlib.contextmanager
def mixing_weights(model: nn.Module, weights: Tensor | None, names: Sequence[str] | None = None) -> Iterator[None]:
    """Context manager: ``set_mixing_weights`` inside, the previous weights restored on exit."""
    saved = {name: m.mixing for name, m in lora_modules(model)}
    try:
        set_mixing_weights(model, weights, names=names)
        yield
    finally:
        for name, m in lora_modules(model):
            m.mixing = saved.get(name)


def mark_only_lora_trainable(model: nn.Module, extra: Sequence[str] = ()) -> None:
    """``requires_grad`` True only for LoRA parameters and parameters matching ``extra``.

    ``extra`` entries are fnmatch patterns, exact parameter names, dotted suffixes, or module
    prefixes (``"head"`` makes ``head.weight`` and ``head.0.bias`` trainable).
    """
    for name, p in model.named_parameters():
        is_lora = name.rsplit(".", 1)[-1].startswith("lora_")
        is_extra = any(_matches(name, e) or name.startswith(e + ".") for e in extra)
        p.requires_grad_(is_lora or is_extra)


def merge_lora(model: nn.Module) -> None:
    """Merge every LoRA layer into its base weight (needs ``K == 1`` or fixed weights)."""
    for _, m in lora_modules(model):
        m.merge()


def unmerge_lora(model: nn.Module) -> None:
    """Undo ``merge_lora``."""
    for _, m in lora_modules(model):
        m.unmerge()


def lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The LoRA parameters only (``...lora_A``, ``...lora_B``), detached."""
    return {k: v.detach() for k, v in model.state_dict().items() if k.rsplit(".", 1)[-1].startswith("lora_")}


def trainable_report(model: nn.Module) -> dict[str, Any]:
    """Parameter counts.

    Returns:
        ``{"total", "trainable", "percent", "lora_layers", "per_module": {child: {"total",
        "trainable"}}}`` where ``per_module`` groups by top-level child (``"<root>"`` for the
        model's own parameters). Shared parameters are counted once.
    """
    seen: set[int] = set()
    total = trainable = 0
    per: dict[str, dict[str, int]] = {}
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel()
        key = name.split(".", 1)[0] if "." in name else "<root>"
        entry = per.setdefault(key, {"total": 0, "trainable": 0})
        entry["total"] += n
        total += n
        if p.requires_grad:
            entry["trainable"] += n
            trainable += n
    return {
        "total": total,
        "trainable": trainable,
        "percent": 100.0 * trainable / total if total else 0.0,
        "lora_layers": sum(1 for _ in lora_modules(model)),
        "per_module": per,
    }


def format_report(report: dict[str, Any]) -> str:
    """A small text table of ``trainable_report``."""
    head = (
        f"trainable {report['trainable']:,} / {report['total']:,} parameters ({report['percent']:.2f}%), "
        f"{report.get('lora_layers', 0)} LoRA layers"
    )
    lines = [head]
    per = report.get("per_module", {})
    if per:
        width = max(len(k) for k in per)
        lines.append(f"  {'module'.ljust(width)}  {'trainable':>12}  {'total':>12}")
        for k, v in per.items():
            lines.append(f"  {k.ljust(width)}  {v['trainable']:>12,}  {v['total']:>12,}")
    return "\n".join(lines)
