-- Savings sent over savings validated in the last 2 days, per submission status (handlers.md §7.11).
WITH {{> submission_window}},
-- validated items: decided (not sent / not sending for validation), not filtered for a shared invoice id
validated AS (
  {{> validation_savings_in_window}}
    AND v.status NOT IN ('SENT_FOR_VALIDATION', 'NOT_SENT_FOR_VALIDATION')
    AND (v.filtered_reason IS NULL OR v.filtered_reason != 'SHARED_ID_FATURA')
),
total AS (SELECT COALESCE(SUM(vl_glosa_arvo), 0) AS tot FROM validated),
by_status AS (
  SELECT status, COALESCE(SUM(vl_glosa_arvo), 0) AS submitted FROM {{submitted}}
  WHERE id_arvo IN (SELECT id_arvo FROM validated WHERE id_arvo IS NOT NULL)
  GROUP BY status
),
statuses AS (SELECT status FROM by_status UNION DISTINCT SELECT 'SUBMITTED_SUCCESS' AS status),
result AS (
  SELECT st.status, COALESCE(b.submitted, 0) AS submitted, t.tot
  FROM statuses st CROSS JOIN total t LEFT JOIN by_status b ON b.status IS NOT DISTINCT FROM st.status
),
nothing AS (SELECT (SELECT tot FROM total) = 0 AND NOT EXISTS (SELECT 1 FROM result WHERE submitted > 0) AS yes)
SELECT status, IF(tot > 0, submitted / tot, 0.0) AS fraction FROM result WHERE NOT (SELECT yes FROM nothing)
UNION ALL
SELECT 'SUBMITTED_SUCCESS' AS status, 1.0 AS fraction FROM nothing WHERE yes
ORDER BY status
