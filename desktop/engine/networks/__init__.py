"""Extra networks at inference: LoRA/LyCORIS, textual-inversion embeddings and hypernetworks, as A1111 applies them."""
