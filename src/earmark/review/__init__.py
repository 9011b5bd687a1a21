"""Human review: leases, corrections and round progress over the store (:mod:`.workflow`),
the clip player (:mod:`.player`), the dashboard's views (:mod:`.dashboard`) and the
read-only reports the CLI prints (:mod:`.reports`)."""
