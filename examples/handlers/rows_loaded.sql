-- Rows loaded by one pipeline run, per target table, from the load audit table that the
-- pipelines write. @pipeline, @run_id and @started_at are columns of the run row (see
-- rows_loaded.toml): pipeline_run_id picks the run's own rows, and loaded_at >= @started_at
-- lets BigQuery skip the partitions written before the run (the table is partitioned by day
-- of loaded_at in production).
SELECT
  target_table AS target,
  SUM(rows_loaded) AS rows_loaded
FROM ops_audit.load_audit
WHERE pipeline_uuid = @pipeline
  AND pipeline_run_id = @run_id
  AND loaded_at >= @started_at
GROUP BY target_table
ORDER BY target_table
