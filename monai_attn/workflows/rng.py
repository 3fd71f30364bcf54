"""Random number generator state for checkpoints, so that a resumed training matches an uninterrupted one."""
from __future__ import annotations

import logging
import random

import numpy as np
import torch

__all__ = ["TrainingRNG", "random_states"]

logger = logging.getLogger(__name__)


def random_states(*sources: object) -> list[np.random.RandomState]:
    """Every ``numpy.random.RandomState`` held as ``.R`` by an object reachable from ``sources`` (a
    dataset, a data loader, a ``Compose``...), in a fixed order.

    The walk follows the one of MONAI's ``monai.data.utils.set_rnd`` (lists, tuples and object
    attributes, not dict values), but also enters objects that have ``set_random_state`` so that the
    inner transforms of a random transform (e.g. ``RandRotated.rand_rotate``) are found too. Tensors
    and arrays are not entered. Each state appears once.
    """
    found: list[np.random.RandomState] = []
    seen: set[int] = set()

    def walk(obj: object) -> None:
        if id(obj) in seen or isinstance(obj, (str, bytes, int, float, torch.Tensor, np.ndarray)):
            return
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            for item in obj:
                walk(item)
            return
        attrs = getattr(obj, "__dict__", None)
        if not isinstance(attrs, dict):
            return
        state = attrs.get("R")
        if isinstance(state, np.random.RandomState) and id(state) not in seen:
            seen.add(id(state))
            found.append(state)
        for key, value in list(attrs.items()):
            if not key.startswith("__"):
                walk(value)

    for source in sources:
        walk(source)
    return found


def _numpy_state(state: np.random.RandomState) -> dict:
    name, key, pos, has_gauss, gauss = state.get_state(legacy=True)
    # tensors and plain numbers only: the checkpoint loads with ``torch.load(weights_only=True)``
    return {"key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
            "gauss": float(gauss)}


def _set_numpy_state(state: np.random.RandomState, saved: dict) -> None:
    key = saved["key"].numpy().astype(np.uint32)
    state.set_state(("MT19937", key, int(saved["pos"]), int(saved["has_gauss"]), float(saved["gauss"])))


class TrainingRNG:
    """The random state of a training, as an object with ``state_dict``/``load_state_dict`` for a
    checkpoint's ``save_dict`` (see :func:`monai_attn.workflows.attach_training_state`).

    Saved and restored: Python's ``random``, NumPy's global generator, torch's CPU generator (and the
    CUDA generators when CUDA is available), and the ``R`` generator of every MONAI random transform
    reachable from ``sources`` (typically the training data loader; see :func:`random_states`).

    Restoring these at the start of a resumed run (ignite's ``STARTED`` event, where MONAI's
    ``CheckpointLoader`` loads) puts the process in the state that the uninterrupted run had after the
    checkpointed epoch: the next epoch's shuffle order and DataLoader worker seeds (both drawn from
    torch's generator when the epoch's iterator is created), its dropout masks, and, with
    ``num_workers=0``, its random augmentations (the transforms' own generators) are the same.

    Args:
        sources: objects whose MONAI random transforms are saved (a DataLoader, a Dataset, a Compose).
    """

    def __init__(self, *sources: object) -> None:
        self.sources = sources

    def state_dict(self) -> dict:
        state = {
            "python": _python_state(),
            "numpy": _numpy_state(np.random.mtrand._rand),
            "torch": torch.get_rng_state(),
            "transforms": [_numpy_state(r) for r in random_states(*self.sources)],
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        _set_python_state(state["python"])
        _set_numpy_state(np.random.mtrand._rand, state["numpy"])
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            cuda = state["cuda"]
            if len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda)
            else:
                logger.warning("checkpoint has the CUDA random state of %d devices, this run has %d: not restored",
                               len(cuda), torch.cuda.device_count())
        current = random_states(*self.sources)
        saved = state.get("transforms", [])
        if len(saved) != len(current):
            logger.warning("checkpoint has the random state of %d random transforms, this run has %d: their random "
                           "state is not restored (the resumed run's augmentations differ from an uninterrupted "
                           "run's)", len(saved), len(current))
            return
        for r, s in zip(current, saved):
            _set_numpy_state(r, s)


def _python_state() -> dict:
    version, internal, gauss_next = random.getstate()
    return {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": None if gauss_next is None else float(gauss_next)}


def _set_python_state(saved: dict) -> None:
    random.setstate((int(saved["version"]), tuple(int(v) for v in saved["state"].tolist()), saved["gauss_next"]))
