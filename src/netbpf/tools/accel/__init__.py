"""netbpf accel: local TCP connections skip the TCP/IP stack (sockops + sk_msg)."""
