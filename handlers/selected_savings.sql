-- Selected savings per agent (handlers.md §7.5): sum of vl_glosa_arvo per agent_id.
-- It runs only when the table exists (a missing table: no points, no query; [[when_missing]]).
SELECT
  agent_id,
  COALESCE(SUM(vl_glosa_arvo), 0) AS vl_glosa_arvo
FROM {{selected_savings}}
GROUP BY agent_id
ORDER BY agent_id
