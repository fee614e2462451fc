"""An independent product of families over groups of columns: mixtures of mixed data.

Within a component the column groups are independent, so the log-density is the sum of
the parts' log-densities. Each part is an exponential family, so the product is one too:
its feature map stacks the parts' feature rows, its natural parameters concatenate the
parts' (in the same order), and its log-normaliser and base measure are sums. The
M-step splits the statistics ``S`` (K, M) back into each part's block of feature
columns; each part's M-step then sees exactly what it would see alone.

Parameters are one flat dict (``"0:means"``, ``"1:rates"``: part index, then the part's
own name), so renumbering and saving components works as for any family;
:meth:`Product.nested` gives the per-part view (``{"gaussian": {"means": ...}}``).
"""

from __future__ import annotations

import numbers

import numpy as np

from ..exceptions import InputError
from ._base import Family, MixtureStats

__all__ = ["Product"]

_SEP = ":"


def _has_transform(fam: Family) -> bool:
    return type(fam).transform is not Family.transform or bool(fam.extra_stats)


class Product(Family):
    """Independent families over disjoint groups of columns.

    Parameters
    ----------
    parts : sequence of (Family, columns)
        Each family reads its ``columns``: integer positions in the model's data, or
        column names, which :meth:`resolve` turns into positions before binding.

    Attributes
    ----------
    parts : list of (Family, ndarray of int)
        After :meth:`resolve`, each part's column positions (sorted as given).
    labels : list of str
        One name per part (its family's name, numbered when repeated): the keys of
        :meth:`nested` and of an estimator's ``params_``.
    """

    name = "product"

    def __init__(self, parts):
        super().__init__()
        parts = list(parts)
        if not parts:
            raise InputError("a product of families needs at least one (family, columns) part")
        seen: dict = {}
        clean = []
        for i, part in enumerate(parts):
            if not (isinstance(part, (tuple, list)) and len(part) == 2):
                raise InputError(
                    f"part {i} of the product must be a (family, columns) pair; got {part!r}"
                )
            fam, cols = part
            if not isinstance(fam, Family):
                raise InputError(
                    f"part {i} of the product: expected a Family object; got "
                    f"{type(fam).__name__} (use emix.families.get_family for names)"
                )
            if isinstance(fam, Product):
                raise InputError(f"part {i} of the product is itself a product; flatten it")
            if _has_transform(fam):
                # A latent-scale family reweights its own statistics row by row; inside
                # a product that weight would have to apply to the other parts too,
                # which is no longer an independent product.
                raise InputError(
                    f"part {i} of the product is a {fam.name} family, which is not an "
                    "exponential family (it reweights rows by latent scales) and cannot be a "
                    "part of an independent product; fit it alone, or use 'gaussian' there"
                )
            if isinstance(cols, (str, numbers.Integral)):
                cols = [cols]
            cols = list(cols)
            if not cols:
                raise InputError(f"part {i} of the product ({fam.name}) has no columns")
            for c in cols:
                if c in seen:
                    raise InputError(
                        f"column {c!r} is in parts {seen[c]} and {i} of the product; each "
                        "column belongs to one part"
                    )
                seen[c] = i
            clean.append((fam, cols))
        self.parts = clean
        self.param_names = tuple(
            f"{i}{_SEP}{p}" for i, (fam, _) in enumerate(clean) for p in fam.param_names
        )
        self.shared_param_names = tuple(
            f"{i}{_SEP}{p}" for i, (fam, _) in enumerate(clean) for p in fam.shared_param_names
        )
        names = [fam.name for fam, _ in clean]
        self.labels = [
            n if names.count(n) == 1 else f"{n}_{names[: i + 1].count(n)}"
            for i, n in enumerate(names)
        ]

    # -------------------------------------------------------------- configuration
    def get_config(self) -> dict:
        return {
            "parts": [
                {"family": fam.name, "config": fam.get_config(), "columns": _plain(cols)}
                for fam, cols in self.parts
            ]
        }

    def __repr__(self) -> str:
        inner = ", ".join(f"({fam!r}, {_plain(cols)!r})" for fam, cols in self.parts)
        return f"Product([{inner}])"

    @property
    def columns(self) -> list:
        """Every column the product reads, in the order of the parts."""
        return [c for _, cols in self.parts for c in cols]

    def resolve(self, names=None, n_columns: int | None = None) -> "Product":
        """A copy whose columns are integer positions.

        Parameters
        ----------
        names : sequence of str, optional
            Column names of the data (a DataFrame's); a str column is looked up here.
        n_columns : int, optional
            Width of the data, to check integer positions.
        """
        index = {} if names is None else {str(n): j for j, n in enumerate(names)}
        parts = []
        for i, (fam, cols) in enumerate(self.parts):
            pos = []
            for c in cols:
                if isinstance(c, str):
                    if names is None:
                        raise InputError(
                            f"part {i} of the product names column {c!r}, but X has no "
                            "column names; pass a DataFrame or use integer positions"
                        )
                    if c not in index:
                        raise InputError(
                            f"part {i} of the product names column {c!r}, which X does not "
                            f"have; its columns are {list(names)}"
                        )
                    pos.append(index[c])
                elif isinstance(c, numbers.Integral) and not isinstance(c, bool):
                    c = int(c)
                    if n_columns is not None and not 0 <= c < n_columns:
                        raise InputError(
                            f"part {i} of the product uses column {c}, but X has "
                            f"{n_columns} columns"
                        )
                    pos.append(c)
                else:
                    raise InputError(
                        f"part {i} of the product: columns must be names or integer "
                        f"positions; got {c!r}"
                    )
            parts.append((fam, pos))
        out = Product(parts)
        out.n_features = self.n_features
        return out

    def relabel(self, mapping: dict) -> "Product":
        """A copy with every integer column ``c`` replaced by ``mapping[c]``."""
        out = Product([(fam, [mapping[c] for c in cols]) for fam, cols in self.parts])
        out.n_features = self.n_features
        return out

    def bind(self, summary: dict, n_features: int) -> "Product":
        n_features = int(n_features)
        cols = self.columns
        if any(not isinstance(c, numbers.Integral) for c in cols):
            raise InputError("resolve the product's column names before binding it")
        if sorted(cols) != list(range(n_features)):
            missing = sorted(set(range(n_features)) - set(cols))
            raise InputError(
                f"the product's parts must cover the data's {n_features} columns exactly; "
                f"columns {missing} are in no part"
            )
        parts = []
        for fam, c in self.parts:
            idx = np.asarray(c, dtype=np.intp)
            sub = {
                k: (v[idx] if isinstance(v, np.ndarray) and v.shape[:1] == (n_features,) else v)
                for k, v in summary.items()
            }
            parts.append((fam.bind(sub, len(c)), list(c)))
        out = Product(parts)
        out.n_features = n_features
        out._index = [_indexer(c) for _, c in parts]
        out._widths = [fam.feature_width() for fam, _ in parts]
        return out

    # -------------------------------------------------------------- data
    def check_support(self, X, names=None):
        for fam, cols in self.parts:
            idx = np.asarray(cols, dtype=np.intp)
            sub_names = (
                np.asarray([int(c) for c in cols], dtype=object) if names is None else np.asarray(names)[idx]
            )
            fam.check_support(X[:, idx], sub_names)

    # -------------------------------------------------------------- exponential form
    def feature_width(self) -> int:
        return int(sum(self._widths))

    def features(self, ops, Xb):
        blocks = [fam.features(ops, Xb[:, ix]) for (fam, _), ix in zip(self.parts, self._index)]
        return blocks[0] if len(blocks) == 1 else ops.concat(blocks, axis=0)

    def log_base(self, ops, Xb):
        total = None
        for (fam, _), ix in zip(self.parts, self._index):
            h = fam.log_base(ops, Xb[:, ix])
            if h is not None:
                total = h if total is None else total + h
        return total

    def natural(self, params):
        etas, A = [], 0.0
        for i, (fam, _) in enumerate(self.parts):
            eta, a = fam.natural(self.part_params(params, i))
            etas.append(np.asarray(eta, dtype=np.float64))
            A = A + np.asarray(a, dtype=np.float64)
        return np.concatenate(etas, axis=1), A

    # -------------------------------------------------------------- missing values
    # The parts are independent, so the observed part's log-density is the sum of the
    # parts' and the expected statistics stack: each part handles its own columns
    # through its own hooks (a full-covariance Normal part included).
    def missing_state(self, ops, params):
        return [fam.missing_state(ops, self.part_params(params, i))
                for i, (fam, _) in enumerate(self.parts)]

    def missing_log_joint(self, ops, mstate, Xb, O):
        L, ctx = None, []
        for (fam, _), ix, st in zip(self.parts, self._index, mstate):
            Lp, cp = fam.missing_log_joint(ops, st, Xb[:, ix], O[:, ix])
            L = Lp if L is None else L + Lp
            ctx.append(cp)
        return L, ctx

    def missing_context(self, ops, mstate, Xb, O):
        return [fam.missing_context(ops, st, Xb[:, ix], O[:, ix])
                for (fam, _), ix, st in zip(self.parts, self._index, mstate)]

    def missing_stats(self, ops, mstate, ctx, R):
        blocks = [fam.missing_stats(ops, st, cp, R)[0]
                  for (fam, _), st, cp in zip(self.parts, mstate, ctx)]
        return (blocks[0] if len(blocks) == 1 else ops.concat(blocks, axis=1)), {}

    def missing_features(self, ops, Xb, O):
        pairs = [fam.missing_features(ops, Xb[:, ix], O[:, ix])
                 for (fam, _), ix in zip(self.parts, self._index)]
        if len(pairs) == 1:
            return pairs[0]
        return (ops.concat([p[0] for p in pairs], axis=0),
                ops.concat([p[1] for p in pairs], axis=0))

    def start_features(self, ops, Xb, O):
        blocks = [fam.start_features(ops, Xb[:, ix], O[:, ix])
                  for (fam, _), ix in zip(self.parts, self._index)]
        return blocks[0] if len(blocks) == 1 else ops.concat(blocks, axis=0)

    def conditional_means(self, params, X, O):
        out = None
        for i, (fam, cols) in enumerate(self.parts):
            idx = np.asarray(cols, dtype=np.intp)
            part = fam.conditional_means(self.part_params(params, i), X[:, idx], O[:, idx])
            if out is None:
                out = np.empty((part.shape[0],) + X.shape)
            out[:, :, idx] = part
        return out

    def conditional_draw(self, params, X, O, z, rng):
        out = np.array(X, dtype=np.float64, copy=True)
        for i, (fam, cols) in enumerate(self.parts):
            idx = np.asarray(cols, dtype=np.intp)
            out[:, idx] = fam.conditional_draw(self.part_params(params, i), X[:, idx],
                                               O[:, idx], z, rng)
        return out

    # -------------------------------------------------------------- parameters
    def part_params(self, params: dict, i: int) -> dict:
        """Part ``i``'s own parameter dict from the flat one."""
        fam = self.parts[i][0]
        return {p: params[f"{i}{_SEP}{p}"] for p in fam.param_names}

    def nested(self, params: dict) -> dict:
        """``{label: part params}`` from the flat dict."""
        return {label: self.part_params(params, i) for i, label in enumerate(self.labels)}

    def flatten(self, nested: dict) -> dict:
        """The flat dict from ``{label: part params}`` (a flat dict passes through)."""
        if set(nested) <= set(self.param_names):
            return dict(nested)
        unknown = sorted(set(nested) - set(self.labels))
        if unknown:
            raise InputError(
                f"product parameters are keyed by part: {self.labels}; got unknown keys "
                f"{unknown}"
            )
        out = {}
        for i, label in enumerate(self.labels):
            if label not in nested:
                raise InputError(f"product parameters need part {label!r}")
            for p, v in dict(nested[label]).items():
                out[f"{i}{_SEP}{p}"] = v
        return out

    # -------------------------------------------------------------- M-step
    def _split(self, stats: MixtureStats) -> list:
        """Each part's statistics: its block of feature columns of ``S``."""
        out, off = [], 0
        for width in self._widths:
            out.append(
                MixtureStats(
                    S=stats.S[:, off : off + width],
                    nk=stats.nk,
                    loglik=stats.loglik,
                    weight_sum=stats.weight_sum,
                    n_rows=stats.n_rows,
                )
            )
            off += width
        return out

    def reg_gap(self, stats: MixtureStats) -> float:
        """The most the parts' regularised M-steps may lower the mean log-likelihood
        (the log-likelihood is a sum over parts, so their allowances add)."""
        return float(
            sum(
                fam.reg_gap(sub)
                for (fam, _), sub in zip(self.parts, self._split(stats))
                if hasattr(fam, "reg_gap")
            )
        )

    def m_step(self, stats: MixtureStats, previous):
        out, issues = {}, []
        for i, ((fam, _), sub) in enumerate(zip(self.parts, self._split(stats))):
            prev = None if previous is None else self.part_params(previous, i)
            params, part_issues = fam.m_step(sub, prev)
            out.update({f"{i}{_SEP}{p}": v for p, v in params.items()})
            issues.extend(f"{self.labels[i]} part: {msg}" for msg in part_issues)
        return out, issues

    def n_parameters(self, n_components):
        return int(sum(fam.n_parameters(n_components) for fam, _ in self.parts))

    def sample(self, params, k, n, rng):
        X = np.empty((n, self.n_features))
        for i, (fam, cols) in enumerate(self.parts):
            X[:, np.asarray(cols, dtype=np.intp)] = fam.sample(self.part_params(params, i), k, n, rng)
        return X

    def component_means(self, params):
        parts = [fam.component_means(self.part_params(params, i)) for i, (fam, _) in enumerate(self.parts)]
        K = parts[0].shape[0]
        M = np.empty((K, self.n_features))
        for (_, cols), m in zip(self.parts, parts):
            M[:, np.asarray(cols, dtype=np.intp)] = m
        return M

    def validate_params(self, params, n_components):
        flat = self.flatten(params)
        out = {}
        for i, (fam, _) in enumerate(self.parts):
            try:
                checked = fam.validate_params(self.part_params(flat, i), n_components)
            except KeyError as exc:
                raise InputError(f"part {self.labels[i]!r} needs parameter {exc.args[0]!r}") from None
            out.update({f"{i}{_SEP}{p}": v for p, v in checked.items()})
        return out


def _indexer(cols):
    """A slice for contiguous columns (a view on NumPy and torch), else the list."""
    if list(cols) == list(range(cols[0], cols[0] + len(cols))):
        return slice(cols[0], cols[0] + len(cols))
    return list(cols)


def _plain(cols):
    return [c if isinstance(c, str) else int(c) for c in cols]
