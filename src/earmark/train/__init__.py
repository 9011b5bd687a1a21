"""Fine-tuning on the corrections: examples and the dev split (:mod:`.dataset`),
augmentation (:mod:`.augment`), which weights train (:mod:`.trainable`), the training loop
(:mod:`.trainer`), a whole run with its gate (:mod:`.finetune`), and training on in-memory
pairs with no project (:mod:`.pairs`)."""
