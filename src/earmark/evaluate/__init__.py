"""How good a model is: held-out evaluation of a model version (:mod:`.heldout`) and the
pure metrics it reports (:mod:`.metrics`)."""
