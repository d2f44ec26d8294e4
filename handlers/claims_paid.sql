-- Paid value (vl_pago) of a batch's unprocessable (U) and processable (P) claims.
-- handlers.md §7.2 (pre-filtered) and §7.4 (processable). Both families send this same query
-- with the same tables, so for one event it runs once and serves both.
-- A missing table reads as empty (U = 0, P = 0); @processable_exists tells whether P's table exists.
-- With both tables missing it does not run: the families decide their totals ([[when_missing]]).
SELECT
  u AS unprocessable_total,
  p AS processable_total,
  -- pre-filtered relative U / (U + P), 0.0 when both are 0; no point when P's table is missing
  IF(@processable_exists, IF(u + p > 0, u / (u + p), 0.0), NULL) AS unprocessable_relative,
  -- processable relative P / (U + P); no point when U + P = 0
  IF(u + p > 0, p / (u + p), NULL) AS processable_relative
FROM (
  SELECT
    (SELECT COALESCE(SUM(vl_pago), 0) FROM {{unprocessable}}) AS u,
    (SELECT COALESCE(SUM(vl_pago), 0) FROM {{processable}}) AS p
)
