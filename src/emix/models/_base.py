"""The scikit-learn estimator protocol, implemented without importing scikit-learn.

scikit-learn is a test-only dependency of emix, so estimators cannot inherit
``BaseEstimator``; this module gives the same behaviour: ``get_params``/``set_params``
read from ``__init__``'s signature, a repr showing non-default parameters, estimator tags
built lazily (only scikit-learn ever asks for them), and the feature-name checks.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np

from ..exceptions import InputError, NotFittedError, sklearn_compatible

__all__ = ["EstimatorBase"]


class EstimatorBase:
    """Parameter handling and fitted-state checks shared by emix's estimators."""

    _estimator_type = "density_estimator"

    @classmethod
    def _get_param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return sorted(
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )

    def get_params(self, deep: bool = True) -> dict:
        """Constructor parameters as a dict (``deep`` is accepted for compatibility)."""
        out = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{name}__{k}", v) for k, v in value.get_params().items())
            out[name] = value
        return out

    def set_params(self, **params):
        """Set constructor parameters; unknown names raise an error listing valid ones."""
        valid = self._get_param_names()
        for key, value in params.items():
            if key not in valid:
                raise InputError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}(). "
                    f"Valid parameters are: {valid!r}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name in self._get_param_names():
            default = sig.parameters[name].default
            value = getattr(self, name, default)
            try:
                same = value is default or bool(value == default)
            except Exception:  # arrays compare elementwise
                same = False
            if not same:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __sklearn_tags__(self):
        # Only scikit-learn calls this, so importing it here costs emix nothing.
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type=self._estimator_type,
            target_tags=TargetTags(required=False),
            input_tags=InputTags(two_d_array=True),
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "n_features_in_")

    def _check_is_fitted(self, method: str) -> None:
        if not self.__sklearn_is_fitted__():
            raise sklearn_compatible(NotFittedError, "NotFittedError")(
                f"This {type(self).__name__} instance is not fitted yet; call fit before "
                f"{method}."
            )

    # ------------------------------------------------------------ feature names
    def _set_feature_names(self, names) -> None:
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def _check_feature_names(self, names) -> None:
        fitted = getattr(self, "feature_names_in_", None)
        cls = type(self).__name__
        if fitted is None and names is None:
            return
        if names is not None and fitted is None:
            warnings.warn(
                f"X has feature names, but {cls} was fitted without feature names",
                UserWarning,
                stacklevel=3,
            )
            return
        if names is None and fitted is not None:
            warnings.warn(
                f"X does not have valid feature names, but {cls} was fitted with feature "
                "names",
                UserWarning,
                stacklevel=3,
            )
            return
        if len(names) != len(fitted) or np.any(names != fitted):
            unseen = sorted(set(names) - set(fitted))
            missing = sorted(set(fitted) - set(names))
            msg = "The feature names should match those that were passed during fit.\n"
            if unseen:
                msg += f"Feature names unseen at fit time: {unseen}\n"
            if missing:
                msg += f"Feature names seen at fit time, yet now missing: {missing}\n"
            if not unseen and not missing:
                msg += "Feature names must be in the same order as they were in fit.\n"
            raise InputError(msg)
