-- The columns of a finding the analytics read, under the name PostgreSQL gives them (where
-- a scan's findings are one row of arrays, and this view leaves the other arrays unread).
CREATE VIEW findings_brief AS
    SELECT scan_id, vulnerability_id, pkg_name, pkg_version, fixed_version, severity FROM findings;
