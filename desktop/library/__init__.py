"""Model files on disk: safetensors headers, probing by content, hashes. No torch, no Qt."""
