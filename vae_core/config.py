"""Run mode (smoke vs full) and the device report every notebook prints first.

Smoke mode is switched on by the environment variable ``VAE_SMOKE=1`` (``make test``
and CI set it). It shrinks epochs, step counts and sample counts so that the whole
series runs on a 2-core CPU in minutes; the default is the full course.
"""
from __future__ import annotations

import os
import platform

SMOKE_ENV = "VAE_SMOKE"


def smoke_mode() -> bool:
    """True when ``VAE_SMOKE`` is set to 1/true/yes (read at call time)."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def pick(full, smoke):
    """Return ``smoke`` in smoke mode and ``full`` otherwise.

    Notebooks write ``epochs = pick(full=30, smoke=1)`` so both sizes are visible
    side by side in the cell.
    """
    return smoke if smoke_mode() else full


def mode_name() -> str:
    return "smoke" if smoke_mode() else "full"


def device_name() -> str:
    """The device JAX computes on, in a few words: 'NVIDIA H200 (gpu)', 'CPU (x86_64)'."""
    import jax

    d = jax.devices()[0]
    return f"{d.device_kind} ({d.platform})" if d.platform != "cpu" else f"CPU ({platform.machine()})"


def describe_setup() -> str:
    """One paragraph naming the mode, the JAX backend and its devices."""
    import jax

    devices = jax.devices()
    kinds = ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in devices}))
    lines = [
        f"mode:    {mode_name()}  (set {SMOKE_ENV}=1 for the fast smoke run)",
        f"jax:     {jax.__version__} on backend '{jax.default_backend()}'",
        f"devices: {len(devices)} x {kinds}",
        f"python:  {platform.python_version()} on {platform.machine()}",
    ]
    return "\n".join(lines)


__all__ = ["SMOKE_ENV", "smoke_mode", "pick", "mode_name", "device_name", "describe_setup"]
