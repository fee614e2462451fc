"""The heights example: maximum likelihood with labels known, EM with labels hidden.

Run it with ``python -m emix.demo`` (options: ``--n-boys``, ``--n-girls``, ``--seed``).

Part 1 fits a normal distribution to each group separately, which is what maximum
likelihood means when every person's group is known. Part 2 throws the labels away and
lets EM fit a two-component Gaussian mixture to the pooled heights; because the data are
simulated, both parts can be compared with the values that generated them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np

from emix._text import paragraph as _para
from emix._text import table
from emix.datasets import HeightsData, load_heights
from emix.mle import fit_normal

__all__ = ["coins_report", "heights_report", "main", "regimes_report"]


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], n_labels: int = 1
) -> list[str]:
    # The demo's tables are wider-spaced than explain's: they have few, long columns.
    return table(header, rows, n_labels=n_labels, indent="  ", sep="   ")


def _groups(data: HeightsData) -> list[tuple[str, np.ndarray, float, float, float]]:
    """``(name, mask of shape (n,), true weight, true mean, true sd)``, by true mean.

    Ordering by the true mean is what lets Part 2 pair each fitted component with a group:
    EM's component numbering is arbitrary, but sorted means line up.
    """
    t = data.truth
    groups = [
        ("girls", ~data.is_boy, t.girls_weight, t.girls_mean, t.girls_sd),
        ("boys", data.is_boy, t.boys_weight, t.boys_mean, t.boys_sd),
    ]
    return sorted(groups, key=lambda g: g[3])


def _part_labels_known(data: HeightsData) -> list[str]:
    rows = []
    for name, mask, _, true_mean, true_sd in _groups(data):
        res = fit_normal(data.heights[mask])
        rows.append(
            (
                name,
                str(int(mask.sum())),
                f"{true_mean:.1f}",
                f"{res.params['mean']:.2f} ± {res.stderr['mean']:.2f}",
                f"{true_sd:.1f}",
                f"{res.params['sd']:.2f} ± {res.stderr['sd']:.2f}",
            )
        )
    header = ("group", "n", "true mean", "MLE mean", "true sd", "MLE sd")
    return [
        "Part 1. Labels known: maximum likelihood for each group",
        "",
        _para(
            """With every person's group known, each group's mean and standard deviation
            have closed-form maximum-likelihood estimates: the group's average, and the
            root mean squared deviation from it (dividing by n, not n - 1). The number
            after ± is one standard error, from the curvature of the log-likelihood;
            estimate ± 2 standard errors covers the truth about 95% of the time."""
        ),
        "",
        *_table(header, rows),
    ]


def _true_mean_loglik(data: HeightsData) -> float:
    """Mean log-likelihood per person of the pooled heights under the true mixture."""
    x = np.asarray(data.heights, dtype=np.float64)
    # Log-sum-exp over the two groups, so that far-out heights do not underflow to log(0).
    terms = []
    for _, _, weight, mean, sd in _groups(data):
        if weight > 0:
            z = (x - mean) / sd
            terms.append(math.log(weight) - 0.5 * z * z - math.log(sd * math.sqrt(2 * math.pi)))
    stacked = np.stack(terms)
    top = stacked.max(axis=0)
    return float(np.mean(top + np.log(np.exp(stacked - top).sum(axis=0))))


def _part_labels_hidden(data: HeightsData, n_init: int = 5) -> tuple[list[str], object]:
    """Part 2's lines, and the fitted mixture they describe."""
    # Imported here, not at the top: the estimator pulls in the EM engine, which Part 1
    # does not need, and `python -m emix.demo --help` should not pay for it.
    from emix import GaussianMixture

    gm = GaussianMixture(n_components=2, random_state=0, n_init=n_init)
    gm.fit(data.heights)

    weights = np.asarray(gm.weights_, dtype=np.float64).ravel()
    means = np.asarray(gm.means_, dtype=np.float64).ravel()
    sds = np.sqrt(np.asarray(gm.covariances_, dtype=np.float64).ravel())
    order = np.argsort(means)

    header = ("group", "parameter", "true", "EM estimate")
    rows = []
    for (name, _, true_w, true_mean, true_sd), k in zip(_groups(data), order):
        rows += [
            (name, "weight", f"{true_w:.3f}", f"{weights[k]:.3f}"),
            ("", "mean (cm)", f"{true_mean:.1f}", f"{means[k]:.2f}"),
            ("", "sd (cm)", f"{true_sd:.1f}", f"{sds[k]:.2f}"),
        ]

    converged = "yes" if bool(gm.converged_) else "no (it stopped at max_iter)"
    em_ll = float(gm.lower_bound_)
    true_ll = _true_mean_loglik(data)
    if em_ll >= true_ll:
        ll_note = (
            "EM's value is the higher one, as it should be: maximum likelihood fits this "
            "particular sample, noise included, so it beats the parameters that generated it."
        )
    else:
        ll_note = (
            "EM's value is lower than the truth's, so it stopped at a local maximum; more "
            "restarts (n_init) would help."
        )

    return [
        "Part 2. Labels hidden: EM on the pooled heights",
        "",
        _para(
            f"""Now forget who is a boy and who is a girl, and keep only the {data.n}
            heights. They come from a mixture of two normal curves, but nobody says which
            curve each height came from. EM starts from a guess of the two curves and
            repeats two steps. E-step: for every person, compute the probability that
            they belong to each curve, given the current guess. M-step: re-estimate each
            curve's weight, mean and standard deviation as averages in which every person
            counts in proportion to those probabilities. Neither step can lower the
            likelihood, so the guesses improve until they stop changing. EM was started
            {n_init} times from different guesses and the best run kept."""
        ),
        "",
        *_table(header, rows, n_labels=2),
        "",
        f"  EM iterations (best run): {int(gm.n_iter_)}",
        f"  converged:                {converged}",
        f"  mean log-likelihood per person, EM fit:          {em_ll:.4f}",
        f"  mean log-likelihood per person, true parameters: {true_ll:.4f}",
        "",
        _para(ll_note),
        "",
        _para(
            """Components were matched to groups by sorting on the mean: EM numbers its
            components arbitrarily. Without labels, EM also has to work out who belongs
            where, and the two groups overlap heavily (the means are less than two
            standard deviations apart), so its estimates are less precise than those of
            Part 1; the gap shrinks as the groups move apart or the sample grows."""
        ),
    ], gm


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m emix.demo",
        description="Heights of boys and girls: maximum likelihood, then EM.",
    )
    parser.add_argument("--n-boys", type=int, default=100, help="number of boys (100)")
    parser.add_argument("--n-girls", type=int, default=100, help="number of girls (100)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the simulated data (0)")
    args = parser.parse_args(argv)
    # A normal fit needs two distinct heights per group, and a two-component mixture at
    # least two points; say so up front rather than fail halfway through the printout.
    for flag, value in (("--n-boys", args.n_boys), ("--n-girls", args.n_girls)):
        if value < 2:
            parser.error(f"{flag} must be at least 2, got {value}")
    return args


def heights_report(
    n_boys: int = 100, n_girls: int = 100, seed: int = 0
) -> tuple[str, HeightsData, object]:
    """The heights example as text, with the data and the fitted mixture.

    Parameters
    ----------
    n_boys, n_girls : int, default=100
        Group sizes, at least 2 each.
    seed : int, default=0
        Seed of the simulated heights.

    Returns
    -------
    text : str
        The report :func:`main` prints.
    data : HeightsData
        The simulated sample (``data.heights`` of shape (n_boys + n_girls,)).
    model : GaussianMixture
        The two-component mixture fitted in Part 2 (for a figure, say).
    """
    data = load_heights(n_boys=n_boys, n_girls=n_girls, random_state=seed)
    t = data.truth
    title = f"Heights of {n_boys} boys and {n_girls} girls (simulated, seed {seed})"
    intro = _para(
        f"""Boys' heights were drawn from a normal distribution with mean {t.boys_mean:.1f}
        cm and standard deviation {t.boys_sd:.1f} cm, girls' from mean {t.girls_mean:.1f}
        cm and standard deviation {t.girls_sd:.1f} cm. Because we made the data, we know
        the answers, and can check how close each method gets."""
    )
    hidden, model = _part_labels_hidden(data)
    lines = [
        title,
        "=" * len(title),
        "",
        intro,
        "",
        *_part_labels_known(data),
        "",
        "",
        *hidden,
    ]
    return "\n".join(lines), data, model


def coins_report(n_sets: int = 200, seed: int = 0) -> tuple[str, object, object]:
    """The two-coins example as text: biases with the coins known, then EM without.

    Parameters
    ----------
    n_sets : int, default=200
        Sets of 10 flips (:func:`emix.datasets.load_two_coins`); each coin needs a
        few sets of its own.
    seed : int, default=0
        Seed of the simulated flips.

    Returns
    -------
    text : str
    data : CoinsData
        ``data.heads`` of shape (n_sets,).
    model : BinomialMixture
        The two-component mixture fitted with the coins hidden.
    """
    from emix.datasets import load_two_coins
    from emix.mle import fit_binomial
    from emix.models.binomial import BinomialMixture

    data = load_two_coins(n_sets=n_sets, random_state=seed)
    t = data.truth
    title = (
        f"Two coins: {data.n_sets} sets of {data.n_flips} flips (simulated, seed {seed})"
    )
    names = ("A", "B")
    known_rows = []
    for c, name in enumerate(names):
        mask = data.coin == c
        heads = data.heads[mask]
        if mask.sum() == 0 or heads.sum() in (0, mask.sum() * data.n_flips):
            est = "-"  # no sets, or all heads / all tails: no standard error exists
            if mask.sum():
                est = f"{heads.sum() / (mask.sum() * data.n_flips):.3f}"
        else:
            res = fit_binomial(heads, n_trials=data.n_flips)
            est = f"{res.params['p']:.3f} ± {res.stderr['p']:.3f}"
        known_rows.append((name, str(int(mask.sum())), f"{t.biases[c]:.3f}", est))

    bm = BinomialMixture(2, n_trials=data.n_flips, random_state=0, n_init=5)
    bm.fit(data.heads)
    # EM numbers its coins arbitrarily: the one with the higher bias is matched with the
    # true coin of higher bias.
    fit_rank = np.argsort(np.argsort(bm.probs_))
    true_by_rank = np.argsort(t.biases)
    order = [int(np.flatnonzero(true_by_rank[fit_rank] == c)[0]) for c in range(2)]
    hidden_rows = []
    for c, name in enumerate(names):
        k = order[c]
        hidden_rows += [
            (f"coin {name}", "weight", f"{t.weights[c]:.3f}", f"{bm.weights_[k]:.3f}"),
            ("", "P(heads)", f"{t.biases[c]:.3f}", f"{bm.probs_[k]:.3f}"),
        ]
    guessed = bm.predict(data.heads)
    right = float(np.mean(np.asarray(order)[data.coin] == guessed))
    lines = [
        title,
        "=" * len(title),
        "",
        _para(
            f"""Each set of {data.n_flips} flips was made with coin A (probability of heads
            {t.biases[0]:.2f}, picked with probability {t.weights[0]:.2f}) or coin B
            (probability of heads {t.biases[1]:.2f}). Only the number of heads in each set
            is kept."""
        ),
        "",
        "Part 1. Coins known: maximum likelihood for each coin",
        "",
        _para(
            """With the coin of every set known, each coin's bias is estimated by its share
            of heads over all its flips; ± is one standard error."""
        ),
        "",
        *_table(("coin", "sets", "true P(heads)", "MLE"), known_rows),
        "",
        "",
        "Part 2. Coins hidden: EM on the head counts",
        "",
        _para(
            """Now forget which coin made each set. EM starts from a guess of both biases
            and repeats: E-step, for every set the probability that each coin made it;
            M-step, each coin's bias from the heads and flips credited to it in proportion
            to those probabilities. (`emix explain coins` prints every step.)"""
        ),
        "",
        *_table(("coin", "parameter", "true", "EM estimate"), hidden_rows, n_labels=2),
        "",
        f"  EM iterations (best run): {int(bm.n_iter_)}",
        f"  converged:                {'yes' if bm.converged_ else 'no'}",
        f"  sets assigned to their true coin by the fitted model: {right:.1%}",
        "",
        _para(
            """Sets of ten flips with 6 or 7 heads could have come from either coin, so even
            perfect estimates of the biases cannot say which coin made every set."""
        ),
    ]
    return "\n".join(lines), data, bm


def regimes_report(n_days: int = 1500, seed: int = 0) -> tuple[str, object]:
    """The market-regimes example as text, with its result.

    Synthetic prices that switch between a calm and a volatile regime on known dates
    (:func:`emix.datasets.load_regime_prices`), fitted by a two-state Gaussian HMM
    (:func:`emix.finance.demo_regimes`).

    Parameters
    ----------
    n_days : int, default=1500
    seed : int, default=0
        Seeds the prices and the fit.

    Returns
    -------
    text : str
    result : emix.finance.RegimeResult
        ``result.plot()`` draws the prices with the regimes shaded.
    """
    import io

    from emix.finance import demo_regimes

    buf = io.StringIO()
    result = demo_regimes(None, n_days=n_days, random_state=seed, file=buf)
    title = f"Market regimes in {n_days} days of synthetic prices (seed {seed})"
    return f"{title}\n{'=' * len(title)}\n\n{buf.getvalue()}", result


def main(argv: Sequence[str] | None = None) -> int:
    """Print the heights example.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    int
        Exit status, 0 on success.
    """
    args = _parse_args(argv)
    text, _, _ = heights_report(args.n_boys, args.n_girls, args.seed)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
