-- Savings of validation items that expired around the release run (handlers.md §7.13):
-- ingested in [source - 2 days, source] and updated in [source - 30 min, source] (UTC DATETIME),
-- status EXPIRED, summed over the internal and the manual validation tables.
SELECT
  (SELECT COALESCE(SUM(vl_glosa_arvo), 0) FROM {{internal}}
    WHERE ingested_at BETWEEN TIMESTAMP_SUB(@source_timestamp, INTERVAL 2 DAY) AND @source_timestamp
      AND updated_at BETWEEN DATETIME_SUB(DATETIME(@source_timestamp), INTERVAL 30 MINUTE) AND DATETIME(@source_timestamp)
      AND status = 'EXPIRED')
  +
  (SELECT COALESCE(SUM(vl_glosa_arvo), 0) FROM {{manual}}
    WHERE ingested_at BETWEEN TIMESTAMP_SUB(@source_timestamp, INTERVAL 2 DAY) AND @source_timestamp
      AND updated_at BETWEEN DATETIME_SUB(DATETIME(@source_timestamp), INTERVAL 30 MINUTE) AND DATETIME(@source_timestamp)
      AND status = 'EXPIRED') AS expired_total
