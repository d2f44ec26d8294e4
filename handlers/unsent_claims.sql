-- Claims sent over claims received in the last 2 days, per submission status (handlers.md §7.9).
-- W: the submission window (submission_window.fragment.sql).
WITH {{> submission_window}},
-- claims received in W (distinct on the whole tuple)
ingested AS (
  SELECT DISTINCT h.id_arvo, h.vl_pago, h.vl_info FROM (
    SELECT id_arvo, vl_pago, vl_info, ingested_at FROM {{processable_historical}}
    UNION ALL
    SELECT id_arvo, vl_pago, vl_info, ingested_at FROM {{unprocessable_historical}}
  ) h, win
  WHERE h.ingested_at BETWEEN win.lo AND win.hi
),
validation AS (
  SELECT v.id_arvo, v.id_fatura, v.status FROM (
    SELECT id_arvo, id_fatura, status, ingested_at FROM {{internal_validation}}
    UNION ALL
    SELECT id_arvo, id_fatura, status, ingested_at FROM {{manual_validation}}
  ) v, win
  WHERE v.ingested_at BETWEEN win.lo AND win.hi
),
-- invoices with an item still out for validation, and every item of those invoices
pending_invoices AS (SELECT DISTINCT id_fatura FROM validation WHERE status = 'SENT_FOR_VALIDATION' AND id_fatura IS NOT NULL),
not_sendable AS (SELECT DISTINCT id_arvo FROM validation WHERE id_fatura IN (SELECT id_fatura FROM pending_invoices) AND id_arvo IS NOT NULL),
sendable AS (SELECT * FROM ingested WHERE id_arvo IS NULL OR id_arvo NOT IN (SELECT id_arvo FROM not_sendable)),
totals AS (SELECT SUM(vl_pago) AS tot_pago, SUM(vl_info) AS tot_info FROM sendable),
-- every submitted row (any run, any time) joined to the sendable claims, per submitted status
by_status AS (
  SELECT s.status, SUM(x.vl_pago) AS sum_pago, SUM(x.vl_info) AS sum_info
  FROM {{submitted}} s JOIN sendable x ON s.id_arvo = x.id_arvo
  GROUP BY s.status
),
statuses AS (SELECT status FROM by_status UNION DISTINCT SELECT 'SUBMITTED_SUCCESS' AS status)
SELECT
  st.status,
  IF(t.tot_pago IS NULL OR t.tot_pago = 0, 1.0, COALESCE(b.sum_pago, 0) / t.tot_pago) AS pago_fraction,
  IF(t.tot_info IS NULL OR t.tot_info = 0, 1.0, COALESCE(b.sum_info, 0) / t.tot_info) AS info_fraction
FROM statuses st
CROSS JOIN totals t
LEFT JOIN by_status b ON b.status IS NOT DISTINCT FROM st.status
ORDER BY st.status
