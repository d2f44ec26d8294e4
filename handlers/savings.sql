-- Savings per agent (handlers.md §7.6): value (sum of vl_glosa_arvo) and number of rows per
-- agent_id. It runs only when the table exists (a missing table: no points, no query;
-- [[when_missing]]).
SELECT
  agent_id,
  COALESCE(SUM(vl_glosa_arvo), 0) AS vl_glosa_arvo,
  COUNT(*) AS savings_count
FROM {{savings}}
GROUP BY agent_id
ORDER BY agent_id
