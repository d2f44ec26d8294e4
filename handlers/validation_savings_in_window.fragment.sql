-- Savings of the items of both validation tables ingested in the submission window W, as
-- v.id_arvo, v.vl_glosa_arvo (handlers.md §7.11 step 2, §7.12 step 2: a multiset, UNION ALL).
-- Needs `win` (submission_window) and the table inputs `internal_validation` and
-- `manual_validation`. It ends inside the WHERE clause: the including query adds its own
-- `AND` conditions on v.status and v.filtered_reason.
SELECT v.id_arvo, v.vl_glosa_arvo FROM (
    SELECT id_arvo, vl_glosa_arvo, status, filtered_reason, ingested_at FROM {{internal_validation}}
    UNION ALL
    SELECT id_arvo, vl_glosa_arvo, status, filtered_reason, ingested_at FROM {{manual_validation}}
  ) v, win
  WHERE v.ingested_at BETWEEN win.lo AND win.hi
