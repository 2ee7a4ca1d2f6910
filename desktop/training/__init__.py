"""LoRA training: config, dataset, network, export and the training loop (no Qt)."""
