-- The submission window (handlers.md §7.9 steps 1-2), shared by the four submission families
-- (§7.9-§7.12): L = latest ingested_at of this run's submitted rows, or the source time - 20 min
-- when it has none; W = [L - 2 days, L], both ends inclusive.
-- Defines the CTEs `anchor` (l) and `win` (lo, hi): include it as the first CTE,
-- `WITH {{> submission_window}},`. Uses the family's table input `submitted` and its string
-- input `submission_run_id`.
anchor AS (
  SELECT COALESCE(
    (SELECT MAX(ingested_at) FROM {{submitted}} WHERE submission_run_id = @submission_run_id),
    TIMESTAMP_SUB(@source_timestamp, INTERVAL 20 MINUTE)) AS l
),
win AS (SELECT TIMESTAMP_SUB(l, INTERVAL 2 DAY) AS lo, l AS hi FROM anchor)
