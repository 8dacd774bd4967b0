"""Training loops and what they share: `state` (checkpoints, EMA, seeding, finite checks), `pretraining` (the
Prompt-DT's pretraining). The denoiser's loop is Prompt Diffuser's own (pdiff.methods.prompt_diffuser)."""
