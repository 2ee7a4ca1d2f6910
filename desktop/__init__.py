"""Diffusion Desktop: AUTOMATIC1111-compatible Stable Diffusion for the Mac."""

__version__ = "0.1.0"
APP_NAME = "Diffusion Desktop"
