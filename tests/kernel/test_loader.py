"""The loader attaches real programs of every kind, sees them act, and leaves nothing behind."""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time

import pytest

from netbpf import netns
from netbpf.bpf import selftest
from netbpf.bpf.attach import cgroup, sockmap, tc, trace, xdp
from netbpf.bpf.attach.socket import attach_socket_filter
from netbpf.bpf.btf import vmlinux
from netbpf.bpf.fs import cgroup2_root, pin_dir
from netbpf.bpf.maps import Map
from netbpf.bpf.perfbuf import PerfBuffer
from netbpf.bpf.ringbuf import RingBuffer
from netbpf.bpf.selftest import Counter
from netbpf.errors import InterfaceNotFound, NotSupported

from .conftest import link_prog_ids, loaded_prog_ids, ping, qdisc_kinds, tc_filters, xdp_prog_on


def in_ns(name: str, fn):  # type: ignore[no-untyped-def]
    return netns.run_in(f"/run/netns/{name}", fn)


def counter(obj, which: Counter) -> int:  # type: ignore[no-untyped-def]
    return obj.map("counters").sum_u64(int(which))


@pytest.fixture
def obj():  # type: ignore[no-untyped-def]
    o = selftest.open_object()
    yield o
    ids = {p.id for p in o.programs.values() if p.fd >= 0}
    o.close()
    # Once the object is closed, none of its programs may still be loaded
    # (the kernel frees them after an RCU grace period, so allow it a moment).
    deadline = time.monotonic() + 3
    while ids & loaded_prog_ids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ids & loaded_prog_ids()


def test_xdp_link_acts_on_traffic_and_detaches(pair, obj) -> None:
    obj.set_rodata(xdp_verdict=1)  # XDP_DROP
    obj.load()
    prog = obj.program("netbpf_st_xdp")
    link = in_ns(pair.gateway, lambda: xdp.attach_xdp(prog, xdp.XdpOptions("c0")))
    assert xdp_prog_on(pair, pair.gateway, "c0") == prog.id
    assert ping(pair, pair.client, pair.GATEWAY_IP, count=3) == 0
    assert counter(obj, Counter.XDP) >= 3
    link.close()
    assert xdp_prog_on(pair, pair.gateway, "c0") == 0
    assert prog.id not in link_prog_ids()
    assert ping(pair, pair.client, pair.GATEWAY_IP, count=2) == 2


def test_xdp_netlink_replace_is_atomic_and_restores(pair, obj) -> None:
    obj.load()
    counting, dropping = obj.program("netbpf_st_xdp"), obj.program("netbpf_st_drop")
    first = in_ns(pair.gateway, lambda: xdp.attach_xdp_netlink(counting, xdp.XdpOptions("c0"), None))
    assert ping(pair, pair.client, pair.GATEWAY_IP, count=2) == 2
    swapped = in_ns(pair.gateway, lambda: xdp.attach_xdp_netlink(dropping, xdp.XdpOptions("c0"), counting))
    assert xdp_prog_on(pair, pair.gateway, "c0") == dropping.id
    assert ping(pair, pair.client, pair.GATEWAY_IP, count=2) == 0
    # Replacing a program that is no longer there must fail, not overwrite.
    with pytest.raises(Exception, match=r"changed under us|exists|busy"):
        in_ns(pair.gateway, lambda: xdp.attach_xdp_netlink(counting, xdp.XdpOptions("c0"), counting))
    swapped.close()  # puts the counting program back, from the main thread's namespace
    assert xdp_prog_on(pair, pair.gateway, "c0") == counting.id
    assert ping(pair, pair.client, pair.GATEWAY_IP, count=2) == 2
    first.close()
    assert xdp_prog_on(pair, pair.gateway, "c0") == 0


def test_xdp_query_reports_mode_and_link(pair, obj) -> None:
    obj.load()
    prog = obj.program("netbpf_st_xdp")
    with in_ns(pair.gateway, lambda: xdp.attach_xdp(prog, xdp.XdpOptions("c0", mode="skb"))) as link:
        state = in_ns(pair.gateway, lambda: xdp.query("c0"))
        assert (state.prog_id, state.mode, state.link_id) == (prog.id, "skb", link.id)
    assert in_ns(pair.gateway, lambda: xdp.query("c0")).prog_id == 0


@pytest.mark.parametrize("mode", ["tcx", "cls_bpf"])
@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_tc_counts_and_leaves_nothing(pair, obj, mode: str, direction: str) -> None:
    if mode == "tcx":
        from netbpf.bpf import features

        if not features.has_tcx():
            pytest.skip("this kernel has no tcx (Linux 6.6+)")
    obj.load()
    prog = obj.program("netbpf_st_tc")
    att = in_ns(pair.gateway, lambda: tc.attach_tc(prog, tc.TcOptions("c0", direction, mode)))
    assert ping(pair, pair.client, pair.GATEWAY_IP, count=4) == 4
    assert counter(obj, Counter.TC) >= 4
    if mode == "cls_bpf":
        assert "clsact" in qdisc_kinds(pair, pair.gateway, "c0")
        assert tc_filters(pair, pair.gateway, "c0")
    att.close()
    seen = counter(obj, Counter.TC)
    assert ping(pair, pair.client, pair.GATEWAY_IP, count=2) == 2
    assert counter(obj, Counter.TC) == seen  # detached: counts no more
    assert tc_filters(pair, pair.gateway, "c0") == []
    assert "clsact" not in qdisc_kinds(pair, pair.gateway, "c0")
    assert prog.id not in link_prog_ids()


def test_socket_filter_sees_exactly_what_the_socket_receives(pair, obj) -> None:
    obj.load()
    prog = obj.program("netbpf_st_sock")

    def capture() -> tuple[int, int]:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        sock.bind(("c0", 0))
        with attach_socket_filter(prog, sock):
            subprocess.run(["ip", "netns", "exec", pair.client, "ping", "-c", "5", "-i", "0.05",
                            pair.GATEWAY_IP], capture_output=True, check=True)
            time.sleep(0.1)
            sock.setblocking(False)
            frames = 0
            while True:
                try:
                    sock.recv(65536)
                    frames += 1
                except BlockingIOError:
                    break
        sock.close()
        return frames, counter(obj, Counter.SOCKET)

    frames, seen = in_ns(pair.gateway, capture)
    assert frames >= 10  # 5 requests in, 5 replies out
    assert seen == frames


@pytest.mark.parametrize("use_link", [True, False], ids=["sockmap-link", "prog-attach"])
def test_sock_ops_and_sk_msg_on_a_cgroup(obj, use_link: bool) -> None:
    from netbpf.bpf import features

    if use_link and not features.has_sockmap_link():
        pytest.skip("this kernel has no sockmap links (Linux 6.10+)")
    obj.load()
    group = cgroup2_root() / f"netbpf-test-{os.getpid()}"
    group.mkdir()
    try:
        ops = cgroup.attach_cgroup(obj.program("netbpf_st_ops"), cgroup.CgroupOptions(group))
        msg = sockmap.attach_sk_msg(obj.program("netbpf_st_msg"), obj.map("sockets"), use_link=use_link)
        # A client and a server in that cgroup: 25 sendmsg() calls of 1000 bytes.
        script = (
            "import os, socket, sys\n"
            f"open('{group}/cgroup.procs', 'w').write(str(os.getpid()))\n"
            "srv = socket.create_server(('127.0.0.1', 0)); port = srv.getsockname()[1]\n"
            "cli = socket.create_connection(('127.0.0.1', port)); conn, _ = srv.accept()\n"
            "for _ in range(25): cli.sendall(b'x' * 1000)\n"
            "got = 0\n"
            "while got < 25000: got += len(conn.recv(65536))\n"
            "print(got)\n"
        )
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "25000"
        assert counter(obj, Counter.SOCKOPS_ESTABLISHED) == 2  # both ends
        assert counter(obj, Counter.SK_MSG) == 25
        assert counter(obj, Counter.SK_MSG_BYTES) == 25000
        msg.close()
        ops.close()
        assert not {obj.program("netbpf_st_ops").id, obj.program("netbpf_st_msg").id} & link_prog_ids()
    finally:
        group.rmdir()


def test_tracepoints_see_drops_with_their_reason(pair, obj) -> None:
    reasons = vmlinux().enum_values("skb_drop_reason")
    obj.set_rodata(match_reason=reasons["SKB_DROP_REASON_NO_SOCKET"])
    obj.load()
    with trace.attach_section(obj.program("netbpf_st_tp")), trace.attach_section(obj.program("netbpf_st_tpbtf")):
        # UDP to a port nobody listens on: dropped with NO_SOCKET.
        script = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                  f"[s.sendto(b'x', ('{pair.GATEWAY_IP}', 9)) for _ in range(20)]\n")
        pair.run(pair.client, sys.executable, "-c", script)
        time.sleep(0.2)
        assert counter(obj, Counter.TRACEPOINT) >= 20
        assert counter(obj, Counter.TP_BTF) >= 20
        assert counter(obj, Counter.TP_BTF_MATCHED) >= 20
    before = counter(obj, Counter.TP_BTF)
    pair.run(pair.client, sys.executable, "-c", script)
    assert counter(obj, Counter.TP_BTF) == before
    ids = {obj.program("netbpf_st_tp").id, obj.program("netbpf_st_tpbtf").id}
    assert not ids & link_prog_ids()


def _produce(obj, count: int, base: int = 0) -> None:  # type: ignore[no-untyped-def]
    obj.program("netbpf_st_ring").test_run(struct.pack("<IIQ", count, 0, base) + bytes(48))


def test_ring_buffer_hands_out_every_record_in_order(obj) -> None:
    obj.load()
    with RingBuffer(obj.map("records"), obj.map("records_lost")) as ring:
        _produce(obj, 5000)
        records = ring.read()
        assert [struct.unpack_from("<Q", r)[0] for r in records] == list(range(5000))
        assert all(len(r) == 64 for r in records)
        assert ring.read() == [] and ring.lost == 0


def test_ring_buffer_reads_in_bounded_batches(obj) -> None:
    obj.load()
    with RingBuffer(obj.map("records"), obj.map("records_lost")) as ring:
        _produce(obj, 1000)
        sizes, seqs = [], []
        while batch := ring.read(max_bytes=1000):  # 13 records of 72 bytes, the 14th cut
            sizes.append(len(batch))
            seqs += [struct.unpack_from("<Q", r)[0] for r in batch]
        assert seqs == list(range(1000)) and max(sizes) == 13 and ring.lost == 0


def test_ring_buffer_counts_what_did_not_fit(obj) -> None:
    obj.set_map_size("records", 4096)  # 56 records of 72 bytes
    obj.load()
    with RingBuffer(obj.map("records"), obj.map("records_lost")) as ring:
        _produce(obj, 1000)
        got = len(ring.read())
        assert 0 < got < 1000
        assert got + ring.lost == 1000


def test_ring_buffer_poll_wakes_on_close(obj) -> None:
    import threading

    obj.load()
    ring = RingBuffer(obj.map("records"), obj.map("records_lost"))
    result: list[list[bytes]] = []
    t = threading.Thread(target=lambda: result.append(ring.poll(timeout=30)))
    t.start()
    time.sleep(0.1)
    start = time.monotonic()
    ring.close()
    t.join(5)
    assert not t.is_alive() and time.monotonic() - start < 2
    ring.release()


def test_perf_buffer_carries_whole_packets_and_counts_losses(obj) -> None:
    # One CPU for all of it: the buffer is per CPU, and reading joins the CPUs' rings in
    # CPU order, and the kernel writes its lost-samples record to the ring of the CPU
    # that runs the program after room came back.
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        _perf_buffer_round(obj)
    finally:
        os.sched_setaffinity(0, cpus)


def _perf_buffer_round(obj) -> None:
    obj.load()
    prog = obj.program("netbpf_st_perf")
    packets = [bytes([i % 256]) * (60 + i * 7) for i in range(100)]
    with PerfBuffer(obj.map("samples"), obj.map("samples_lost"), pages_per_cpu=64) as perf:
        for p in packets:
            prog.test_run(p)
        samples = perf.poll(timeout=1)
        got = []
        for s in samples:
            cap_len, length = struct.unpack_from("<II", s)
            assert cap_len == length
            got.append(s[8:8 + cap_len])
        assert got == packets and perf.lost == 0
    before = obj.map("samples_lost").sum_u64(0)
    with PerfBuffer(obj.map("samples"), obj.map("samples_lost"), pages_per_cpu=1) as small:
        for _ in range(200):
            prog.test_run(bytes(1000))
        received = len(small.read())
        assert received < 200 and received + small.lost - before == 200
        # The kernel's own account arrives once there is room again; it must agree.
        prog.test_run(bytes(1000))
        small.read()
        assert small.lost_records == small.lost - before


def test_maps_elements_batches_pins(obj) -> None:
    obj.load()
    counters = obj.map("counters")
    assert counters.percpu and len(counters.lookup_percpu(0)) >= 1
    counters.update(2, bytes(8) * len(counters.lookup_percpu(0)))
    assert counters.sum_u64(2) == 0
    prog_array = obj.map("xdp_original")
    prog_array.update(0, obj.program("netbpf_st_drop").fd)
    assert int.from_bytes(prog_array.lookup(0), "little") == obj.program("netbpf_st_drop").id
    assert obj.program("netbpf_st_tail").test_run(bytes(64)).retval == 1  # XDP_DROP via tail call
    assert prog_array.delete(0) and not prog_array.delete(0)
    assert obj.program("netbpf_st_tail").test_run(bytes(64)).retval == 2  # empty slot: XDP_PASS
    batch = counters.lookup_batch(chunk=4)
    assert sorted(int.from_bytes(k, "little") for k, _ in batch) == list(range(counters.max_entries))
    path = pin_dir(f"test-{os.getpid()}") / "counters"
    counters.pin(path)
    try:
        again = Map.from_pin(path)
        assert again.id == counters.id and again.name == "counters"
        again.close()
    finally:
        os.unlink(path)
        path.parent.rmdir()


def test_reuse_pinned_map_shares_state(obj) -> None:
    obj.load()
    path = pin_dir(f"test-{os.getpid()}") / "xdp_original"
    obj.map("xdp_original").pin(path)
    try:
        second = selftest.open_object()
        assert second.map("xdp_original").reuse_pinned(path)
        second.load()
        assert second.map("xdp_original").id == obj.map("xdp_original").id
        second.close()
    finally:
        os.unlink(path)
        path.parent.rmdir()


def test_missing_interface_is_a_clear_error(obj) -> None:
    obj.load()
    with pytest.raises(InterfaceNotFound, match="no such interface: nosuch0"):
        xdp.attach_xdp(obj.program("netbpf_st_xdp"), xdp.XdpOptions("nosuch0"))
    with pytest.raises(InterfaceNotFound):
        tc.attach_tc(obj.program("netbpf_st_tc"), tc.TcOptions("nosuch0"))


def test_unknown_tracepoint_is_not_supported(obj) -> None:
    obj.load()
    with pytest.raises(NotSupported, match="tracepoint nosuch:event"):
        trace.attach_tracepoint(obj.program("netbpf_st_tp"), "nosuch", "event")


# -- links taken from a pin or an id (cilium/ebpf's link package as the model) ---------------

def test_link_from_pin_and_id_updates_detaches_unpins(pair, obj) -> None:
    from netbpf.bpf.attach.base import Link

    obj.load()
    counting, dropping = obj.program("netbpf_st_xdp"), obj.program("netbpf_st_drop")
    made = in_ns(pair.gateway, lambda: xdp.attach_xdp(counting, xdp.XdpOptions("c0", mode="skb")))
    path = pin_dir(f"test-{os.getpid()}") / "link"
    try:
        made.pin(path)
        made.close()  # the pin holds it now
        assert xdp_prog_on(pair, pair.gateway, "c0") == counting.id
        with Link.from_pin(path) as taken:
            taken.update(dropping, old=counting)
            assert xdp_prog_on(pair, pair.gateway, "c0") == dropping.id
            assert ping(pair, pair.client, pair.GATEWAY_IP, count=2) == 0
            # BPF_F_REPLACE: the link no longer holds `counting`, so nothing changes.
            with pytest.raises(Exception, match="changed under us"):
                taken.update(counting, old=counting)
            assert taken.info().prog_id == dropping.id
            with Link.from_id(taken.id) as by_id:
                assert by_id.info().prog_id == dropping.id
                taken.unpin()
                assert not path.exists()
                assert xdp_prog_on(pair, pair.gateway, "c0") == dropping.id  # by_id's fd holds it
                assert by_id.detach()  # BPF_LINK_DETACH: off the hook while fds remain
                assert xdp_prog_on(pair, pair.gateway, "c0") == 0
        assert ping(pair, pair.client, pair.GATEWAY_IP, count=2) == 2
    finally:
        path.unlink(missing_ok=True)
        path.parent.rmdir()
    assert counting.id not in link_prog_ids() and dropping.id not in link_prog_ids()


def test_program_made_by_netbpf_and_handles_close_with_their_block(obj) -> None:
    from netbpf.bpf.insn import ALU64, EXIT, JMP, MOV, R0, K, encode
    from netbpf.bpf.program import Program

    code = encode(ALU64 | MOV | K, R0, imm=2) + encode(JMP | EXIT)  # return XDP_PASS
    with Program.load(6, "netbpf_t_made", code, expected_attach_type=37) as prog:
        prog_id = prog.id
        assert prog.test_run(bytes(64)).retval == 2
        assert prog_id in loaded_prog_ids()
    assert prog.fd == -1
    deadline = time.monotonic() + 3
    while prog_id in loaded_prog_ids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert prog_id not in loaded_prog_ids()
    obj.load()
    with Map.from_id(obj.map("counters").id) as again:
        assert again.name == "counters" and again.fd >= 0
    assert again.fd == -1


def test_object_loads_only_the_programs_asked_with_the_value_size_set(obj) -> None:
    obj.load_only("netbpf_st_xdp", "netbpf_st_drop")
    obj.set_value_size("filter_result", 16)
    obj.load()
    loaded = {name for name, p in obj.programs.items() if p.fd >= 0}
    assert loaded == {"netbpf_st_xdp", "netbpf_st_drop"}
    with Map.from_id(obj.map("filter_result").id) as m:
        assert m.value_size == 16  # as the kernel made it
    with pytest.raises(KeyError, match="no program 'nosuch'"):
        obj.load_only("nosuch")


def test_xdp_front_stands_in_front_and_cleanup_puts_the_original_back(pair, obj) -> None:
    from netbpf.bpf.attach import xdp_front
    from netbpf.bpf.info import prog_map_ids

    obj.load()
    original, front = obj.program("netbpf_st_xdp"), obj.program("netbpf_st_tail")
    first = in_ns(pair.gateway, lambda: xdp.attach_xdp_netlink(original, xdp.XdpOptions("c0", "skb"), None))
    try:
        obj.map("xdp_original").update(0, original.fd)
        state = in_ns(pair.gateway, lambda: xdp.query("c0"))
        held = in_ns(pair.gateway, lambda: xdp_front.stand_in_front(front, state, original))
        assert xdp_prog_on(pair, pair.gateway, "c0") == front.id
        assert in_ns(pair.gateway, lambda: xdp_front.path("c0")) == [front.id, original.id]
        assert xdp_front.original_in(prog_map_ids(front.fd)) == original.id
        before = counter(obj, Counter.XDP)
        assert ping(pair, pair.client, pair.GATEWAY_IP, count=2) == 2
        assert counter(obj, Counter.XDP) >= before + 2  # the original runs behind it (tail call)
        # What cleanup does, from the ids alone: the original back, in the same mode.
        in_ns(pair.gateway, lambda: xdp_front.put_back(front.id, original.id, ifindex=state.ifindex,
                                                       flags=state.flags))
        assert in_ns(pair.gateway, lambda: xdp.query("c0")) == state
        held.release()
    finally:
        first.close()
    assert xdp_prog_on(pair, pair.gateway, "c0") == 0


def test_section_handler_prepares_the_program_and_reports_what_it_raised() -> None:
    from netbpf.bpf import sections
    from netbpf.bpf.insn import ALU64, EXIT, JMP, MOV, R0, K, encode
    from netbpf.bpf.program import Program
    from netbpf.errors import NetbpfError

    pass_only = encode(ALU64 | MOV | K, R0, imm=2) + encode(JMP | EXIT)  # return XDP_PASS

    def prepare(handle: int, opts: sections.LoadOpts) -> None:
        Program.from_libbpf(handle).set_insns(pass_only)

    with sections.registered("xdp", 6, 37, prepare), selftest.open_object() as o:
        o.load_only("netbpf_st_drop")
        o.load()
        assert o.program("netbpf_st_drop").test_run(bytes(64)).retval == 2  # what prepare put there

    def refuse(handle: int, opts: sections.LoadOpts) -> None:
        raise ValueError("not this one")

    with sections.registered("xdp", 6, 37, refuse) as handler, selftest.open_object() as o:
        o.load_only("netbpf_st_drop")
        with pytest.raises(NetbpfError):
            o.load()
        assert handler.take_error(o.program("netbpf_st_drop").handle) == "not this one"
