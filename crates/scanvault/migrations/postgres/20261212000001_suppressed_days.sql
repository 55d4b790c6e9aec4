-- What the suppressions left out of the fleet, as last computed on each day (counts as in
-- fleet_daily, but absolute, not changes): the fleet trend leaves it out of each point.
CREATE TABLE fleet_suppressed_days (
    day        BIGINT  PRIMARY KEY,
    images     BIGINT  NOT NULL,
    fixable    BIGINT  NOT NULL,
    n_critical BIGINT  NOT NULL,
    n_high     BIGINT  NOT NULL,
    n_medium   BIGINT  NOT NULL,
    n_low      BIGINT  NOT NULL,
    n_unknown  BIGINT  NOT NULL
);
