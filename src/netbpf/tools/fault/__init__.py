"""``netbpf fault``: reproduce network bugs by mangling, dropping and duplicating chosen packets."""
