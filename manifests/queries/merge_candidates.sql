-- Label pairs that are probably one person (centre cosine >= classes.merge_cos), each pair once.
-- Views: classes.
SELECT least(a.label, a.nearest_label) AS label_a,
       greatest(a.label, a.nearest_label) AS label_b,
       max(a.nearest_cos) AS centre_cos,
       bool_and(a.merge_candidate) AS mutual_flag,
       any_value(CASE WHEN a.label < a.nearest_label THEN a.n ELSE b.n END) AS n_a,
       any_value(CASE WHEN a.label < a.nearest_label THEN b.n ELSE a.n END) AS n_b
FROM classes a JOIN classes b ON b.label = a.nearest_label
WHERE a.merge_candidate
GROUP BY 1, 2
ORDER BY centre_cos DESC;
