"""A CPU inference server for the lora backend: vLLM's OpenAI-compatible endpoints with runtime LoRA
loading, on transformers + peft (``python -m local_inference``)."""
