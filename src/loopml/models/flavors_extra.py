"""Model flavors for XGBoost, LightGBM and PyTorch, each stored in its library's own format.

- ``xgboost``: ``XGBClassifier``, ``XGBRegressor`` and ``Booster``, saved as native JSON
  (``model.json``) and rebuilt from a whitelist of xgboost classes.
- ``lightgbm``: ``LGBMClassifier``, ``LGBMRegressor`` and ``Booster``, saved as the booster's
  native text (``model.txt``); a classifier's labels are kept as JSON in the manifest so the
  loaded model answers with the original labels.
- ``torch``: a ``torch.nn.Module`` saved as TorchScript (``model.pt``: scripted, or traced on
  the input example when scripting fails), or else as a ``state_dict`` (``state_dict.pt``)
  plus an import reference to the module's class.

None of these formats is a pickle of arbitrary Python objects. Every library is imported only
when one of its models is saved or loaded, and :meth:`matches` never imports one: loopml works
without any of them installed.

The flavors join the registry through :func:`register_extra_flavors`, ahead of the scikit-learn
flavor (XGBoost and LightGBM estimators follow scikit-learn's API too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loopml.models.flavors import Flavor
from loopml.models.flavor_lightgbm import LightGBMFlavor
from loopml.models.flavor_torch import TorchFlavor
from loopml.models.flavor_xgboost import XGBoostFlavor

# --------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------


def extra_flavors() -> list[Flavor]:
    """New instances of the flavors this module defines, in the order they are tried.

    Returns
    -------
    list of Flavor
        XGBoost, LightGBM, PyTorch.
    """
    return [XGBoostFlavor(), LightGBMFlavor(), TorchFlavor()]


def register_extra_flavors(registry: dict[str, Flavor]) -> None:
    """Add the XGBoost, LightGBM and PyTorch flavors ahead of the scikit-learn flavor.

    ``choose_flavor`` takes the first flavor that matches, and XGBoost and LightGBM
    estimators also look like scikit-learn ones, so these go before ``sklearn``. Calling this
    again changes nothing.

    Parameters
    ----------
    registry : dict
        Flavor name to flavor, in the order they are tried; updated in place.
    """
    extras = {flavor.name: flavor for flavor in extra_flavors()}
    reordered: dict[str, Flavor] = {}
    for name, flavor in registry.items():
        if name == "sklearn":
            for extra_name, extra in extras.items():
                reordered[extra_name] = registry.get(extra_name, extra)
        if name not in extras:
            reordered[name] = flavor
    for extra_name, extra in extras.items():
        reordered.setdefault(extra_name, registry.get(extra_name, extra))
    registry.clear()
    registry.update(reordered)
