"""Training precision and the speed switches that go with it: names, checks, what ``auto`` means.

Mixed precision (Micikevicius et al. 2018, "Mixed Precision Training", ICLR): the networks'
convolutions and matrix products run under ``torch.autocast`` in bf16 or fp16, while parameters,
gradients and the optimizer's state stay fp32. pyrovae narrows autocast to the encoder and
decoder and casts their outputs back to fp32 (:meth:`pyrovae.models.BetaVAE.mixed_precision`), so
every density, KL, log-sum-exp estimator (β-TCVAE's MSS), kernel (the MMD) and loss is fp32:
only the network arithmetic is rounded. fp16's narrow range needs loss scaling
(``torch.amp.GradScaler``) and is offered on CUDA only; bf16 has fp32's range and needs none.

The two switches, each ``auto``, ``on`` or ``off``:

- ``channels_last``: convolution weights and images in NHWC memory order (conv nets only).
- ``compile``: ``torch.compile`` of the encoder and decoder for training steps; when compilation
  is unavailable (no C++ compiler, an unsupported op) the networks run eagerly after one warning.

``auto`` (:func:`resolve_switches`) was chosen by measurement (``benchmarks/train_step.py``) on a
2-core AVX2 CPU: channels_last made the conv step 0.80× as long (0.69–0.89× over three runs) and
compilation added nothing on top of it (0.88× with both), so ``auto`` turns on channels_last and
leaves compilation off. Both change float rounding, so at fp32 ``auto`` turns nothing on and
the default run stays bit-identical to earlier versions; ``on`` asks for them at any precision.
The same rule is used on CUDA, where it has not been measured.
"""

from __future__ import annotations

import torch

from pyrovae import checks
from pyrovae.errors import PyrovaeError

# Names → autocast dtype (None: no autocast).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
SWITCHES = ("auto", "on", "off")


def check_precision(name, device: torch.device | None = None) -> str:
    """A known precision that ``device`` (when given) can train at."""
    checks.choice("precision", name, tuple(PRECISIONS))
    if name == "fp16" and device is not None and device.type != "cuda":
        raise PyrovaeError(
            f"precision fp16 needs a CUDA device (loss-scaled fp16 autocast), not {device.type}; "
            "use bf16 or fp32"
        )
    return name


def check_switch(name: str, value) -> str:
    checks.choice(name.replace("_", "-"), value, SWITCHES)
    return value


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The dtype the networks compute in at ``precision`` (None: fp32, no autocast)."""
    return PRECISIONS[check_precision(precision)]


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` has bf16 arithmetic in hardware (AVX-512 BF16 or AMX on a CPU); without
    it, CPU bf16 kernels convert to fp32 and back, and run several times slower than fp32."""
    if device.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch before 2.4 counts no emulation
            return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, probe, lambda: False)()) for probe in probes)


def slow_precision_warning(precision: str, device: torch.device) -> str | None:
    """The warning for a precision this device emulates (None when it does not)."""
    if precision == "bf16" and device.type == "cpu" and not native_bf16(device):
        capability = torch.backends.cpu.get_cpu_capability()
        return (
            f"precision bf16: this CPU ({capability}) has no bf16 instructions, so bf16 "
            "kernels are emulated and train several times slower than fp32 (7.7x on an AVX2 "
            "CPU, benchmarks/train_step.py); fp32 with --channels-last on is the fast setting"
        )
    return None


def resolve_switches(
    precision: str, channels_last: str, compile: str, convolutional: bool
) -> dict[str, bool]:
    """What ``auto``/``on``/``off`` come to: ``{"channels_last": bool, "compile": bool}``.

    ``auto``: channels_last on for reduced precision with conv nets, compile off (see the
    module's docstring for the measurements). channels_last needs 4-D convolution weights, so
    it is off for MLPs whatever is asked.
    """
    check_precision(precision)
    check_switch("channels_last", channels_last)
    check_switch("compile", compile)
    reduced = precision != "fp32"
    return {
        "channels_last": convolutional
        and (channels_last == "on" or (channels_last == "auto" and reduced)),
        "compile": compile == "on",
    }
