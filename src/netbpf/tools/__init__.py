"""One package per tool: its BPF C, its shared header, its Python, its CLI."""
