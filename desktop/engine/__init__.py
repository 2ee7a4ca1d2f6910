"""The torch side: model loading, conditioning, samplers and the txt2img pipeline. No Qt."""
