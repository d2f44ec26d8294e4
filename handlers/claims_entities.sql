-- Providers (id_prestador) and beneficiaries (id_matricula) of a batch compared with the claims
-- history: handlers.md §7.7 (share of new entities, last 3 months) and §7.8 (volume ratio, last
-- month against the month before). One query serves the four families, which read the same four
-- tables. It runs only when both historical tables exist (claims_entities.toml, [[when_missing]]).
WITH batch AS (
  SELECT id_arvo, id_prestador, id_matricula FROM {{batch_processable}}
  UNION ALL
  SELECT id_arvo, id_prestador, id_matricula FROM {{batch_unprocessable}}
),
hist AS (
  SELECT id_arvo, id_prestador, id_matricula, created_at FROM {{historical_processable}}
  UNION ALL
  SELECT id_arvo, id_prestador, id_matricula, created_at FROM {{historical_unprocessable}}
),
-- §7.7: history since the date 90 days before the run (midnight UTC), without the batch's own claims
seen_90d AS (
  SELECT id_prestador, id_matricula FROM hist
  WHERE created_at >= TIMESTAMP(DATE_SUB(@source_date, INTERVAL 90 DAY))
    AND (id_arvo IS NULL OR id_arvo NOT IN (SELECT id_arvo FROM batch WHERE id_arvo IS NOT NULL))
),
-- §7.8: latest month = the batch plus history since D30; previous month = history in [D60, D30)
latest AS (
  SELECT id_prestador, id_matricula FROM batch
  UNION ALL
  SELECT id_prestador, id_matricula FROM hist WHERE created_at >= TIMESTAMP(DATE_SUB(@source_date, INTERVAL 30 DAY))
),
previous AS (
  SELECT id_prestador, id_matricula FROM hist
  WHERE created_at >= TIMESTAMP(DATE_SUB(@source_date, INTERVAL 60 DAY))
    AND created_at < TIMESTAMP(DATE_SUB(@source_date, INTERVAL 30 DAY))
),
counts AS (
  SELECT
    (SELECT COUNT(DISTINCT id_prestador) FROM batch) AS providers,
    (SELECT COUNT(DISTINCT id_prestador) FROM batch
      WHERE id_prestador NOT IN (SELECT id_prestador FROM seen_90d WHERE id_prestador IS NOT NULL)) AS new_providers,
    (SELECT COUNT(DISTINCT id_matricula) FROM batch) AS beneficiaries,
    (SELECT COUNT(DISTINCT id_matricula) FROM batch
      WHERE id_matricula NOT IN (SELECT id_matricula FROM seen_90d WHERE id_matricula IS NOT NULL)) AS new_beneficiaries,
    (SELECT COUNT(DISTINCT id_prestador) FROM latest) AS latest_providers,
    (SELECT COUNT(DISTINCT id_prestador) FROM previous) AS previous_providers,
    (SELECT COUNT(DISTINCT id_matricula) FROM latest) AS latest_beneficiaries,
    (SELECT COUNT(DISTINCT id_matricula) FROM previous) AS previous_beneficiaries
)
SELECT
  IF(providers > 0, new_providers / providers, 0.0) AS providers_new_fraction,
  IF(beneficiaries > 0, new_beneficiaries / beneficiaries, 0.0) AS beneficiaries_new_fraction,
  IF(previous_providers = 0, 1.0, latest_providers / previous_providers) AS providers_volume_ratio,
  IF(previous_beneficiaries = 0, 1.0, latest_beneficiaries / previous_beneficiaries) AS beneficiaries_volume_ratio
FROM counts
