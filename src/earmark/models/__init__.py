"""Model weights: resolving a model spec and loading it offline (:mod:`.loading`), and
reading CTranslate2 weights into openai-whisper's layout (:mod:`.ct2`)."""
