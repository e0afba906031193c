"""Fine-tuning on top of a (packed) base: LoRA pretraining, per-speaker adaptation, full fine-tuning."""
