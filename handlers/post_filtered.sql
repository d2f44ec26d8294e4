-- Post-filtered savings (handlers.md §7.3): savings value (vl_glosa_arvo) excluded after
-- selection (E) and its ratio to the savings table's own total (S): E / S, 0.0 when S = 0.
-- A missing excluded table reads as empty (E = 0); a missing savings table is an error.
SELECT
  e AS excluded_total,
  IF(s > 0, e / s, 0.0) AS excluded_relative
FROM (
  SELECT
    (SELECT COALESCE(SUM(vl_glosa_arvo), 0) FROM {{excluded}}) AS e,
    (SELECT COALESCE(SUM(vl_glosa_arvo), 0) FROM {{savings}}) AS s
)
