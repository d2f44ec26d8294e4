-- Savings sent over savings accepted in the last 2 days, per submission status (handlers.md §7.10).
WITH {{> submission_window}},
validation AS (
  SELECT v.id_arvo, v.id_fatura, v.status, v.vl_glosa_arvo FROM (
    SELECT id_arvo, id_fatura, status, vl_glosa_arvo, ingested_at FROM {{internal_validation}}
    UNION ALL
    SELECT id_arvo, id_fatura, status, vl_glosa_arvo, ingested_at FROM {{manual_validation}}
  ) v, win
  WHERE v.ingested_at BETWEEN win.lo AND win.hi
),
pending_invoices AS (SELECT DISTINCT id_fatura FROM validation WHERE status = 'SENT_FOR_VALIDATION' AND id_fatura IS NOT NULL),
-- accepted savings: all selected savings in W, plus validated items not on a pending invoice
accepted AS (
  SELECT s.id_arvo, s.vl_glosa_arvo FROM {{selected_savings_historical}} s, win
  WHERE s.ingested_at BETWEEN win.lo AND win.hi
  UNION ALL
  SELECT id_arvo, vl_glosa_arvo FROM validation
  WHERE status IN ('SUBMITTED_SUCCESS', 'APPROVED')
    AND (id_fatura IS NULL OR id_fatura NOT IN (SELECT id_fatura FROM pending_invoices))
),
total AS (SELECT COALESCE(SUM(vl_glosa_arvo), 0) AS tot FROM accepted),
by_status AS (
  SELECT status, COALESCE(SUM(vl_glosa_arvo), 0) AS submitted FROM {{submitted}}
  WHERE id_arvo IN (SELECT id_arvo FROM accepted WHERE id_arvo IS NOT NULL)
  GROUP BY status
),
statuses AS (SELECT status FROM by_status UNION DISTINCT SELECT 'SUBMITTED_SUCCESS' AS status),
result AS (
  SELECT st.status, COALESCE(b.submitted, 0) AS submitted, t.tot
  FROM statuses st CROSS JOIN total t LEFT JOIN by_status b ON b.status IS NOT DISTINCT FROM st.status
),
-- nothing accepted and nothing submitted: a single SUBMITTED_SUCCESS = 1.0
nothing AS (SELECT (SELECT tot FROM total) = 0 AND NOT EXISTS (SELECT 1 FROM result WHERE submitted > 0) AS yes)
SELECT status, IF(tot > 0, submitted / tot, 0.0) AS fraction FROM result WHERE NOT (SELECT yes FROM nothing)
UNION ALL
SELECT 'SUBMITTED_SUCCESS' AS status, 1.0 AS fraction FROM nothing WHERE yes
ORDER BY status
