"""Human review over the store: what a page shows and reading a clip (:mod:`.items`),
leases (:mod:`.leases`), saving corrections and flags (:mod:`.corrections`), round progress
and clip histories (:mod:`.progress`), all gathered for the app in :mod:`.workflow`; the
clip player (:mod:`.player`), the dashboard's views (:mod:`.dashboard`) and the read-only
reports the CLI prints (:mod:`.reports`)."""
