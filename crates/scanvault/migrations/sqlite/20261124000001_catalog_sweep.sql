-- Catalog entries no finding references any more are removed by a periodic sweep
-- (store/catalog.rs), not at each deletion, so no index of every finding by vulnerability
-- id is needed: it cost one random B-tree insertion per finding on every ingest.
DROP INDEX IF EXISTS findings_by_vulnerability;
