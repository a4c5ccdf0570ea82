"""Counter-based random numbers: a sample gets the same draws in any batch and on any device.

A corrupted image must be reproducible from (seed, corruption, severity, sample id) alone, so that the
dashboard can regenerate it and a job can be resumed in different batches or on a GPU. A stateful
generator (`torch.Generator`) cannot promise that: its draws depend on how many numbers were drawn before,
and CPU and CUDA generators differ. Here every draw is a hash of its coordinates instead: (seed,
corruption name, purpose of the draw, sample id, position of the element within the sample's draw).

The hash is Chris Wellons' `lowbias32` integer finaliser on int32 tensors. Its multiplications wrap
around modulo 2**32, which is what both the CPU's vector instructions and CUDA do for int32 (int64
multiplication has no vector instruction on most CPUs and is 8x slower); right shifts are masked to act
as unsigned shifts. tests/compute/test_corruptions.py checks the bits against lowbias32 in plain Python integers.

Integer bits are therefore identical on every device. Floats made from them are too, up to the last
unit of float32 transcendental functions (log, cos) where CPU and CUDA libraries may disagree, which can
move a rounded pixel by one level in rare cases.

The severity is deliberately not part of the key: the severities of a sample share their draws (common
random numbers), so severity 4 is the same corruption as severity 3 made stronger, not a new one.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import Tensor

_MULTIPLIER_1 = 0x7FEB352D
_MULTIPLIER_2 = 0x846CA68B - (1 << 32)  # as a signed int32


def _to_int32(values: Tensor) -> Tensor:
    """int64 values in [0, 2**32) -> the int32 with the same 32 bits."""
    values = values & 0xFFFFFFFF
    return torch.where(values >= 1 << 31, values - (1 << 32), values).to(torch.int32)


def _to_unsigned(bits: Tensor) -> Tensor:
    """int32 bits -> int64 in [0, 2**32)."""
    return bits.to(torch.int64) & 0xFFFFFFFF


def _mix(x: Tensor) -> Tensor:
    """lowbias32 on int32 tensors: a bijection of 32-bit words with good avalanche."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * _MULTIPLIER_1
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * _MULTIPLIER_2
    return x ^ ((x >> 16) & 0xFFFF)


def _key(*parts: int | str) -> int:
    """A stable 32-bit key for the given parts (Python's own hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=4).digest(), "little")


class SampleRandom:
    """Random draws for a batch of samples of one corruption, keyed by (seed, name, sample id).

    Every method takes a `purpose` (a short label such as "noise" or "angle") so that different draws
    of one corruption are independent, and a per-sample `shape`; the result has shape (N, *shape).
    """

    def __init__(self, seed: int, name: str, sample_ids: Tensor) -> None:
        self.seed = int(seed)
        self.name = name
        self.sample_ids = sample_ids.to(torch.int64)
        self.device = sample_ids.device

    def __len__(self) -> int:
        return len(self.sample_ids)

    def sample_keys(self, purpose: str) -> Tensor:
        """(N,) int32 keys of the samples for one purpose."""
        ids = self.sample_ids
        key = _mix(_to_int32(torch.full_like(ids, _key(self.seed, self.name, purpose))))
        return _mix(_mix(key ^ _to_int32(ids)) ^ _to_int32(ids >> 32))

    def bits(self, purpose: str, shape: tuple[int, ...], device: torch.device | None = None) -> Tensor:
        """(N, *shape) int32 words with uniformly random bits."""
        device = self.device if device is None else device
        positions = _mix(torch.arange(math.prod(shape), dtype=torch.int32, device=device))
        keys = self.sample_keys(purpose).to(device)
        return _mix(keys[:, None] ^ positions[None, :]).reshape(len(self), *shape)

    def uniform(self, purpose: str, shape: tuple[int, ...], low: float = 0.0, high: float = 1.0,
                dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> Tensor:
        """(N, *shape) uniform in (low, high); 23 random bits for float32, 32 for float64."""
        return _scale(self.bits(purpose, shape, device), low, high, dtype)

    def integers(self, purpose: str, shape: tuple[int, ...], low: int, high: int,
                 device: torch.device | None = None) -> Tensor:
        """(N, *shape) int64 uniform in [low, high), like numpy's randint.

        A span that is a power of two takes its bits straight from the hashed words, several values
        per word (32 per word for a coin flip); other spans take floor(u * span).
        """
        span = high - low
        count = math.prod(shape)
        if span & (span - 1) == 0 and span <= 1 << 16:
            width = span.bit_length() - 1  # bits per value
            if width == 0:
                return torch.full((len(self), *shape), low, dtype=torch.int64, device=device or self.device)
            per_word = 32 // width
            words = self.bits(purpose, (-(-count // per_word),), device)
            offsets = torch.arange(0, per_word * width, width, dtype=torch.int32, device=words.device)
            values = ((words[:, :, None] >> offsets) & (span - 1)).reshape(len(self), -1)[:, :count]
            return low + values.to(torch.int64).reshape(len(self), *shape)
        bits = self.bits(purpose, shape, device)
        if span <= 256:  # 23 bits times the span stays in int32, the fast integer type on CPUs
            return low + ((((bits >> 9) & 0x7FFFFF) * span) >> 23).to(torch.int64)
        return low + ((_to_unsigned(bits) * span) >> 32)

    def normal(self, purpose: str, shape: tuple[int, ...], mean: float = 0.0, std: float = 1.0,
               dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> Tensor:
        """(N, *shape) normal(mean, std) by Box-Muller, two values per hashed 32-bit word.

        Each word gives two 16-bit uniforms (radius and angle) and both outputs of the pair are used,
        which halves the hashing; the radius then stops at 4.85 standard deviations (a tail of 1e-6).
        """
        count = math.prod(shape)
        bits = self.bits(purpose, ((count + 1) // 2,), device)
        radius_unit = (((bits >> 16) & 0xFFFF).to(dtype) + 0.5) * 2.0**-16
        angle = (((bits & 0xFFFF).to(dtype) + 0.5) * 2.0**-16) * (2.0 * math.pi)
        radius = torch.sqrt(-2.0 * torch.log(radius_unit))
        standard = torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)[:, :count]
        return (mean + std * standard).reshape(len(self), *shape)


def _scale(bits: Tensor, low: float, high: float, dtype: torch.dtype) -> Tensor:
    """int32 random words -> uniform in (low, high) of `dtype`, never touching either end."""
    if dtype == torch.float64:
        unit = (_to_unsigned(bits).to(torch.float64) + 0.5) * 2.0**-32
    else:
        # 23 bits: (v + 0.5) / 2**23 is then exact in float32, so the ends are never reached
        unit = (((bits >> 9) & 0x7FFFFF).to(torch.float32) + 0.5) * 2.0**-23
    return (low + (high - low) * unit).to(dtype)
