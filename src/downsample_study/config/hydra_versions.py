"""Hydra 1.3 and 1.4 (OmegaConf 2.3 and 2.4): the calls each takes without a deprecation warning.

Hydra 1.4 deprecates ``version_base`` (without it 1.3 keeps 1.1's defaults), asks which targets
a config may instantiate, and OmegaConf 2.4 renames ``register_new_resolver``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

HYDRA_1_3 = tuple(int(part) for part in hydra.__version__.split(".")[:2]) < (1, 4)
# for initialize_config_dir and hydra.main
VERSION_BASE: dict[str, str] = {"version_base": "1.3"} if HYDRA_1_3 else {}
# what the config's hydra.callbacks instantiate: Hydra 1.5 refuses a target no whitelist names
TRUSTED_TARGETS = ["downsample_study.*"]
_STORE_REPLACES = "replace" in inspect.signature(ConfigStore.store).parameters  # Hydra 1.4
_NEW_RESOLVERS = "replace" in inspect.signature(OmegaConf.register_resolver).parameters  # 2.4


def main_options() -> dict[str, Any]:
    """``hydra.main``'s arguments beside the config's path and name."""
    return dict(VERSION_BASE) if HYDRA_1_3 else {"execution_whitelist": TRUSTED_TARGETS}


def store(name: str, node: Any) -> None:
    """Store ``node`` in the ConfigStore, replacing an entry of that name (Hydra 1.4 warns when
    a replacement is not said to be one; 1.3 replaces without the argument)."""
    ConfigStore.instance().store(name=name, node=node,
                                 **({"replace": True} if _STORE_REPLACES else {}))


def register_resolver(name: str, resolver: Callable[..., Any]) -> None:
    """Register ``resolver`` unless a resolver of that name is: OmegaConf 2.4's
    ``register_resolver``, 2.3's ``register_new_resolver`` (its ``register_resolver`` is the
    deprecated legacy one, of another signature)."""
    if OmegaConf.has_resolver(name):
        return
    if _NEW_RESOLVERS:
        OmegaConf.register_resolver(name, resolver)
    else:
        OmegaConf.register_new_resolver(name, resolver)
