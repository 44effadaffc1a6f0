-- Which files do I delete: every image a curator dropped (review.csv: drop) and every near-duplicate copy
-- mining would remove (duplicate_of) that the curator did not keep, with the file it came from.
-- source_path is relative to the image folder that was sharded (RecordIO: train.rec#KEY); it is NULL when
-- the run was mined without --samples or from shards written before the column existed (a run mined
-- before it existed lacks the column: mine it again).
-- Views: samples, review (empty without RUN/review.csv).
WITH kept AS (
    SELECT key FROM review WHERE kind = 'sample' AND action = 'keep'
), reasons AS (
    SELECT key, 'review: drop' AS reason FROM review WHERE kind = 'sample' AND action = 'drop'
    UNION ALL
    SELECT key, 'duplicate of ' || duplicate_of FROM samples
    WHERE duplicate_of IS NOT NULL AND key NOT IN (SELECT key FROM kept)
)
SELECT s.source_path, s.identity, s.key, s.label, string_agg(r.reason, '; ' ORDER BY r.reason) AS reason
FROM reasons r JOIN samples s USING (key)
GROUP BY s.source_path, s.identity, s.key, s.label
ORDER BY s.source_path, s.key;
