-- Completeness of items filtered for a shared invoice id (SHARED_ID_FATURA): submitted value over
-- their validated value in the last 2 days (handlers.md §7.12); 1.0 when there is none.
WITH {{> submission_window}},
shared AS (
  {{> validation_savings_in_window}}
    AND v.filtered_reason = 'SHARED_ID_FATURA'
    AND v.status != 'SENT_FOR_VALIDATION'
),
sums AS (
  SELECT
    (SELECT COALESCE(SUM(vl_glosa_arvo), 0) FROM shared) AS total,
    (SELECT COALESCE(SUM(vl_glosa_arvo), 0) FROM {{submitted}}
      WHERE id_arvo IN (SELECT id_arvo FROM shared WHERE id_arvo IS NOT NULL)) AS submitted
)
SELECT IF(total > 0, submitted / total, 1.0) AS completeness FROM sums
