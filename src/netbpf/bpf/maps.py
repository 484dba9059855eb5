"""BPF maps: element access, iteration, batches, per-CPU values, pins.

Keys and values are bytes (or anything ``bytes()`` accepts, such as a ctypes
structure); integers are packed as little-endian u32 keys, the common case
for arrays. Per-CPU maps return one value per possible CPU.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import check, from_errno
from . import _libbpf as L
from ._handle import Handle
from .info import fd_by_id, fd_by_pin, map_info

MAP_TYPES = {
    1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash",
    6: "percpu_array", 7: "stack_trace", 9: "lru_hash", 10: "lru_percpu_hash",
    15: "sockmap", 18: "sockhash", 27: "ringbuf",
}
PERCPU_TYPES = {5, 6, 10, 21}  # percpu_hash, percpu_array, lru_percpu_hash, percpu_cgroup_storage
FD_VALUE_TYPES = {3, 4, 12, 13, 15, 18}  # values written as fds, read back as ids

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2

KeyLike = bytes | bytearray | int | Any


@cache
def possible_cpus() -> int:
    return int(L.lib.libbpf_num_possible_cpus())


def _raw(value: KeyLike, size: int, what: str) -> ctypes.Array[ctypes.c_char]:
    data = value.to_bytes(size, "little") if isinstance(value, int) else bytes(value)
    if len(data) != size:
        raise ValueError(f"{what}: {len(data)} bytes given, map wants {size}")
    return ctypes.create_string_buffer(data, size)


class Map(Handle):
    """A map handle; ``fd`` is -1 until its object is loaded."""

    KIND = "map"

    def __init__(self, name: str, fd: int = -1, handle: int = 0, map_type: int = 0,
                 key_size: int = 0, value_size: int = 0, max_entries: int = 0,
                 owns_fd: bool = False) -> None:
        super().__init__(name, fd, handle, owns_fd)
        self._type, self._key_size, self._value_size = map_type, key_size, value_size
        self._max_entries = max_entries

    @classmethod
    def from_libbpf(cls, handle: int) -> Map:
        return cls(L.lib.bpf_map__name(handle).decode(), handle=handle)

    @classmethod
    def from_fd(cls, fd: int, owns_fd: bool = True) -> Map:
        info = map_info(fd)
        return cls(info.name.decode(), fd=fd, map_type=info.type, key_size=info.key_size,
                   value_size=info.value_size, max_entries=info.max_entries, owns_fd=owns_fd)

    @classmethod
    def from_pin(cls, path: str | Path) -> Map:
        return cls.from_fd(fd_by_pin(path, "map"))

    @classmethod
    def from_id(cls, map_id: int) -> Map:
        return cls.from_fd(fd_by_id("map", map_id))

    # -- description (libbpf knows it before load) ------------------------------------------
    @property
    def type(self) -> int:
        return int(L.lib.bpf_map__type(self.handle)) if self.handle else self._type

    @property
    def key_size(self) -> int:
        return int(L.lib.bpf_map__key_size(self.handle)) if self.handle else self._key_size

    @property
    def value_size(self) -> int:
        return int(L.lib.bpf_map__value_size(self.handle)) if self.handle else self._value_size

    @property
    def max_entries(self) -> int:
        return int(L.lib.bpf_map__max_entries(self.handle)) if self.handle else self._max_entries

    @property
    def is_internal(self) -> bool:
        return bool(self.handle and L.lib.bpf_map__is_internal(self.handle))

    @property
    def percpu(self) -> bool:
        return self.type in PERCPU_TYPES

    @property
    def id(self) -> int:
        return int(map_info(self.require_fd()).id)

    def _value_buf_size(self) -> int:
        if self.percpu:
            return ((self.value_size + 7) & ~7) * possible_cpus()
        if self.type in FD_VALUE_TYPES:
            return 4
        return self.value_size

    # -- elements ---------------------------------------------------------------------------
    def lookup(self, key: KeyLike) -> bytes | None:
        """The value (bytes), or None when the key is absent.

        For per-CPU maps the bytes hold one 8-byte-aligned value per possible CPU.
        """
        k = _raw(key, self.key_size, f"key of {self.name}")
        v = ctypes.create_string_buffer(self._value_buf_size())
        ret = L.lib.bpf_map_lookup_elem(self.require_fd(), k, v)
        if ret == -_errno.ENOENT:
            return None
        check(ret, f"lookup in map {self.name}")
        return v.raw

    def lookup_percpu(self, key: KeyLike) -> list[bytes]:
        raw = self.lookup(key)
        if raw is None:
            return []
        step = (self.value_size + 7) & ~7
        return [raw[i:i + self.value_size] for i in range(0, len(raw), step)]

    def sum_u64(self, key: KeyLike = 0) -> int:
        """Sum of a u64 counter over CPUs (or its value in a plain map); 0 when absent."""
        if self.percpu:
            return sum(int.from_bytes(v[:8], "little") for v in self.lookup_percpu(key))
        raw = self.lookup(key)
        return int.from_bytes(raw[:8], "little") if raw else 0

    def update(self, key: KeyLike, value: KeyLike, flags: int = BPF_ANY) -> None:
        k = _raw(key, self.key_size, f"key of {self.name}")
        v = _raw(value, self._value_buf_size(), f"value of {self.name}")
        check(L.lib.bpf_map_update_elem(self.require_fd(), k, v, flags), f"update map {self.name}")

    def delete(self, key: KeyLike) -> bool:
        """Delete a key; False when it was not there."""
        k = _raw(key, self.key_size, f"key of {self.name}")
        ret = L.lib.bpf_map_delete_elem(self.require_fd(), k)
        if ret == -_errno.ENOENT:
            return False
        check(ret, f"delete from map {self.name}")
        return True

    def keys(self) -> Iterator[bytes]:
        prev: ctypes.Array[ctypes.c_char] | None = None
        nxt = ctypes.create_string_buffer(self.key_size)
        while True:
            ret = L.lib.bpf_map_get_next_key(self.require_fd(), prev, nxt)
            if ret == -_errno.ENOENT:
                return
            check(ret, f"iterate map {self.name}")
            yield nxt.raw
            prev, nxt = nxt, ctypes.create_string_buffer(self.key_size)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:  # deleted meanwhile
                yield key, value

    def lookup_batch(self, chunk: int = 4096) -> list[tuple[bytes, bytes]]:
        """All elements with BPF_MAP_LOOKUP_BATCH (one syscall per chunk).

        Falls back to key-by-key iteration where the map type has no batch op.
        """
        ksz, vsz = self.key_size, self._value_buf_size()
        keys = ctypes.create_string_buffer(ksz * chunk)
        values = ctypes.create_string_buffer(vsz * chunk)
        in_batch = ctypes.create_string_buffer(max(ksz, 8))
        out_batch = ctypes.create_string_buffer(max(ksz, 8))
        opts = L.MapBatchOpts(sz=ctypes.sizeof(L.MapBatchOpts))
        result: list[tuple[bytes, bytes]] = []
        first = True
        while True:
            count = ctypes.c_uint32(chunk)
            ret = L.lib.bpf_map_lookup_batch(self.require_fd(), None if first else in_batch,
                                             out_batch, keys, values, ctypes.byref(count),
                                             ctypes.byref(opts))
            if ret < 0 and -ret in (_errno.EINVAL, _errno.ENOTSUP, _errno.EOPNOTSUPP) and first:
                return list(self.items())
            if ret < 0 and -ret != _errno.ENOENT:
                check(ret, f"batch lookup in map {self.name}")
            n = count.value
            kr, vr = keys.raw, values.raw
            result.extend((kr[i * ksz:(i + 1) * ksz], vr[i * vsz:(i + 1) * vsz]) for i in range(n))
            if ret < 0:  # ENOENT: that was the last chunk
                return result
            ctypes.memmove(in_batch, out_batch, len(out_batch))
            first = False

    def clear(self) -> None:
        for key in list(self.keys()):
            self.delete(key)

    # -- pins --------------------------------------------------------------------------------
    def pin(self, path: str | Path) -> None:
        check(L.lib.bpf_obj_pin(self.require_fd(), str(path).encode()), f"pin map {self.name} at {path}")

    def reuse_pinned(self, path: str | Path) -> bool:
        """Before load: use the map pinned at ``path`` instead of creating one."""
        fd = L.lib.bpf_obj_get(str(path).encode())
        if fd < 0:
            if -fd == _errno.ENOENT:
                return False
            raise from_errno(f"open pinned map {path}", -fd)
        try:
            check(L.lib.bpf_map__reuse_fd(self.handle, fd), f"reuse pinned map {path}")
        finally:
            os.close(fd)  # libbpf dup()ed it
        return True

    def reuse(self, other: Map) -> None:
        """Before load: be ``other`` (a loaded map, of another object) instead of
        creating a map of one's own; the two objects then share it."""
        check(L.lib.bpf_map__reuse_fd(self.handle, other.require_fd()), f"share map {self.name}")

    def __repr__(self) -> str:
        return f"<Map {self.name} {MAP_TYPES.get(self.type, self.type)} fd={self.fd}>"
