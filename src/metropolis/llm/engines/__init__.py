"""Clients of real serving engines through their public APIs: llama.cpp's `llama-server`, started on loopback
(`llama_server`), and its per-agent slot save/restore by invocation distance (`llama_server_slots`)."""
