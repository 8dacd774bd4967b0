"""pdiff: Prompt Diffuser for few-shot adaptation of a frozen Prompt Decision Transformer."""

__version__ = "0.1.0"
