"""Training objectives as pure tensor functions in tables, no model: grpo (policy gradient), sft, dpo."""
