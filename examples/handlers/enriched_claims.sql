-- Enriched claims of an approval batch, per category: how many, and their paid value.
-- {{enriched}} is the table named by the run's variable (see enriched_claims.toml);
-- @source_timestamp is the time the run completed.
SELECT
  categoria AS category,
  COUNT(*) AS claims,
  COALESCE(SUM(vl_pago), 0) AS paid
FROM {{enriched}}
WHERE created_at <= @source_timestamp
GROUP BY categoria
ORDER BY categoria
