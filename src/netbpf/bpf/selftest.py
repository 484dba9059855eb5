"""The loader's self-test object: Python side of ``selftest.h``."""
from __future__ import annotations

import ctypes
import enum
from pathlib import Path

from .object import BpfObject, object_path


class Counter(enum.IntEnum):
    XDP = 0
    TC = 1
    SOCKET = 2
    SOCKOPS_ESTABLISHED = 3
    SK_MSG = 4
    SK_MSG_BYTES = 5
    TRACEPOINT = 6
    TP_BTF = 7
    TP_BTF_MATCHED = 8


class Record(ctypes.Structure):
    _c_name_ = "selftest_record"
    _fields_ = [("seq", ctypes.c_uint64), ("cpu", ctypes.c_uint64), ("payload", ctypes.c_uint8 * 48)]


class Sample(ctypes.Structure):
    _c_name_ = "selftest_sample"
    _fields_ = [("cap_len", ctypes.c_uint32), ("len", ctypes.c_uint32)]


SHARED_STRUCTS = (Record, Sample)


def path() -> Path:
    return object_path(__file__, "selftest.bpf.o")


def open_object() -> BpfObject:
    return BpfObject.open(path())
