-- What some report formats say of a finding beyond Trivy's fields (Grype's own severity
-- word, EPSS and risk; CycloneDX VEX analysis), as compact JSON, NULL when there is
-- nothing. Mirrors ../postgres/20261210000001_finding_extras.sql.
ALTER TABLE findings ADD COLUMN extra TEXT;
