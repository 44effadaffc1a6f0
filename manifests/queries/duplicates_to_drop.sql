-- Near-duplicates to drop: each row is a removed copy and the kept twin it duplicates.
-- Cross-class copies are also label errors (the same photo filed under two identities).
-- Views: samples.
SELECT d.key AS drop_key, d.label AS drop_label, d.duplicate_of AS keep_key, k.label AS keep_label,
       d.duplicate_kind, d.duplicate_cos
FROM samples d JOIN samples k ON k.key = d.duplicate_of
WHERE d.duplicate_of IS NOT NULL
ORDER BY d.duplicate_kind DESC, d.duplicate_cos DESC, d.key;
