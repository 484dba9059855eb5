"""netbpf: debug Linux networks with eBPF."""
__version__ = "0.1.0"
