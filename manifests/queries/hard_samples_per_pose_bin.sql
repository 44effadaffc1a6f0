-- Hard samples per pose bin: how the hard split is spread over frontal / half / profile faces,
-- then the 5 hardest (highest difficulty) non-suspect samples of each bin.
-- Views: samples.  python tools/query.py manifests/RUN --file manifests/queries/hard_samples_per_pose_bin.sql
WITH per_bin AS (
    SELECT pose_bin,
           count(*) AS samples,
           count(*) FILTER (WHERE split = 'hard') AS hard,
           round(100.0 * count(*) FILTER (WHERE split = 'hard') / count(*), 2) AS hard_pct
    FROM samples
    GROUP BY pose_bin
),
hardest AS (
    SELECT pose_bin, key, label, difficulty, center_cos, nearest_other_label, resolution_bin
    FROM samples
    WHERE split = 'hard'
    QUALIFY row_number() OVER (PARTITION BY pose_bin ORDER BY difficulty DESC, key) <= 5
)
SELECT p.pose_bin, p.samples, p.hard, p.hard_pct, h.key, h.label, h.difficulty, h.center_cos,
       h.nearest_other_label, h.resolution_bin
FROM per_bin p LEFT JOIN hardest h USING (pose_bin)
ORDER BY p.pose_bin NULLS LAST, h.difficulty DESC;
