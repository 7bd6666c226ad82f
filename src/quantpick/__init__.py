"""quantpick: pick and download the right quantized variant of a Hugging Face model for your GPU."""

__version__ = "0.1.0"
