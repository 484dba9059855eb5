"""ctypes prototypes for the system ``libbpf.so.1`` (Debian 12 ships 1.1.2).

Only functions that exist in libbpf 1.1 are declared here; what 1.1 lacks
(tcx links, for example) is reached through ``bpf_link_create``, which passes
unknown attach types through to the kernel unchanged.

Nothing in this module raises netbpf errors: callers turn return codes into
exceptions with :func:`netbpf.errors.check`.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int,
    c_long,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Any

from ..errors import BuildMissing


def _load() -> ctypes.CDLL:
    for name in ("libbpf.so.1", ctypes.util.find_library("bpf")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
    raise BuildMissing("libbpf.so.1 not found (apt-get install libbpf1)")


lib = _load()

# Opaque handles.
obj_p = c_void_p
prog_p = c_void_p
map_p = c_void_p
link_p = c_void_p
btf_p = c_void_p


class ObjectOpenOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("object_name", c_char_p),
        ("relaxed_maps", c_bool),
        ("pin_root_path", c_char_p),
        ("_attach_prog_fd", c_uint32),
        ("kconfig", c_char_p),
        ("btf_custom_path", c_char_p),
        ("kernel_log_buf", c_void_p),
        ("kernel_log_size", c_size_t),
        ("kernel_log_level", c_uint32),
    ]


class XdpAttachOpts(Structure):
    _fields_ = [("sz", c_size_t), ("old_prog_fd", c_int)]


class XdpQueryOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("prog_id", c_uint32),
        ("drv_prog_id", c_uint32),
        ("hw_prog_id", c_uint32),
        ("skb_prog_id", c_uint32),
        ("attach_mode", c_uint8),
    ]


class TcHook(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("ifindex", c_int),
        ("attach_point", c_int),
        ("parent", c_uint32),
    ]


class TcOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("prog_fd", c_int),
        ("flags", c_uint32),
        ("prog_id", c_uint32),
        ("handle", c_uint32),
        ("priority", c_uint32),
    ]


class LinkCreateOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("flags", c_uint32),
        ("iter_info", c_void_p),
        ("iter_info_len", c_uint32),
        ("target_btf_id", c_uint32),
        ("_union", c_uint64 * 5),
    ]


class LinkUpdateOpts(Structure):
    _fields_ = [("sz", c_size_t), ("flags", c_uint32), ("old_prog_fd", c_uint32)]


class TestRunOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", c_uint32),
        ("data_size_out", c_uint32),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32),
        ("retval", c_uint32),
        ("repeat", c_int),
        ("duration", c_uint32),
        ("flags", c_uint32),
        ("cpu", c_uint32),
        ("batch_size", c_uint32),
    ]


class ProgLoadOpts(Structure):
    _fields_ = [
        ("sz", c_size_t),
        ("attempts", c_int),
        ("expected_attach_type", c_int),
        ("prog_btf_fd", c_uint32),
        ("prog_flags", c_uint32),
        ("prog_ifindex", c_uint32),
        ("kern_version", c_uint32),
        ("attach_btf_id", c_uint32),
        ("attach_prog_fd", c_uint32),
        ("attach_btf_obj_fd", c_uint32),
        ("fd_array", c_void_p),
        ("func_info", c_void_p),
        ("func_info_cnt", c_uint32),
        ("func_info_rec_size", c_uint32),
        ("line_info", c_void_p),
        ("line_info_cnt", c_uint32),
        ("line_info_rec_size", c_uint32),
        ("log_level", c_uint32),
        ("log_size", c_uint32),
        ("log_buf", c_void_p),
    ]


# int (*)(struct bpf_program *, struct bpf_prog_load_opts *, long cookie)
PREPARE_LOAD_FN = ctypes.CFUNCTYPE(c_int, c_void_p, POINTER(ProgLoadOpts), c_long)


class ProgHandlerOpts(Structure):
    """``struct libbpf_prog_handler_opts`` (libbpf copies it at registration)."""

    _fields_ = [("sz", c_size_t), ("cookie", c_long), ("prog_setup_fn", c_void_p),
                ("prog_prepare_load_fn", PREPARE_LOAD_FN), ("prog_attach_fn", c_void_p)]


class MapBatchOpts(Structure):
    _fields_ = [("sz", c_size_t), ("elem_flags", c_uint64), ("flags", c_uint64)]


class BtfType(Structure):
    """``struct btf_type``: name_off, info (kind/vlen/kflag), size-or-type."""

    _fields_ = [("name_off", c_uint32), ("info", c_uint32), ("size_or_type", c_uint32)]


class BpfInsn(Structure):
    _fields_ = [
        ("code", c_uint8),
        ("regs", c_uint8),  # dst_reg:4 (low nibble), src_reg:4 (high nibble) on little endian
        ("off", ctypes.c_int16),
        ("imm", ctypes.c_int32),
    ]


# libbpf_print_fn_t: int (*)(enum libbpf_print_level, const char *fmt, va_list)
# On the supported ABIs va_list arrives as a pointer, which vsnprintf accepts.
PRINT_FN = CFUNCTYPE(c_int, c_int, c_char_p, c_void_p)


def _proto(name: str, restype: Any, *argtypes: Any) -> None:
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


_PROTOTYPES: list[tuple[Any, ...]] = [
    ("libbpf_set_print", c_void_p, PRINT_FN),
    ("libbpf_num_possible_cpus", c_int),
    ("libbpf_major_version", c_uint32),
    ("libbpf_minor_version", c_uint32),
    ("libbpf_probe_bpf_prog_type", c_int, c_int, c_void_p),
    ("libbpf_probe_bpf_map_type", c_int, c_int, c_void_p),
    ("libbpf_probe_bpf_helper", c_int, c_int, c_int, c_void_p),
    # objects
    ("bpf_object__open_file", obj_p, c_char_p, POINTER(ObjectOpenOpts)),
    ("bpf_object__load", c_int, obj_p),
    ("bpf_object__close", None, obj_p),
    ("bpf_object__name", c_char_p, obj_p),
    ("bpf_object__btf", btf_p, obj_p),
    ("bpf_object__next_program", prog_p, obj_p, prog_p),
    ("bpf_object__next_map", map_p, obj_p, map_p),
    # programs
    ("bpf_program__name", c_char_p, prog_p),
    ("bpf_program__section_name", c_char_p, prog_p),
    ("bpf_program__fd", c_int, prog_p),
    ("bpf_program__type", c_int, prog_p),
    ("bpf_program__set_type", c_int, prog_p, c_int),
    ("bpf_program__expected_attach_type", c_int, prog_p),
    ("bpf_program__set_expected_attach_type", c_int, prog_p, c_int),
    ("bpf_program__autoload", c_bool, prog_p),
    ("bpf_program__set_autoload", c_int, prog_p, c_bool),
    ("bpf_program__insns", POINTER(BpfInsn), prog_p),
    ("bpf_program__insn_cnt", c_size_t, prog_p),
    ("bpf_program__set_insns", c_int, prog_p, POINTER(BpfInsn), c_size_t),
    ("bpf_program__set_log_level", c_int, prog_p, c_uint32),
    ("bpf_program__set_log_buf", c_int, prog_p, c_void_p, c_size_t),
    ("bpf_program__attach", link_p, prog_p),
    ("bpf_program__attach_xdp", link_p, prog_p, c_int),
    ("bpf_program__attach_cgroup", link_p, prog_p, c_int),
    ("bpf_program__attach_tracepoint", link_p, prog_p, c_char_p, c_char_p),
    ("bpf_program__attach_raw_tracepoint", link_p, prog_p, c_char_p),
    ("bpf_program__attach_trace", link_p, prog_p),
    # maps
    ("bpf_map__name", c_char_p, map_p),
    ("bpf_map__fd", c_int, map_p),
    ("bpf_map__type", c_int, map_p),
    ("bpf_map__key_size", c_uint32, map_p),
    ("bpf_map__value_size", c_uint32, map_p),
    ("bpf_map__max_entries", c_uint32, map_p),
    ("bpf_map__set_max_entries", c_int, map_p, c_uint32),
    ("bpf_map__is_internal", c_bool, map_p),
    ("bpf_map__initial_value", c_void_p, map_p, POINTER(c_size_t)),
    ("bpf_map__reuse_fd", c_int, map_p, c_int),
    ("bpf_map__set_value_size", c_int, map_p, c_uint32),
    ("bpf_map__btf_value_type_id", c_uint32, map_p),
    # links
    ("bpf_link__fd", c_int, link_p),
    ("bpf_link__destroy", c_int, link_p),
    ("bpf_link__pin", c_int, link_p, c_char_p),
    ("bpf_link__disconnect", None, link_p),
    # low level (bpf.h)
    ("bpf_map_lookup_elem", c_int, c_int, c_void_p, c_void_p),
    ("bpf_map_update_elem", c_int, c_int, c_void_p, c_void_p, c_uint64),
    ("bpf_map_delete_elem", c_int, c_int, c_void_p),
    ("bpf_map_get_next_key", c_int, c_int, c_void_p, c_void_p),
    ("bpf_map_lookup_batch", c_int, c_int, c_void_p, c_void_p, c_void_p, c_void_p,
     POINTER(c_uint32), POINTER(MapBatchOpts)),
    ("bpf_map_update_batch", c_int, c_int, c_void_p, c_void_p, POINTER(c_uint32),
     POINTER(MapBatchOpts)),
    ("bpf_obj_pin", c_int, c_int, c_char_p),
    ("bpf_obj_get", c_int, c_char_p),
    ("bpf_obj_get_info_by_fd", c_int, c_int, c_void_p, POINTER(c_uint32)),
    ("bpf_prog_get_next_id", c_int, c_uint32, POINTER(c_uint32)),
    ("bpf_map_get_next_id", c_int, c_uint32, POINTER(c_uint32)),
    ("bpf_link_get_next_id", c_int, c_uint32, POINTER(c_uint32)),
    ("bpf_prog_get_fd_by_id", c_int, c_uint32),
    ("bpf_map_get_fd_by_id", c_int, c_uint32),
    ("bpf_link_get_fd_by_id", c_int, c_uint32),
    ("bpf_link_create", c_int, c_int, c_int, c_int, POINTER(LinkCreateOpts)),
    ("bpf_link_detach", c_int, c_int),
    ("bpf_link_update", c_int, c_int, c_int, POINTER(LinkUpdateOpts)),
    ("bpf_prog_attach", c_int, c_int, c_int, c_int, c_uint32),
    ("bpf_prog_detach2", c_int, c_int, c_int, c_int),
    ("bpf_prog_query", c_int, c_int, c_int, c_uint32, POINTER(c_uint32), POINTER(c_uint32),
     POINTER(c_uint32)),
    ("bpf_prog_test_run_opts", c_int, c_int, POINTER(TestRunOpts)),
    ("bpf_prog_load", c_int, c_int, c_char_p, c_char_p, c_void_p, c_size_t, POINTER(ProgLoadOpts)),
    # XDP and tc over netlink
    ("bpf_xdp_attach", c_int, c_int, c_int, c_uint32, POINTER(XdpAttachOpts)),
    ("bpf_xdp_detach", c_int, c_int, c_uint32, POINTER(XdpAttachOpts)),
    ("bpf_xdp_query", c_int, c_int, c_int, POINTER(XdpQueryOpts)),
    ("bpf_tc_hook_create", c_int, POINTER(TcHook)),
    ("bpf_tc_hook_destroy", c_int, POINTER(TcHook)),
    ("bpf_tc_attach", c_int, POINTER(TcHook), POINTER(TcOpts)),
    ("bpf_tc_detach", c_int, POINTER(TcHook), POINTER(TcOpts)),
    ("bpf_tc_query", c_int, POINTER(TcHook), POINTER(TcOpts)),
    # BTF
    ("btf__load_vmlinux_btf", btf_p),
    ("btf__parse", btf_p, c_char_p, c_void_p),
    ("btf__free", None, btf_p),
    ("btf__type_cnt", c_uint32, btf_p),
    ("btf__find_by_name_kind", c_int, btf_p, c_char_p, c_uint32),
    ("btf__type_by_id", POINTER(BtfType), btf_p, c_uint32),
    ("btf__name_by_offset", c_char_p, btf_p, c_uint32),
    ("btf__resolve_size", ctypes.c_int64, btf_p, c_uint32),
    ("btf__resolve_type", c_int, btf_p, c_uint32),
    # program-section handlers (bpf/sections.py)
    ("libbpf_register_prog_handler", c_int, c_char_p, c_int, c_int, POINTER(ProgHandlerOpts)),
    ("libbpf_unregister_prog_handler", c_int, c_int),
]

for _p in _PROTOTYPES:
    _proto(*_p)

LIBBPF_VERSION = (lib.libbpf_major_version(), lib.libbpf_minor_version())
