"""The lora training backend: base models, rendering chat examples for the loss, and LoRA
fine-tuning with TRL + PEFT. torch and the training stack are imported only inside functions."""
