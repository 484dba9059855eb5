import pytest

from netbpf.errors import UsageError
from netbpf.lab import Lab


def test_address_plan_and_names() -> None:
    lab = Lab("demo", backends=3, vxlan=True)
    assert lab.namespaces == ["demo-client", "demo-gw", "demo-be1", "demo-be2", "demo-be3"]
    b2 = lab.backends[1]
    assert (b2.ip, b2.ip6, b2.gateway_ip, b2.gateway_dev, b2.underlay_dev) == (
        "10.0.12.2", "fd00:12::2", "10.0.12.1", "b2", "u2")
    assert Lab("plain", 1).backends[0].underlay_dev == "b1"


@pytest.mark.parametrize("prefix", ["", "a b", "x" * 21, "../etc"])
def test_bad_prefixes_are_usage_errors(prefix: str) -> None:
    with pytest.raises(UsageError):
        Lab(prefix)
