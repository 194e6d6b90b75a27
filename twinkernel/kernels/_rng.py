"""Counter-based random numbers: every draw is a pure function of (seed, stream, index).

The generator is a splitmix64-style finaliser applied to a key built from the seed, a stream id and a
counter. Because no state is carried from one draw to the next, a kernel may compute draws in any order,
on any number of threads and in any chunking and still get bit-identical results.

Twin keys
---------
A twin's effect noise is indexed by a stable 64-bit key of its ``twin_id``, never by its row, so filtering,
shuffling, partitioning or chunking a population changes no twin's draw. The key is computed once, when a
population is built (:func:`twin_keys_from_ints`, :func:`twin_keys_from_strings`):

- integer ids: ``mix64(uint64(id))`` (two's complement for negative ids);
- string ids: ``mix64(fnv1a64(utf8_bytes(id)))``, where ``fnv1a64`` is the 64-bit FNV-1a hash (offset basis
  ``0xCBF29CE484222325``, prime ``0x100000001B3``) over the id's UTF-8 bytes. The definition depends on no
  library version (unlike ``polars.Series.hash``); the final ``mix64`` spreads FNV's weak low bits.

Ids of any other type are converted to strings first. Two different ids share a key with probability
about ``n**2 / 2**65`` (3e-6 for 10 million twins); they would then share their noise, nothing else.

Streams in use (keep them distinct so different purposes never share draws):

=======  ==========================================
stream   purpose
=======  ==========================================
1        per-twin effect noise, radius (index = twin key)
2        per-twin effect noise, angle (index = twin key)
3        order of the blocks of a simulation with a timeout (index = block number)
4..15    reserved for the simulation core
16..31   bootstrap resampling
32..47   twin generation
=======  ==========================================
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

STREAM_EFFECT_NOISE = 1
STREAM_EFFECT_NOISE_ANGLE = 2
STREAM_BLOCK_ORDER = 3
STREAM_BOOTSTRAP = 16
STREAM_BOOTSTRAP_BLB = 17
STREAM_GENERATOR = 32

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_POW_M53 = 1.0 / 9007199254740992.0  # 2**-53
_TWO_PI = 6.283185307179586
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(inline="always", cache=True)
def mix64(x):
    """splitmix64 finaliser: a bijective avalanche of a 64-bit integer."""
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(inline="always", cache=True)
def key_for(seed, stream):
    """Combine a seed and a stream id into one 64-bit key."""
    return mix64(mix64(np.uint64(seed)) ^ (np.uint64(stream) * _M2))


@njit(inline="always", cache=True)
def random_u64(key, index):
    """The ``index``-th 64-bit draw of the stream identified by ``key``."""
    return mix64(key ^ mix64(np.uint64(index)))


@njit(inline="always", cache=True)
def uniform(key, index):
    """A float in the open interval (0, 1) (53-bit resolution; never exactly 0 or 1)."""
    return (np.float64(random_u64(key, index) >> _S11) + 0.5) * _TWO_POW_M53


@njit(inline="always", cache=True)
def standard_normal(key, index):
    """A standard normal deviate (Box-Muller on two counter draws, cosine branch)."""
    i2 = np.uint64(index) * np.uint64(2)
    u1 = uniform(key, i2)
    u2 = uniform(key, i2 + np.uint64(1))
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)


@njit(inline="always", cache=True)
def bounded_int(key, index, n):
    """An integer uniform on ``[0, n)`` (Lemire's multiply-shift; bias below 2**-32 for n < 2**32)."""
    r = random_u64(key, index) >> np.uint64(32)
    return np.int64((r * np.uint64(n)) >> np.uint64(32))


@njit(cache=True)
def fill_standard_normal(seed, stream, start, out):
    """Fill ``out`` with draws ``start .. start + len(out) - 1`` of a stream (for tests and references)."""
    key = key_for(seed, stream)
    for i in range(out.shape[0]):
        out[i] = standard_normal(key, start + i)


@njit(cache=True)
def fill_uniform(seed, stream, start, out):
    """Fill ``out`` with uniform draws ``start ..`` of a stream."""
    key = key_for(seed, stream)
    for i in range(out.shape[0]):
        out[i] = uniform(key, start + i)


@njit(inline="always", cache=True)
def twin_normal(key_radius, key_angle, twin_key):
    """A standard normal deviate for one twin: Box-Muller on the twin key's draw in two streams.

    ``key_radius`` and ``key_angle`` come from :func:`key_for` with ``STREAM_EFFECT_NOISE`` and
    ``STREAM_EFFECT_NOISE_ANGLE``; the draws are ``random_u64(key, twin_key)``.
    """
    u1 = uniform(key_radius, twin_key)
    u2 = uniform(key_angle, twin_key)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)


@njit(inline="always", cache=True)
def fnv1a64(data, start, stop):
    """64-bit FNV-1a hash of ``data[start:stop]`` (a uint8 array)."""
    h = _FNV_OFFSET
    for j in range(start, stop):
        h = (h ^ np.uint64(data[j])) * _FNV_PRIME
    return h


@njit(parallel=True, cache=True)
def twin_keys_from_strings(data, offsets, out):
    """``out[i] = mix64(fnv1a64(data[offsets[i]:offsets[i + 1]]))``: keys of UTF-8 encoded string ids.

    ``data`` holds the ids' UTF-8 bytes back to back (uint8) and ``offsets`` (int64, length n + 1) where
    each id starts and ends.
    """
    for i in prange(out.shape[0]):
        out[i] = mix64(fnv1a64(data, offsets[i], offsets[i + 1]))


@njit(parallel=True, cache=True)
def twin_keys_from_ints(ids, out):
    """``out[i] = mix64(uint64(ids[i]))``: keys of integer ids (negative ids in two's complement)."""
    for i in prange(out.shape[0]):
        out[i] = mix64(np.uint64(ids[i]))
