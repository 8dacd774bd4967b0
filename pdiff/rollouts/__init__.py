"""Simulator rollouts of a frozen Prompt-DT: batched across episodes and tasks."""
