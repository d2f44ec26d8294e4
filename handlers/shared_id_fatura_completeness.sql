-- Completeness of items filtered for a shared invoice id (SHARED_ID_FATURA): submitted value over
-- their validated value in the last 2 days (handlers.md §7.12); 1.0 when there is none.
WITH anchor AS (
  SELECT COALESCE(
    (SELECT MAX(ingested_at) FROM {{submitted}} WHERE submission_run_id = @submission_run_id),
    TIMESTAMP_SUB(@source_timestamp, INTERVAL 20 MINUTE)) AS l
),
win AS (SELECT TIMESTAMP_SUB(l, INTERVAL 2 DAY) AS lo, l AS hi FROM anchor),
shared AS (
  SELECT v.id_arvo, v.vl_glosa_arvo FROM (
    SELECT id_arvo, vl_glosa_arvo, status, filtered_reason, ingested_at FROM {{internal_validation}}
    UNION ALL
    SELECT id_arvo, vl_glosa_arvo, status, filtered_reason, ingested_at FROM {{manual_validation}}
  ) v, win
  WHERE v.ingested_at BETWEEN win.lo AND win.hi
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
