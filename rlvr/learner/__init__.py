"""The trainable model every algorithm shares: loading (full or LoRA), precision, forward passes and the chunked
LM head, the lean backward layers, and host-memory reuse on CPU."""
