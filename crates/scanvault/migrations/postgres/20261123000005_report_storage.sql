-- Report bodies are gzip-compressed before they are stored: PostgreSQL's own TOAST
-- compression cannot shrink them and only costs ingest CPU trying. Keep them out of line,
-- uncompressed by the database.
ALTER TABLE scan_reports ALTER COLUMN body SET STORAGE EXTERNAL;
