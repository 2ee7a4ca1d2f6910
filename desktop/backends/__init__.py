"""Executors for the UNet and VAE behind one small interface (torch now, Core ML later)."""
